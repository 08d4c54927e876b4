#!/usr/bin/env bash
# Fuzzing: builds the libFuzzer targets (fuzz/fuzz_*.cpp) with clang, ASan and UBSan into
# build-fuzz/, then runs each target for SECONDS (default 600) on the seed corpus fuzz/corpus/<target>
# plus a working corpus that grows in build-fuzz/work/<target>/corpus, and prints execs/s, corpus
# size and findings per target. Exit status 1 if any target found a crash, leak, timeout or OOM.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]     targets: safetensors safetensors_index config
#                                             tokenizer gptq_loader (default: all)
# Environment:
#   PARALLEL=N     targets run N at a time (default 1; each uses one core)
#   BUILD_DIR      build directory (default build-fuzz); BUILD_JOBS: compile jobs (default nproc)
#   FUZZ_ARGS      extra libFuzzer flags (e.g. "-seed=1")
# A finding is written to build-fuzz/work/<target>/artifacts/; reproduce it with
#   build-fuzz/fuzz_<target> <file>
# then add it under tests/regressions/<target>/ (tests/test_fuzz_regressions.cpp replays those).
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-600}
shift || true
ALL=(safetensors safetensors_index config tokenizer gptq_loader)
TARGETS=("$@")
[ ${#TARGETS[@]} -eq 0 ] && TARGETS=("${ALL[@]}")
BUILD=${BUILD_DIR:-build-fuzz}
PARALLEL=${PARALLEL:-1}

./scripts/setup.sh
# clang and its libFuzzer/sanitizer runtimes (installed when missing, like setup.sh does).
if ! command -v clang++ >/dev/null || ! dpkg-query -W -f='${Status}' libclang-rt-dev 2>/dev/null | grep -q "install ok installed"; then
  echo "fuzz: installing clang libclang-rt-dev"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends clang libclang-rt-dev >/dev/null
fi
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g" \
  -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -g" -DGPTQ_FUZZ=ON -DGPTQ_BUILD_TESTS=OFF \
  -DGPTQ_BUILD_BENCH=OFF >/dev/null
cmake --build "$BUILD" -j "${BUILD_JOBS:-$(nproc)}" --target $(printf 'fuzz_%s ' "${TARGETS[@]}")

run_one() {
  local t=$1 work="$BUILD/work/$1"
  mkdir -p "$work/corpus" "$work/artifacts"
  # -timeout: one input may take at most 10 s; -rss_limit_mb: a run above 2 GiB is a finding.
  local rc=0
  "$BUILD/fuzz_$t" "$work/corpus" "fuzz/corpus/$t" -dict=fuzz/json.dict -max_total_time="$SECS" \
    -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$work/artifacts/" ${FUZZ_ARGS:-} >"$work/log" 2>&1 || rc=$?
  echo "$rc" >"$work/rc"
}

echo "fuzz: ${TARGETS[*]} for ${SECS}s each, ${PARALLEL} at a time (logs in $BUILD/work/<target>/log)"
running=0
for t in "${TARGETS[@]}"; do
  rm -f "$BUILD/work/$t/rc"
  run_one "$t" &
  running=$((running + 1))
  if [ "$running" -ge "$PARALLEL" ]; then
    wait -n || true
    running=$((running - 1))
  fi
done
wait || true

status=0
printf '\n%-18s %10s %12s %10s %12s %9s  %s\n' target seconds execs execs/s corpus bytes findings
for t in "${TARGETS[@]}"; do
  work="$BUILD/work/$t"
  execs=$(grep -ao 'stat::number_of_executed_units: *[0-9]*' "$work/log" | tail -1 | grep -o '[0-9]*$' || echo 0)
  rate=$(grep -ao 'stat::average_exec_per_sec: *[0-9]*' "$work/log" | tail -1 | grep -o '[0-9]*$' || echo 0)
  secs=$(grep -ao 'Done [0-9]* runs in [0-9]* second' "$work/log" | grep -o 'in [0-9]*' | grep -o '[0-9]*' || echo "$SECS")
  files=$(find "$work/corpus" "fuzz/corpus/$t" -type f | wc -l)
  bytes=$(cat "$work/corpus"/* "fuzz/corpus/$t"/* 2>/dev/null | wc -c)
  findings=$(find "$work/artifacts" -type f | wc -l)
  rc=$(cat "$work/rc" 2>/dev/null || echo 1)
  printf '%-18s %10s %12s %10s %12s %9s  %s\n' "$t" "$secs" "$execs" "$rate" "$files" "$bytes" \
    "$([ "$rc" = 0 ] && [ "$findings" = 0 ] && echo none || echo "$findings (rc $rc; see $work/log)")"
  if [ "$rc" != 0 ] || [ "$findings" != 0 ]; then status=1; fi
done
exit $status
