#!/usr/bin/env bash
# The test suite under AddressSanitizer + UndefinedBehaviorSanitizer (g++, GPTQ_SANITIZE=ON) in
# build-asan/: builds everything and runs every test (unit, fuzz regressions, e2e) with ctest.
#   scripts/sanitize.sh [ctest arguments...]      e.g. -R Fuzz, -L unit
# Environment: BUILD_DIR (build-asan), BUILD_JOBS (nproc), SANITIZE_TARGETS (build and run only
# these test programs, directly instead of through ctest; scripts/test.sh uses it for its fast
# subset, with GTEST_FILTER), SANITIZE_EXCLUDE (ctest -E regex of tests to skip), SANITIZE_KERNELS
# (ON; OFF builds the Highway kernels uninstrumented, minutes faster). Any ASan/UBSan report fails
# the test.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
BUILD=${BUILD_DIR:-build-asan}
# -O1 -g1: quick to build, stack traces with lines; asserts on (no -DNDEBUG).
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1" \
  -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -g1" -DGPTQ_SANITIZE=ON -DGPTQ_BUILD_BENCH=OFF \
  -DGPTQ_SANITIZE_KERNELS="${SANITIZE_KERNELS:-ON}" >/dev/null
# shellcheck disable=SC2086
cmake --build "$BUILD" -j "${BUILD_JOBS:-$(nproc)}" ${SANITIZE_TARGETS:+--target $SANITIZE_TARGETS}
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1:strict_string_checks=1:check_initialization_order=1:detect_stack_use_after_return=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
cd "$BUILD"
if [ -n "${SANITIZE_TARGETS:-}" ]; then
  # Only these test programs, run directly (the same set whatever else build-asan holds), in
  # parallel; GTEST_FILTER (e.g. "-*Quality*") narrows them further.
  # shellcheck disable=SC2086
  printf '%s\n' $SANITIZE_TARGETS | xargs -P "$(nproc)" -I{} sh -c \
    './{} --gtest_brief=1 >{}.sanitize.log 2>&1 && echo "sanitize: {} passed" || { cat {}.sanitize.log; echo "sanitize: {} FAILED"; exit 1; }'
else
  # Open MPI leaks at MPI_Finalize, inside plugins it has already unloaded (LeakSanitizer reports
  # them as "<unknown module>", so no suppression can name them): the mpi-label tests run with
  # leak checking off; ASan's memory errors and UBSan stay on for them.
  rc=0
  # shellcheck disable=SC2086
  ctest --output-on-failure -j "$(nproc)" --timeout 1800 -LE mpi ${SANITIZE_EXCLUDE:+-E "$SANITIZE_EXCLUDE"} "$@" || rc=$?
  # shellcheck disable=SC2086
  ASAN_OPTIONS="$ASAN_OPTIONS:detect_leaks=0" ctest --output-on-failure -j "$(nproc)" --timeout 1800 -L mpi \
    ${SANITIZE_EXCLUDE:+-E "$SANITIZE_EXCLUDE"} "$@" || rc=$?
  exit "$rc"
fi
