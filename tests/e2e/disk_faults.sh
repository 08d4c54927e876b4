#!/usr/bin/env bash
# Fault injection on the output side of `gptq quantize`:
#   * a file size limit (ulimit -f, EFBIG) hit while copying the float tensors: exit 4, one clear
#     error line, nothing left behind (no OUT, no OUT.partial);
#   * the same limit hit after the first durable state (on the activations checkpoint): exit 4,
#     no OUT, a resumable OUT.partial that --resume (without the limit) completes to the bytes of
#     an uninterrupted run;
#   * a full file system (a small tmpfs; skipped where mount is not permitted): exit 4, "disk is
#     full", nothing left on the file system;
#   * a read-only output location (a read-only tmpfs or bind mount; else a path under /proc):
#     exit 4 naming the output, before calibration starts (the --calib file given does not even
#     exist, and the error must be about the output).
# Usage: bash disk_faults.sh <gptq-binary> <source-dir>   (run by ctest as e2e_disk_faults)
set -euo pipefail
G=$(readlink -f "$1")
SRC=$(readlink -f "$2")
W=$(mktemp -d "${TMPDIR:-/tmp}/gptq-disk.XXXXXX")
MOUNTS=()
cleanup() {
  for m in "${MOUNTS[@]}"; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
  rm -rf "$W"
}
trap cleanup EXIT
cd "$W"
M=$SRC/testdata/models/tiny-llama
ARGS=(--calib "$SRC/testdata/data/calib.txt" --nsamples 32 --seqlen 256 --damp 0.01 --quiet)

fail() { echo "FAIL: $*" >&2; exit 1; }

# exit code, one "error: " line containing each of the given substrings.
expect_error() {  # log code rc substrings...
  local log=$1 code=$2 rc=$3
  shift 3
  [ "$rc" = "$code" ] || { cat "$log" >&2; fail "exit $rc, expected $code"; }
  [ "$(wc -l <"$log")" = 1 ] || { cat "$log" >&2; fail "stderr is not exactly one line"; }
  grep -q '^error: ' "$log" || fail "stderr does not start with 'error: '"
  for s in "$@"; do grep -qF -- "$s" "$log" || { cat "$log" >&2; fail "stderr lacks '$s'"; }; done
  echo "ok: $(cat "$log")"
}

"$G" quantize "$M" ref "${ARGS[@]}" 2>/dev/null || fail "uninterrupted run failed"
model_bytes=$(cat ref/*.safetensors | wc -c)

# ---- ulimit -f: the limit is hit while the float tensors are copied (1 MiB) ----
rc=0
( ulimit -f 1024; exec "$G" quantize "$M" small "${ARGS[@]}" ) 2>small.log || rc=$?
expect_error small.log 4 "$rc" "small.partial" "maximum file size"
[ -e small ] && fail "small exists"
[ -e small.partial ] && fail "small.partial left behind although nothing durable was written"

# ---- ulimit -f: room for the checkpoint, not for the activations (acts-1.bin is larger) ----
acts_bytes=$(( 32 * 256 * 256 * 4 ))
[ "$acts_bytes" -gt $(( model_bytes + 262144 )) ] || fail "test setup: activations smaller than the model"
rc=0
( ulimit -f $(( model_bytes / 1024 + 256 )); exec "$G" quantize "$M" late "${ARGS[@]}" ) 2>late.log || rc=$?
expect_error late.log 4 "$rc" "late.partial" "acts-1.bin" "maximum file size"
[ -e late ] && fail "late exists after a failed run"
[ -f late.partial/.gptq-run/state.json ] || fail "late.partial is not resumable"
"$G" quantize "$M" late "${ARGS[@]}" --resume 2>late-resume.log || { cat late-resume.log >&2; fail "resume failed"; }
diff -r ref late >/dev/null || fail "the resumed output differs from the uninterrupted run"
echo "ok: resumed after the file size error, identical output"

# ---- a full file system ----
mkdir tiny
if mount -t tmpfs -o size=3m tmpfs tiny 2>/dev/null; then
  MOUNTS+=("$W/tiny")
  rc=0
  "$G" quantize "$M" tiny/out "${ARGS[@]}" 2>full.log || rc=$?
  expect_error full.log 4 "$rc" "tiny/out.partial" "disk is full"
  [ -z "$(ls -A tiny)" ] || { ls -la tiny >&2; fail "files left on the full file system"; }
else
  echo "skip: cannot mount a tmpfs here (full-disk case covered by ulimit -f above)"
fi

# ---- a read-only output location, refused before calibration ----
mkdir ro
if mount -t tmpfs -o ro,size=1m tmpfs ro 2>/dev/null; then
  MOUNTS+=("$W/ro")
  out=ro/out
elif mkdir -p rosrc && mount --bind -o ro rosrc ro 2>/dev/null; then
  MOUNTS+=("$W/ro")
  out=ro/out
else
  out=/proc/gptq-readonly-test/out
  echo "note: no read-only mount permitted; using $out"
fi
rc=0
"$G" quantize "$M" "$out" --calib "$W/no-such-calibration.txt" --nsamples 4 --seqlen 64 --quiet 2>ro.log || rc=$?
expect_error ro.log 4 "$rc" "$out.partial" "writable"
grep -q no-such-calibration ro.log && fail "the calibration file was looked at before the output"
[ -e "$out" ] && fail "$out exists"

echo "disk_faults: all cases passed"
