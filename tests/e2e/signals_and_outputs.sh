#!/usr/bin/env bash
# What the README's exit codes promise when the run is disturbed from outside:
#   * SIGTERM, SIGINT and SIGHUP sent to a running `gptq quantize` (after its first durable block):
#     exit 6, one error line naming the signal and --resume, no OUT; --resume then gives the bytes
#     of an uninterrupted run. A second run on the same OUT.partial meanwhile is refused ("in use
#     by another run (pid N)", exit 2). SIGTERM to `gptq eval` and SIGHUP to `gptq generate`: exit 6.
#   * stdout that cannot be written (> /dev/full) for inspect, eval --json and generate: exit 4,
#     one error line about standard output (never exit 0 with the output lost).
#   * the model file truncated while the run reads it through its mapping (SIGBUS): exit 4, one
#     line naming the file; once the file is restored, --resume gives the same bytes.
# Usage: bash signals_and_outputs.sh <gptq-binary> <source-dir>   (ctest: e2e_signals_and_outputs)
set -euo pipefail
G=$(readlink -f "$1")
SRC=$(readlink -f "$2")
W=$(mktemp -d "${TMPDIR:-/tmp}/gptq-signals.XXXXXX")
trap 'rm -rf "$W"' EXIT
cd "$W"
M=$SRC/testdata/models/tiny-llama
C=$SRC/testdata/data/calib.txt
ARGS=(--calib "$C" --nsamples 32 --seqlen 256 --damp 0.01 --quiet)

fail() { echo "FAIL: $*" >&2; exit 1; }

expect_error() {  # log code rc substrings...
  local log=$1 code=$2 rc=$3
  shift 3
  [ "$rc" = "$code" ] || { cat "$log" >&2; fail "exit $rc, expected $code"; }
  [ "$(wc -l <"$log")" = 1 ] || { cat "$log" >&2; fail "stderr is not exactly one line"; }
  grep -q '^error: ' "$log" || { cat "$log" >&2; fail "stderr does not start with 'error: '"; }
  for s in "$@"; do grep -qF -- "$s" "$log" || { cat "$log" >&2; fail "stderr lacks '$s'"; }; done
  echo "ok: $(cat "$log")"
}

"$G" quantize "$M" ref "${ARGS[@]}" 2>ref.log || { cat ref.log >&2; fail "uninterrupted run failed"; }

# ---- signals to quantize: exit 6, resumable to the same bytes ----
for sig in TERM INT HUP; do
  out=q$sig
  "$G" quantize "$M" "$out" "${ARGS[@]}" 2>"$out.log" &
  pid=$!
  until [ -e "$out.partial/.gptq-run/acts-1.bin" ] || ! kill -0 "$pid" 2>/dev/null; do sleep 0.01; done
  if [ "$sig" = TERM ]; then  # a second run on the same OUT.partial while the first holds it
    rc=0
    "$G" quantize "$M" "$out" "${ARGS[@]}" --resume 2>busy.log || rc=$?
    expect_error busy.log 2 "$rc" "$out.partial" "in use by another run (pid $pid)"
  fi
  kill -"$sig" "$pid" || fail "the run ended before SIG$sig could be sent"
  rc=0
  wait "$pid" || rc=$?
  expect_error "$out.log" 6 "$rc" "interrupted by SIG$sig" "$out.partial" "--resume"
  [ -e "$out" ] && fail "$out exists after SIG$sig"
  [ -f "$out.partial/.gptq-run/state.json" ] || fail "$out.partial is not resumable"
  "$G" quantize "$M" "$out" "${ARGS[@]}" --resume 2>"$out.resume.log" || { cat "$out.resume.log" >&2; fail "resume after SIG$sig failed"; }
  diff -r ref "$out" >/dev/null || fail "resumed output after SIG$sig differs from the uninterrupted run"
  echo "ok: SIG$sig then --resume: identical output"
done

# ---- signals to eval and generate ----
"$G" eval "$M" --text "$C" --seqlen 64 --json >eval.out 2>eval.log &
pid=$!
sleep 0.3
kill -TERM "$pid" || fail "eval ended before SIGTERM"
rc=0
wait "$pid" || rc=$?
expect_error eval.log 6 "$rc" "interrupted by SIGTERM"
"$G" generate "$M" --prompt "And God said" --max-new-tokens 400 --temperature 0 >gen.out 2>gen.log &
pid=$!
sleep 0.3
kill -HUP "$pid" || fail "generate ended before SIGHUP"
rc=0
wait "$pid" || rc=$?
expect_error gen.log 6 "$rc" "interrupted by SIGHUP"

# ---- stdout on a full disk ----
for cmd in "inspect $M" "inspect $M --json" "eval $M --text $C --seqlen 64 --max-windows 2 --json" \
           "generate $M --prompt In --max-new-tokens 4" "generate $M --prompt In --max-new-tokens 4 --json"; do
  rc=0
  # shellcheck disable=SC2086
  "$G" $cmd >/dev/full 2>full.log || rc=$?
  expect_error full.log 4 "$rc" "cannot write to standard output" "No space left on device"
done

# ---- the model truncated under the mapping (SIGBUS) ----
mkdir m
cp "$M"/* m/ 2>/dev/null || true
rc=0
GPTQ_TEST_TRUNCATE_AFTER_BLOCK=2:m/model.safetensors "$G" quantize m bus "${ARGS[@]}" 2>bus.log || rc=$?
expect_error bus.log 4 "$rc" "m/model.safetensors" "changed or was truncated while being read"
[ -e bus ] && fail "bus exists after the truncated read"
cp "$M/model.safetensors" m/model.safetensors
"$G" quantize m bus "${ARGS[@]}" --resume 2>bus.resume.log || { cat bus.resume.log >&2; fail "resume after restoring the file failed"; }
diff -r ref bus >/dev/null || fail "resumed output after the truncation differs"
echo "ok: truncated model file reported, resumed after restoring it: identical output"
echo "signals_and_outputs: all cases passed"
