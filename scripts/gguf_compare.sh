#!/usr/bin/env bash
# GPTQ vs llama.cpp's round-to-nearest, both as GGUF Q4_0 and both measured by llama.cpp
# (node-llama-cpp 3.21.1, CPU): perplexity on held-out text and KL divergence of the next-token
# distribution to the float model (its F32 GGUF through llama.cpp).
#   scripts/gguf_compare.sh [MODEL] [EVAL_TEXT]   (MAX_WINDOWS=40 windows of 256 tokens; 0: all)
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:-testdata/models/tiny-llama}
TEXT=${2:-testdata/data/eval.txt}
CALIB=${CALIB:-testdata/data/calib.txt}
WINDOWS=${MAX_WINDOWS:-40}
OUT=${OUT:-build/gguf-compare}
[ -x build/gptq ] || ./scripts/build.sh --target gptq
export GPTQ_NODE_LLAMA_CPP=$(./scripts/setup_llama_cpp.sh)
rm -rf "$OUT" && mkdir -p "$OUT"
build/gptq quantize "$MODEL" "$OUT/gptq" --bits 4 --group-size 32 --calib "$CALIB" --seqlen 256 --quiet --target gguf
build/gptq export-gguf "$OUT/gptq" "$OUT/gptq-q4_0.gguf" | tail -1
build/gptq export-gguf "$MODEL" "$OUT/rtn-q4_0.gguf" --from-float --type q4_0 | tail -1
build/gptq export-gguf "$MODEL" "$OUT/float-f32.gguf" --from-float --type f32 --outtype f32 | tail -1
# llama.cpp tokenizes the text (with the exported vocabulary); gptq eval reads the same ids.
node tests/llama_cpp/eval_gguf.mjs --model "$OUT/float-f32.gguf" --text "$TEXT" --ids-out "$OUT/ids.json" \
  --seqlen 256 --max-windows 1 >/dev/null
printf "%-18s %10s %10s %8s\n" "llama.cpp" "perplexity" "KL(float)" "top-1"
for m in float-f32 rtn-q4_0 gptq-q4_0; do
  node tests/llama_cpp/eval_gguf.mjs --model "$OUT/$m.gguf" --base "$OUT/float-f32.gguf" --ids "$OUT/ids.json" \
    --seqlen 256 --max-windows "$WINDOWS" |
    python3 -c "import json,sys; r=json.load(sys.stdin); print('%-18s %10.3f %10.5f %8.3f' % ('$m', r['ppl'], r['kld'], r['top1']))"
done
echo "gptq.cpp on the same ids (GPTQ checkpoint, KL to the float model):"
build/gptq eval "$OUT/gptq" --ids "$OUT/ids.json" --max-windows "$WINDOWS" --base "$MODEL" | grep -E "perplexity|KL|top"

