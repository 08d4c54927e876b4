#!/usr/bin/env bash
# Fault injection: a quantize run killed with SIGKILL, then continued with --resume, must produce
# exactly the bytes of an uninterrupted run (every file compared), and nothing may appear at OUT
# before the run completes. Kill points:
#   1-3  GPTQ_TEST_KILL_AFTER_BLOCK=1,2,3 (right after a block is durable)
#   4    kill -9 at a random time after OUT.partial appears (calibration, copy, block 0)
#   5    kill -9 at a random time after the first block is durable (inside a later block)
# and three states a kill can leave that are too narrow to hit by timing, built from real runs:
#   torn       killed after acts-<n+1>.bin was written but before state.json said n+1
#   finishing  killed after the shards were renamed into place, before the rename of OUT.partial
#   no-state   killed after the run state was removed (the owner marker stays), before the rename
#              of OUT.partial
# Usage: bash kill_resume.sh <gptq-binary> <source-dir>   (run by ctest as e2e_kill_resume)
set -euo pipefail
G=$(readlink -f "$1")
SRC=$(readlink -f "$2")
W=$(mktemp -d "${TMPDIR:-/tmp}/gptq-kill.XXXXXX")
trap 'rm -rf "$W"' EXIT
cd "$W"
M=$SRC/testdata/models/tiny-llama
ARGS=(--calib "$SRC/testdata/data/calib.txt" --nsamples 64 --seqlen 256 --damp 0.01 --quiet
      --max-shard-size 2MB)
SEED=${KILL_SEED:-$(( $(date +%s) % 10000 ))}
RANDOM=$SEED
echo "kill_resume: random seed $SEED (KILL_SEED=$SEED reproduces the delays)"

fail() { echo "FAIL: $*" >&2; exit 1; }

# The same bytes in every file, and the same set of files.
same_as_ref() {
  diff -r "$W/ref" "$1" >/dev/null || { diff -r "$W/ref" "$1" | head -5 >&2; fail "$1 differs from the uninterrupted run"; }
}

resume_and_check() {  # name
  local out=$1
  [ -e "$out" ] && fail "$out exists although the run was killed"
  [ -d "$out.partial" ] || fail "$out.partial missing after the kill"
  "$G" quantize "$M" "$out" "${ARGS[@]}" --resume 2>"$out.log" || { cat "$out.log" >&2; fail "--resume of $out failed"; }
  [ -e "$out.partial" ] && fail "$out.partial left behind after the resumed run"
  same_as_ref "$out"
  echo "ok: $out ($(grep -o 'resuming: [0-9]* of [0-9]* blocks already done' "$out.log" || echo 'started over'))"
}

start_ms=$(( $(date +%s%N) / 1000000 ))
"$G" quantize "$M" ref "${ARGS[@]}" 2>ref.log || { cat ref.log >&2; fail "uninterrupted run failed"; }
run_ms=$(( $(date +%s%N) / 1000000 - start_ms ))
echo "uninterrupted run: ${run_ms} ms, files: $(ls ref | tr '\n' ' ')"
[ "$(ls ref/*.safetensors | wc -l)" -ge 2 ] || fail "expected a sharded output"

# 1-3: at block boundaries.
for b in 1 2 3; do
  rc=0
  GPTQ_TEST_KILL_AFTER_BLOCK=$b "$G" quantize "$M" "k$b" "${ARGS[@]}" 2>"k$b.kill.log" || rc=$?
  [ "$rc" = 137 ] || fail "GPTQ_TEST_KILL_AFTER_BLOCK=$b: exit $rc, expected 137 (SIGKILL)"
  [ -d "k$b.partial" ] && cp -a "k$b.partial" "saved$b.partial"  # for the built states below
  resume_and_check "k$b"
done

# 4-5: asynchronous kill -9 at random times. The delay is drawn in [0, limit) after the trigger
# (OUT.partial created / first block durable); a run that finished first is tried again sooner.
async_kill() {  # name trigger-file
  local out=$1 trigger=$2 limit_ms tries
  limit_ms=$(( run_ms / 2 ))
  [ "$limit_ms" -ge 100 ] || limit_ms=100
  for tries in 1 2 3 4 5; do
    rm -rf "$out" "$out.partial"
    "$G" quantize "$M" "$out" "${ARGS[@]}" 2>"$out.kill.log" &
    local pid=$!
    until [ -e "$out.partial/$trigger" ] || ! kill -0 "$pid" 2>/dev/null; do sleep 0.01; done
    local delay_ms=$(( RANDOM % limit_ms ))
    sleep "$(printf '%d.%03d' $(( delay_ms / 1000 )) $(( delay_ms % 1000 )))"
    if kill -9 "$pid" 2>/dev/null; then
      wait "$pid" || true
      echo "$out: killed ${delay_ms}ms after $trigger appeared (try $tries)"
      resume_and_check "$out"
      return
    fi
    wait "$pid" || true
    limit_ms=$(( limit_ms / 2 + 1 ))
  done
  fail "$out: the run always finished before the kill"
}
async_kill a1 .
async_kill a2 .gptq-run/acts-1.bin

# torn: state.json of block 1, acts of blocks 1 and 2, shards of block 2's run.
cp -a saved2.partial torn.partial
cp saved1.partial/.gptq-run/state.json torn.partial/.gptq-run/state.json
cp saved1.partial/.gptq-run/acts-1.bin torn.partial/.gptq-run/acts-1.bin
resume_and_check torn

# finishing: every block durable, the shards already renamed into place (some or all).
GPTQ_TEST_KILL_AFTER_BLOCK=4 "$G" quantize "$M" fin "${ARGS[@]}" 2>/dev/null && fail "block 4 kill did not kill"
cp -a fin.partial nostate.partial
first=1
for p in fin.partial/*.safetensors.partial; do
  [ "$first" = 1 ] && { mv "$p" "${p%.partial}"; first=0; }  # one renamed, the others not yet
done
resume_and_check fin
rm -f nostate.partial/.gptq-run/state.json nostate.partial/.gptq-run/acts-*
resume_and_check nostate

echo "kill_resume: all kill points resumed to identical bytes"
