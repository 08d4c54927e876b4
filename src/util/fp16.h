// Half-precision conversions (IEEE binary16 and bfloat16 <-> float32), vectorised with Highway
// and dispatched at run time to the best instruction set of the CPU. Rounding to half precision is
// round-to-nearest-even, NaN stays NaN, overflow becomes +-inf (as torch's .half()/.bfloat16()).
#pragma once

#include <cstddef>
#include <cstdint>

namespace gptq {

void f16_to_f32(const uint16_t* in, float* out, size_t n);
void bf16_to_f32(const uint16_t* in, float* out, size_t n);
void f32_to_f16(const float* in, uint16_t* out, size_t n);
void f32_to_bf16(const float* in, uint16_t* out, size_t n);

// Scalar versions (reference semantics; also used for tails and in tests).
float f16_to_f32(uint16_t h);
float bf16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);
uint16_t f32_to_bf16(float f);

}  // namespace gptq
