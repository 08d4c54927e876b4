#!/usr/bin/env bash
# Decode, prefill and load speed of gptq.cpp against llama.cpp (npm node-llama-cpp 3.21.1, prebuilt
# CPU build, its Q4_0/Q4_K repacking on as by default) on the same random Llama, measured in one run
# with the same threads, the same 16-token prompt and greedy decoding:
#   1. build/bench_quantize --write-only 1 writes the random Llama (F16) into DIR/model, and this
#      script adds a byte-level BPE tokenizer (256 byte tokens, id = byte value);
#   2. gptq quantize --method rtn --bits 4 --group-size 128 --sym -> DIR/gptq;
#   3. gptq export-gguf DIR/gptq DIR/q4_0.gguf (the exact Q4_0 map of the checkpoint) and, where the
#      installed gptq has it, gptq export-gguf --from-float DIR/model DIR/q4_k.gguf --type q4_k;
#   4. llama.cpp: tests/llama_cpp/decode_bench.mjs per GGUF (load, 16-token prefill, greedy decode);
#   5. gptq.cpp: gptq generate DIR/gptq --json (its load_seconds, prefill and decode timings), and
#      again with --int8-activations (prefill with int8 activations, as llama.cpp; decode unchanged);
#   6. one table: load s/GB, prefill-16 tokens/s and GFLOP/s, decode tokens/s, min/median/max over
#      --reps runs (a warm-up run first, not counted) and the ratio of the medians gptq/llama.cpp
#      (also for the int8-activations run).
# Prefill GFLOP/s = 2 * (parameters of the block linears) * 16 / prefill seconds (the output head,
# evaluated for the last prompt token only on both sides, is left out). Timings only: no assertion.
#
#   scripts/bench_decode.sh [--hidden 4096] [--intermediate 11008] [--blocks 4] [--vocab 32000]
#                           [--tokens 64] [--reps 3] [--threads 2] [--keep DIR]
# --keep DIR keeps the checkpoints and GGUFs (and reuses them when the shapes match); without it a
# temporary directory is removed at the end. BUILD_DIR (default build) holds gptq and
# bench_quantize (built when missing). llama.cpp: $GPTQ_NODE_LLAMA_CPP, else scripts/setup_llama_cpp.sh
# installs it (node/npm; exit 3 when it cannot).
set -euo pipefail
cd "$(dirname "$0")/.."
HIDDEN=4096 INTER=11008 BLOCKS=4 VOCAB=32000 TOKENS=64 REPS=3 THREADS=2 KEEP=""
PROMPT=abcdefghijklmnop  # 16 byte tokens with this script's tokenizer: ids 97..112
usage() { sed -n '/^#   scripts/,/^set -euo/{/^set/d;s/^# \{0,1\}//;p}' "$0" >&2; exit "${1:-2}"; }
while (($#)); do
  [[ $1 == -h || $1 == --help ]] && usage 0
  [[ $# -ge 2 ]] || usage
  case $1 in
    --hidden) HIDDEN=$2 ;;
    --intermediate) INTER=$2 ;;
    --blocks) BLOCKS=$2 ;;
    --vocab) VOCAB=$2 ;;
    --tokens) TOKENS=$2 ;;
    --reps) REPS=$2 ;;
    --threads) THREADS=$2 ;;
    --keep) KEEP=$2 ;;
    *) usage ;;
  esac
  shift 2
done
for v in "$HIDDEN" "$INTER" "$BLOCKS" "$VOCAB" "$TOKENS" "$REPS" "$THREADS"; do
  [[ $v =~ ^[1-9][0-9]*$ ]] || { echo "bench_decode: '$v' is not a positive integer" >&2; exit 2; }
done
((VOCAB >= 256)) || { echo "bench_decode: --vocab must be >= 256 (the byte tokens)" >&2; exit 2; }
((HIDDEN % 128 == 0 && INTER % 128 == 0)) ||
  { echo "bench_decode: --hidden and --intermediate must be multiples of 128 (head dim, group size)" >&2; exit 2; }

BUILD_DIR=${BUILD_DIR:-build}
GPTQ=$BUILD_DIR/gptq
if [[ ! -x $GPTQ || ! -x $BUILD_DIR/bench_quantize ]]; then
  ./scripts/build.sh --target gptq bench_quantize >&2
fi
if [[ -z ${GPTQ_NODE_LLAMA_CPP:-} ]]; then
  GPTQ_NODE_LLAMA_CPP=$(./scripts/setup_llama_cpp.sh) ||
    { echo "bench_decode: llama.cpp (node-llama-cpp) is not available" >&2; exit 3; }
fi
export GPTQ_NODE_LLAMA_CPP

if [[ -n $KEEP ]]; then
  DIR=$KEEP
  mkdir -p "$DIR"
else
  DIR=$(mktemp -d "${TMPDIR:-/tmp}/gptq-bench-decode.XXXXXX")
  trap 'rm -rf "$DIR"' EXIT
