#!/usr/bin/env bash
# Quantizes a random Llama-shaped checkpoint larger than the memory the run is given (README
# "Several machines (MPI)" / "Larger than memory"): hidden 4096, intermediate 11008, 16 blocks, F16
# (~6.5 GB), inside a memory limit below the file size, with a short calibration set. Prints the
# limit, the file size, the peak RSS of gptq, the peak memory of the group (page cache included),
# the wall time and the time per block.
#   scripts/bench_larger_than_memory.sh [--layers 16] [--limit 3G] [--nsamples 4] [--seqlen 128]
#       [--threads 0] [--activation-dtype fp32] [--modules "self_attn.q_proj"] [--dir DIR] [--keep]
# --modules: quantize only these linears of each block (--modules-in-block; the forward still runs
# every linear), to fit the run's time on a small machine.
# The limit is a memory cgroup: systemd-run --scope -p MemoryMax (when systemd runs), else a cgroup
# v2 or v1 memory group made by hand (root); else, as a weaker fallback, prlimit --data (heap only:
# the mapped checkpoint does not count), said so in the output.
set -euo pipefail
cd "$(dirname "$0")/.."
LAYERS=16 LIMIT=3G NSAMPLES=4 SEQLEN=128 THREADS=0 ADTYPE=fp32 DIR=/tmp/gptq-larger-than-memory KEEP=0 MODULES=""
while [ $# -gt 0 ]; do
  case $1 in
    --layers) LAYERS=$2; shift 2 ;;
    --limit) LIMIT=$2; shift 2 ;;
    --nsamples) NSAMPLES=$2; shift 2 ;;
    --seqlen) SEQLEN=$2; shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    --activation-dtype) ADTYPE=$2; shift 2 ;;
    --dir) DIR=$2; shift 2 ;;
    --modules) MODULES=$2; shift 2 ;;
    --keep) KEEP=1; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
to_bytes() { numfmt --from=iec "$1"; }
LIMIT_BYTES=$(to_bytes "$LIMIT")
BUILD_DIR=${BUILD_DIR:-build}
[ -x "$BUILD_DIR/gptq" ] && [ -x "$BUILD_DIR/bench_quantize" ] || ./scripts/build.sh --target gptq bench_quantize
G=$(readlink -f "$BUILD_DIR/gptq")
B=$(readlink -f "$BUILD_DIR/bench_quantize")

MODEL=$DIR/model
if [ ! -f "$DIR/layers-$LAYERS" ]; then
  rm -rf "$DIR"
  mkdir -p "$DIR"
  "$B" --hidden 4096 --intermediate 11008 --vocab 32000 --blocks "$LAYERS" --nsamples "$NSAMPLES" \
       --seqlen "$SEQLEN" --keep "$DIR" --write-only 1
  touch "$DIR/layers-$LAYERS"
