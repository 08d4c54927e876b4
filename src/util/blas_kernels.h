// Which OpenBLAS kernels run. Debian 12's OpenBLAS (0.3.21, DYNAMIC_ARCH) picks its kernels from
// the CPU model number; a CPU newer than its table (e.g. a Xeon reported as "Intel(R) Xeon(R)
// Processor") falls back to the SSE3 "Prescott" kernels, 5x slower in sgemm than the AVX-512 ones
// the CPU runs. select_blas_kernels() re-runs OpenBLAS's kernel choice with the best set the CPU
// and the OS support (AVX-512 F/BW/DQ/VL: SkylakeX; AVX2+FMA: Haswell) when the detected set is
// older than that. OPENBLAS_CORETYPE, when the user sets it, is left alone.
#pragma once

#include <string>

namespace gptq::blas {

struct KernelChoice {
  std::string detected;  // what OpenBLAS chose by itself ("" when it cannot say)
  std::string running;   // what runs now
  std::string why;       // one line: kept or replaced, and why
};

// Idempotent; called once by use_serial_blas() before any BLAS call of the process's library code.
const KernelChoice& select_blas_kernels();

}  // namespace gptq::blas