fi
SHAPES="hidden=$HIDDEN intermediate=$INTER blocks=$BLOCKS vocab=$VOCAB"
if [[ ! -f $DIR/shapes || $(cat "$DIR/shapes") != "$SHAPES" ]]; then
  rm -rf "$DIR/model" "$DIR/gptq" "$DIR"/*.gguf "$DIR/calib.json" "$DIR/shapes"
  echo "bench_decode: writing the random Llama ($SHAPES) into $DIR/model" >&2
  "$BUILD_DIR/bench_quantize" --write-only 1 --keep "$DIR" --hidden "$HIDDEN" --intermediate "$INTER" \
    --blocks "$BLOCKS" --vocab "$VOCAB" >&2
  # Byte-level BPE with the 256 byte tokens (GPT-2's byte-to-character map), id = byte value.
  python3 - "$DIR/model/tokenizer.json" <<'EOF'
import json, sys
bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
cs, n = bs[:], 0
for b in range(256):
    if b not in bs:
        bs.append(b); cs.append(256 + n); n += 1
char = dict(zip(bs, map(chr, cs)))
bl = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
tj = {"version": "1.0", "added_tokens": [], "normalizer": None, "pre_tokenizer": bl, "post_processor": bl,
      "decoder": bl, "model": {"type": "BPE", "vocab": {char[b]: b for b in range(256)}, "merges": []}}
json.dump(tj, open(sys.argv[1], "w", encoding="utf-8"), ensure_ascii=False)
EOF
  echo "bench_decode: quantizing (RTN, 4-bit g128 sym) into $DIR/gptq" >&2
  "$GPTQ" quantize "$DIR/model" "$DIR/gptq" --method rtn --bits 4 --group-size 128 --sym --target gguf --quiet >&2
  "$GPTQ" export-gguf "$DIR/gptq" "$DIR/q4_0.gguf" >&2
  echo "$SHAPES" >"$DIR/shapes"
fi
# Q4_K (llama.cpp's re-fit of the float model) where this gptq can write it: tried, else skipped.
GGUFS=(q4_0)
Q4K_NOTE=""
if [[ -f $DIR/q4_k.gguf ]]; then
  GGUFS+=(q4_k)
elif "$GPTQ" export-gguf --from-float "$DIR/model" "$DIR/q4_k.gguf" --type q4_k >"$DIR/q4_k.log" 2>&1; then
  GGUFS+=(q4_k)
else
  rm -f "$DIR/q4_k.gguf"
  Q4K_NOTE="q4_k skipped: 'gptq export-gguf --from-float --type q4_k' failed: $(grep -m1 -iE 'error|q4_k' "$DIR/q4_k.log" || head -1 "$DIR/q4_k.log")"
fi

IDS=$(python3 -c "import sys; print(','.join(str(b) for b in sys.argv[1].encode()))" "$PROMPT")
for g in "${GGUFS[@]}"; do
  echo "bench_decode: llama.cpp $g.gguf ($REPS runs + 1 warm-up)" >&2
  node tests/llama_cpp/decode_bench.mjs --model "$DIR/$g.gguf" --ids "$IDS" --tokens "$TOKENS" \
    --reps "$REPS" --threads "$THREADS" --warmup 1 >"$DIR/llama_$g.json"
done
echo "bench_decode: gptq generate ($REPS runs + 1 warm-up)" >&2
for ((r = 0; r <= REPS; ++r)); do
  "$GPTQ" generate "$DIR/gptq" --prompt "$PROMPT" --max-new-tokens "$TOKENS" --temperature 0 \
    --threads "$THREADS" --json >"$DIR/gptq_$r.json"
done
echo "bench_decode: gptq generate --int8-activations ($REPS runs + 1 warm-up)" >&2
for ((r = 0; r <= REPS; ++r)); do
  "$GPTQ" generate "$DIR/gptq" --prompt "$PROMPT" --max-new-tokens "$TOKENS" --temperature 0 \
    --threads "$THREADS" --int8-activations --json >"$DIR/gptq8_$r.json"
done

python3 - "$DIR" "$REPS" "$HIDDEN" "$INTER" "$BLOCKS" "$VOCAB" "$TOKENS" "$THREADS" "$Q4K_NOTE" "${GGUFS[@]}" <<'EOF'
import json, os, statistics, sys
d, reps, h, inter, blocks, vocab, tokens, threads, note = sys.argv[1:10]
ggufs = sys.argv[10:]
reps, h, inter, blocks, vocab, tokens, threads = map(int, (reps, h, inter, blocks, vocab, tokens, threads))
params = blocks * (4 * h * h + 3 * h * inter)  # q, k, v, o (as many KV heads as heads), gate, up, down

def size_gb(p):
    if os.path.isfile(p):
        return os.path.getsize(p) / 1e9
    return sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(p) for f in fs) / 1e9

def fail(msg):
    sys.exit("bench_decode: " + msg)

rows = {}  # engine -> {metric: [values]}
runs = [json.load(open(os.path.join(d, f"gptq_{r}.json"))) for r in range(1, reps + 1)]
runs8 = [json.load(open(os.path.join(d, f"gptq8_{r}.json"))) for r in range(1, reps + 1)]
for r in runs + runs8:
    if r["prompt_tokens"] != 16 or r["generated_tokens"] != tokens:
        fail(f"gptq generate: {r['prompt_tokens']} prompt tokens, {r['generated_tokens']} generated (want 16, {tokens})")
gb = size_gb(os.path.join(d, "gptq"))
steps = runs[0]["decode_steps"]
rows["gptq.cpp"] = {
    "load s": [r["load_seconds"] for r in runs],
    "load s/GB": [r["load_seconds"] / gb for r in runs],
    "prefill-16 tok/s": [16 / r["prefill_seconds"] for r in runs],
    "prefill-16 GFLOP/s": [2 * params * 16 / r["prefill_seconds"] / 1e9 for r in runs],
    "decode tok/s": [r["decode_steps"] / r["decode_seconds"] for r in runs],
}
rows8 = {
    "prefill-16 tok/s": [16 / r["prefill_seconds"] for r in runs8],
    "prefill-16 GFLOP/s": [2 * params * 16 / r["prefill_seconds"] / 1e9 for r in runs8],
    "decode tok/s": [r["decode_steps"] / r["decode_seconds"] for r in runs8],
}
sizes = {"gptq.cpp": gb}
info = []
gptq_ids = runs[-1]["generated_ids"]
for g in ggufs:
    j = json.load(open(os.path.join(d, f"llama_{g}.json")))
    if j["decode_steps"] != tokens - 1:
        fail(f"llama.cpp {g}: {j['decode_steps']} decode steps (want {tokens - 1})")
    name = f"llama.cpp {g}"
    sizes[name] = size_gb(os.path.join(d, f"{g}.gguf"))
    rows[name] = {
        "load s": j["load_s"],
        "load s/GB": [t / sizes[name] for t in j["load_s"]],
        "prefill-16 tok/s": [16 / t for t in j["prefill_s"]],
        "prefill-16 GFLOP/s": [2 * params * 16 / t / 1e9 for t in j["prefill_s"]],
        "decode tok/s": [j["decode_steps"] / t for t in j["decode_s"]],
    }
    rep = ("on: " + "; ".join(b.replace("load_tensors: ", "") for b in j["repack_buffers"]) if j["repack"]
           else "OFF: no CPU_REPACK/AMX model buffer in llama.cpp's load log")
    info.append(f"{name}: {sizes[name]:.3f} GB, repacking {rep}")
    if j.get("cpu_backend"):
        info.append(f"{name}: CPU backend {j['cpu_backend']}")
    agree = next((i for i, (a, b) in enumerate(zip(gptq_ids, j["generated_ids"])) if a != b), min(len(gptq_ids), len(j["generated_ids"])))
    info.append(f"{name}: greedy ids agree with gptq.cpp for the first {agree} of {tokens}")

print(f"random Llama hidden {h}, intermediate {inter}, {blocks} blocks, vocab {vocab}; 4-bit g128 sym (RTN); "
      f"{threads} threads; prompt 16 tokens, {tokens} generated greedily ({steps} decode steps); "
      f"{reps} runs after 1 warm-up; block-linear parameters {params / 1e6:.1f} M")
print(f"gptq.cpp: {gb:.3f} GB checkpoint ({runs[0]['model_kind']})")
for line in info:
    print(line)
if note:
    print(note)
print()
hdr = (f"{'metric':<20} {'engine':<16} {'min':>10} {'median':>10} {'max':>10} {'gptq/llama (median)':>20}"
       f" {'int8/llama':>11}")
print(hdr)
print("-" * len(hdr))
for metric in ["load s", "load s/GB", "prefill-16 tok/s", "prefill-16 GFLOP/s", "decode tok/s"]:
    ours = statistics.median(rows["gptq.cpp"][metric])
    ours8 = statistics.median(rows8[metric]) if metric in rows8 else None
    table = list(rows.items())
    if ours8 is not None:
        table.insert(1, ("gptq.cpp int8", rows8))
    for i, (engine, m) in enumerate(table):
        v = m[metric]
        med = statistics.median(v)
        llama = engine.startswith("llama.cpp")
        ratio = f"{ours / med:.2f}" + (" (lower=better)" if metric.startswith("load") else "") if llama else ""
        ratio8 = f"{ours8 / med:.2f}" if llama and ours8 is not None else ""
        print(f"{metric if i == 0 else '':<20} {engine:<16} {min(v):>10.3f} {med:>10.3f} {max(v):>10.3f} {ratio:>20} {ratio8:>11}")
EOF