fi
FILE_BYTES=$(du -cb "$MODEL"/*.safetensors | tail -1 | cut -f1)
rm -rf "$DIR/out" "$DIR/out.partial"
# The file's pages out of the page cache when allowed (they would not be charged to the group).
sync; echo 1 > /proc/sys/vm/drop_caches 2>/dev/null || true

CMD=("$G" quantize "$MODEL" "$DIR/out" --calib "$DIR/calib.json" --nsamples "$NSAMPLES" --seqlen "$SEQLEN"
     --threads "$THREADS" --activation-dtype "$ADTYPE" --quiet --report "$DIR/report.json")
[ -n "$MODULES" ] && CMD+=(--modules-in-block "$MODULES")
HOW="" PEAK_FILE="" CG=""
if systemd-run --scope -q -p MemoryMax=1G true 2>/dev/null; then
  HOW="systemd-run --scope -p MemoryMax=$LIMIT_BYTES -p MemorySwapMax=0"
  run() { systemd-run --scope -q -p MemoryMax="$LIMIT_BYTES" -p MemorySwapMax=0 "$@"; }
elif grep -qw memory /sys/fs/cgroup/cgroup.controllers 2>/dev/null && mkdir "/sys/fs/cgroup/gptq-ltm-$$" 2>/dev/null; then
  CG=/sys/fs/cgroup/gptq-ltm-$$
  echo "$LIMIT_BYTES" > "$CG/memory.max"; echo 0 > "$CG/memory.swap.max" 2>/dev/null || true
  HOW="cgroup v2 $CG memory.max=$LIMIT_BYTES"; PEAK_FILE=$CG/memory.peak
  run() { bash -c 'echo $$ > "$0/cgroup.procs"; exec "$@"' "$CG" "$@"; }
elif [ -d /sys/fs/cgroup/memory ] && mkdir "/sys/fs/cgroup/memory/gptq-ltm-$$" 2>/dev/null; then
  CG=/sys/fs/cgroup/memory/gptq-ltm-$$
  echo "$LIMIT_BYTES" > "$CG/memory.limit_in_bytes"
  [ -f "$CG/memory.memsw.limit_in_bytes" ] && echo "$LIMIT_BYTES" > "$CG/memory.memsw.limit_in_bytes"
  HOW="cgroup v1 $CG memory.limit_in_bytes=$LIMIT_BYTES (no swap)"; PEAK_FILE=$CG/memory.max_usage_in_bytes
  run() { bash -c 'echo $$ > "$0/cgroup.procs"; exec "$@"' "$CG" "$@"; }
else
  HOW="prlimit --data=$LIMIT_BYTES (fallback: limits the heap, not the mapped checkpoint)"
  run() { prlimit --data="$LIMIT_BYTES" "$@"; }
fi
cleanup() { [ -n "$CG" ] && rmdir "$CG" 2>/dev/null; [ "$KEEP" = 1 ] || rm -rf "$DIR"; }
trap cleanup EXIT

echo "checkpoint: $LAYERS blocks, hidden 4096, intermediate 11008, vocab 32000, F16: $FILE_BYTES bytes ($(numfmt --to=iec "$FILE_BYTES"))"
echo "limit:      $LIMIT_BYTES bytes ($(numfmt --to=iec "$LIMIT_BYTES")) via $HOW"
echo "run:        ${CMD[*]}"
START=$(date +%s.%N)
# Peak anonymous and file-backed RSS of gptq, sampled every second (VmHWM counts both: the pages of
# the mapped checkpoint that the kernel leaves resident are reclaimable and not charged to the heap).
# Also the time of each block: from one update of the run state (blocks_done) to the next.
sample() {
  local pid ma=0 mf=0 a f done last=-1 t0
  while [ -z "${pid:-}" ]; do pid=$(pgrep -f "quantize $MODEL" | head -1); sleep 0.2; done
  t0=$(date +%s.%N)
  : > "$DIR/block-times"
  while kill -0 "$pid" 2>/dev/null; do
    a=$(awk '/RssAnon/{print $2}' "/proc/$pid/status" 2>/dev/null); f=$(awk '/RssFile/{print $2}' "/proc/$pid/status" 2>/dev/null)
    [ -n "$a" ] && [ "$a" -gt "$ma" ] && ma=$a; [ -n "$f" ] && [ "$f" -gt "$mf" ] && mf=$f
    echo "$ma $mf" > "$DIR/rss-peaks"
    done=$(grep -o '"blocks_done": *[0-9]*' "$DIR/out.partial/.gptq-run/state.json" 2>/dev/null | grep -o '[0-9]*$' || true)
    if [ -n "$done" ] && [ "$done" != "$last" ]; then
      [ "$last" -ge 0 ] && echo "block $((done - 1)): $(python3 -c "print(f'{$(date +%s.%N)-$t0:.1f}')") s" >> "$DIR/block-times"
      last=$done; t0=$(date +%s.%N)
    fi
    sleep 0.5
  done
  # The last block: to the end of the run (its state is removed when the output is finished).
  [ "$last" -ge 0 ] && [ "$last" -lt "$LAYERS" ] &&
    echo "block $last: $(python3 -c "print(f'{$(date +%s.%N)-$t0:.1f}')") s" >> "$DIR/block-times"
  return 0
}
sample & SAMPLER=$!
set +e
run "${CMD[@]}" 2> "$DIR/quantize.log"
RC=$?
set -e
for _ in 1 2 3 4 5 6; do kill -0 "$SAMPLER" 2>/dev/null || break; sleep 0.5; done
kill "$SAMPLER" 2>/dev/null || true
END=$(date +%s.%N)
cat "$DIR/block-times" 2>/dev/null || true
tail -3 "$DIR/quantize.log"
[ $RC -eq 0 ] || { echo "FAIL: gptq exited with $RC (137: killed by the memory limit)"; exit 1; }
PEAK_RSS=$(python3 -c "import json;print(json.load(open('$DIR/report.json'))['totals']['peak_rss_bytes'])")
echo "result:     exit 0, wall $(python3 -c "print(f'{$END-$START:.1f}')") s"
echo "peak RSS:   $PEAK_RSS bytes ($(numfmt --to=iec "$PEAK_RSS")) = $(python3 -c "print(f'{$PEAK_RSS/$FILE_BYTES:.2f}')") x the file, $(python3 -c "print(f'{$PEAK_RSS/$LIMIT_BYTES:.2f}')") x the limit"
if [ -f "$DIR/rss-peaks" ]; then
  read -r MA MF < "$DIR/rss-peaks"
  echo "sampled:    peak RssAnon $((MA / 1024)) MiB (heap), peak RssFile $((MF / 1024)) MiB (mapped checkpoint pages)"
fi
if [ -n "$PEAK_FILE" ] && [ -f "$PEAK_FILE" ]; then
  P=$(cat "$PEAK_FILE")
  echo "group peak: $P bytes ($(numfmt --to=iec "$P"), page cache of the mapped file included)"
fi
python3 - "$DIR/block-times" <<'PY'
import re, sys
t = [float(m.group(1)) for m in re.finditer(r"^block \d+: ([0-9.]+) s", open(sys.argv[1]).read(), re.M)]
# (each block from the previous update of the run state: block 0 from the one after the copy)
if t:
    print(f"per block:  mean {sum(t)/len(t):.1f} s, min {min(t):.1f} s, max {max(t):.1f} s over {len(t)} blocks")
PY
