#!/usr/bin/env bash
# scripts/bench_decode.sh (gptq.cpp vs llama.cpp: load, prefill, decode speed) on tiny shapes
# (hidden 256, 1 block, vocab 512, 4 tokens, 1 run, 1 thread), so that the script,
# tests/llama_cpp/decode_bench.mjs and the CLI options they use keep working. The timings are
# printed, never checked. Skips (exit 77) without bench_quantize (GPTQ_BUILD_BENCH=OFF), node or
# llama.cpp (node-llama-cpp, scripts/setup_llama_cpp.sh).
# Usage: bash bench_decode.sh <gptq-binary> <source-dir>   (run by ctest as e2e_bench_decode)
set -euo pipefail
BIN=$(dirname "$(readlink -f "$1")")
SRC=$(readlink -f "$2")
fail() { echo "FAIL: $*" >&2; exit 1; }
skip() { echo "skip: $*"; exit 77; }
[ -x "$BIN/bench_quantize" ] || skip "no $BIN/bench_quantize (built with GPTQ_BUILD_BENCH=OFF)"
command -v node >/dev/null || skip "node is not installed"
if [ -z "${GPTQ_NODE_LLAMA_CPP:-}" ]; then
  GPTQ_NODE_LLAMA_CPP=$("$SRC/scripts/setup_llama_cpp.sh") || skip "llama.cpp (node-llama-cpp) cannot be installed"
fi
export GPTQ_NODE_LLAMA_CPP
out=$(BUILD_DIR=$BIN "$SRC/scripts/bench_decode.sh" --hidden 256 --intermediate 768 --blocks 1 --vocab 512 \
  --tokens 4 --reps 1 --threads 1) || fail "scripts/bench_decode.sh exited $?"
echo "$out"
for row in "load s/GB" "prefill-16 tok/s" "prefill-16 GFLOP/s" "decode tok/s" "llama.cpp q4_0" \
           "greedy ids agree" "4 generated greedily (3 decode steps)"; do
  grep -qF "$row" <<<"$out" || fail "no '$row' in the output"
done
echo "bench_decode: ok"
