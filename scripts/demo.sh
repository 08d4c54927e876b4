#!/usr/bin/env bash
# The main job: quantize the bundled example model (tiny-llama, trained on the King James Bible)
# with GPTQ and with round-to-nearest, and show their quality against the float model
# (KL divergence of the next-token distribution and perplexity on held-out text); then the Python
# package's quick start.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
./scripts/build.sh --target gptq >/dev/null
GPTQ=${BUILD_DIR:-build}/gptq
MODEL=${MODEL:-testdata/models/tiny-llama}
OUT=${OUT:-out/demo}
rm -rf "$OUT" && mkdir -p "$OUT"

echo "== inspect: what will be quantized"
$GPTQ inspect "$MODEL"
echo
echo "== GPTQ 4-bit, group size 128, act-order (calibration: 32 x 256 tokens of testdata/data/calib.txt)"
$GPTQ quantize "$MODEL" "$OUT/gptq-w4g128" --bits 4 --group-size 128 --desc-act --damp 0.01 \
  --calib testdata/data/calib.txt --nsamples 32 --seqlen 256 --report "$OUT/gptq-w4g128.report.json"
echo
echo "== round-to-nearest 4-bit, group size 128 (the baseline GPTQ must beat)"
$GPTQ quantize "$MODEL" "$OUT/rtn-w4g128" --bits 4 --group-size 128 --method rtn --quiet
echo
echo "== quality on held-out text (testdata/data/eval.txt, 40 windows of 256 tokens)"
for m in rtn-w4g128 gptq-w4g128; do
  echo "-- $m"
  $GPTQ eval "$OUT/$m" --text testdata/data/eval.txt --seqlen 256 --max-windows 40 --base "$MODEL"
done
echo
echo "== generation from the GPTQ checkpoint"
$GPTQ generate "$OUT/gptq-w4g128" --prompt "And the LORD said unto Moses," --max-new-tokens 40 --seed 1
echo
echo "== the same from Python: gptqcpp (README quick start, examples/quickstart.py)"
./scripts/install_python.sh
rm -rf out/tiny-llama-gptq
${BUILD_DIR:-build}/venv/bin/python examples/quickstart.py
