#include "gptq/gptq.h"

namespace gptq {

const char* version() {
  return "gptq.cpp " GPTQ_VERSION;
}

}  // namespace gptq
