// libFuzzer target "gptq_loader" (see fuzz/targets.h for what the input is and the contract under test).
#include "targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  gptq::fuzz::run_gptq_loader(data, size);
  return 0;
}
