// gptq.cpp's public C++ API: quantize a Hugging Face checkpoint with GPTQ, load a float or GPTQ
// checkpoint, evaluate it, generate text. Link the `gptqcore` CMake target; everything under
// src/ is private.
#pragma once

#include "gptq/callbacks.h"
#include "gptq/error.h"
#include "gptq/evaluate.h"
#include "gptq/generate.h"
#include "gptq/model.h"
#include "gptq/quantize.h"

namespace gptq {

// "gptq.cpp 0.1.0".
const char* version();

}  // namespace gptq
