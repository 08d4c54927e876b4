#!/usr/bin/env bash
# The test suite: installs the build dependencies (Debian 12), builds, runs every test with ctest,
# installs the Python package and runs its pytest suite.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
./scripts/build.sh
# llama.cpp (npm node-llama-cpp, prebuilt CPU) for the GGUF tests; test_gguf skips, saying why, without it.
if prefix=$(./scripts/setup_llama_cpp.sh); then export GPTQ_NODE_LLAMA_CPP=$prefix; fi
(cd "${BUILD_DIR:-build}" && ctest --output-on-failure -j "$(nproc)" --timeout 900 "$@")
# The Python package: installed into build/venv, then its pytest suite (python/tests).
./scripts/test_python.sh
# ASan + UBSan on a fast subset (the CI budget): the unit suites without the long quantization
# runs, the SIMD kernels (quant_kernels.cpp) built uninstrumented and the K = 4100 Cholesky left
# to the plain run. The whole suite under the sanitizers, kernels included, is one command:
# scripts/sanitize.sh. SKIP_SANITIZE=1 skips this part.
if [ "${SKIP_SANITIZE:-0}" != 1 ]; then
  BUILD_DIR=${ASAN_BUILD_DIR:-build-asan} SANITIZE_KERNELS=OFF \
    SANITIZE_TARGETS="test_blas test_safetensors test_fp16 test_pack test_quantizer test_gptq_solver test_tokenizer test_convert test_fuzz_regressions test_numerical_faults" \
    GTEST_FILTER="-*Quality*:*Pipeline*:*WidePanels*" ./scripts/sanitize.sh
fi
