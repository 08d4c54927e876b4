#!/usr/bin/env bash
# Quality table of issue 4: every fixture x {w4 g128 sym, w3 per-channel asym} x {RTN, GPTQ,
# GPTQ + act-order}: mean KL divergence to the float model and perplexity on the first 40 windows
# of 256 tokens of eval.txt (the fixtures' quality.json protocol; calibration 32 x 256 tokens of
# calib.txt, damp 0.01, true-sequential). Prints a Markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."
GPTQ=${GPTQ:-build/gptq}
[ -x "$GPTQ" ] || ./scripts/build.sh --target gptq >/dev/null
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
echo "| fixture | setting | method | KLD | perplexity |"
echo "|---|---|---|---|---|"
for fixture in tiny-llama tiny-llama-sharded tiny-llama-outliers tiny-gpt2; do
  model=testdata/models/$fixture
  for setting in "w4_g128_sym|--bits 4 --group-size 128" "w3_gm1_asym|--bits 3 --group-size -1 --asym"; do
    name=${setting%%|*}; args=${setting#*|}
    for method in rtn gptq gptq+act; do
      out=$WORK/$fixture-$name-$method
      case $method in
        rtn) extra="--method rtn" ;;
        gptq) extra="" ;;
        gptq+act) extra="--desc-act" ;;
      esac
      # shellcheck disable=SC2086
      $GPTQ quantize "$model" "$out" $args $extra --damp 0.01 --calib testdata/data/calib.txt \
        --nsamples 32 --seqlen 256 --quiet 2>/dev/null
      res=$($GPTQ eval "$out" --text testdata/data/eval.txt --seqlen 256 --max-windows 40 --base "$model")
      kld=$(awk '/^KLD/ {print $2}' <<<"$res")
      ppl=$(awk '/^perplexity/ {print $2}' <<<"$res")
      echo "| $fixture | $name | $method | $kld | $ppl |"
      rm -rf "$out"
    done
  done
done
