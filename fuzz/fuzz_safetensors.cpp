// libFuzzer target "safetensors" (see fuzz/targets.h for what the input is and the contract under test).
#include "targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  gptq::fuzz::run_safetensors(data, size);
  return 0;
}
