#include "util/blas_kernels.h"

#include <cblas.h>
#include <fmt/format.h>

#include <array>
#include <cctype>
#include <cstdlib>
#include <string_view>

// OpenBLAS's DYNAMIC_ARCH entry points (exported by libopenblas, not declared in its headers):
// quit forgets the chosen kernel table, init chooses again (reading OPENBLAS_CORETYPE). Weak: a
// BLAS without them (another vendor, a single-target OpenBLAS) keeps its own kernels.
extern "C" void gotoblas_dynamic_init(void) __attribute__((weak));
extern "C" void gotoblas_dynamic_quit(void) __attribute__((weak));

namespace gptq::blas {

namespace {

// Kernel sets with AVX2/FMA or AVX-512 GEMM kernels: a detection that lands on one of them is kept.
bool is_modern(std::string_view core) {
  constexpr std::array<std::string_view, 6> modern{
      "haswell", "zen", "skylakex", "cooperlake", "sapphirerapids", "neoversen1"};
  std::string lower(core);
  for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (const auto m : modern)
    if (lower == m) return true;
  return false;
}

// The best kernel set this CPU and OS run ("" if none better than the baseline). GCC's
// __builtin_cpu_supports also checks that the OS saves the AVX/AVX-512 registers (XCR0).
std::string best_for_cpu() {
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
    return "SkylakeX";
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "Haswell";
#endif
  return "";
}

KernelChoice choose() {
  KernelChoice k;
  const char* name = openblas_get_corename();
  k.detected = name != nullptr ? name : "";
  k.running = k.detected;
  if (const char* forced = std::getenv("OPENBLAS_CORETYPE"); forced != nullptr && *forced != '\0') {
    k.why = fmt::format("OPENBLAS_CORETYPE={} (set by the user)", forced);
    return k;
  }
  if (gotoblas_dynamic_init == nullptr || gotoblas_dynamic_quit == nullptr || k.detected.empty()) {
    k.why = "this BLAS chooses its own kernels";
    return k;
  }
  const std::string best = best_for_cpu();
  if (is_modern(k.detected) || best.empty()) {
    k.why = "as OpenBLAS detected them";
    return k;
  }
  // Before any BLAS work, on one thread (a static initializer): OpenBLAS chooses again, reading the
  // variable. The variable stays set, so a child process (or a second library) agrees.
  ::setenv("OPENBLAS_CORETYPE", best.c_str(), 1);
  gotoblas_dynamic_quit();
  gotoblas_dynamic_init();
  const char* now = openblas_get_corename();
  k.running = now != nullptr ? now : "";
  k.why = fmt::format("OpenBLAS did not recognise this CPU and chose {}; it supports {}",
                      k.detected, best);
  return k;
}

}  // namespace

const KernelChoice& select_blas_kernels() {
  static const KernelChoice k = choose();
  return k;
}

}  // namespace gptq::blas
