#!/usr/bin/env bash
# The README's C++ API example is examples/quickstart.cpp, and it runs as written: the command the
# README gives (build/quickstart ...) is run from a scratch directory that sees the same testdata/.
# Usage: bash readme_example.sh <gptq-binary> <source-dir>   (run by ctest as e2e_readme_example)
set -euo pipefail
BIN=$(dirname "$(readlink -f "$1")")
SRC=$(readlink -f "$2")
W=$(mktemp -d "${TMPDIR:-/tmp}/gptq-readme.XXXXXX")
trap 'rm -rf "$W"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# The ```cpp block of the README that includes <gptq/gptq.h>.
awk '/^```cpp$/ {inb=1; buf=""; next} /^```$/ && inb {if (buf ~ /gptq\/gptq.h/) printf "%s", buf; inb=0; next} inb {buf = buf $0 "\n"}' \
  "$SRC/README.md" >"$W/readme.cpp"
[ -s "$W/readme.cpp" ] || fail "no C++ example in README.md"
diff -u "$SRC/examples/quickstart.cpp" "$W/readme.cpp" || fail "README.md's C++ example differs from examples/quickstart.cpp"

# The README's command line that runs it.
cmd=$(grep -E '^build/quickstart ' "$SRC/README.md" | head -1)
[ -n "$cmd" ] || fail "README.md has no 'build/quickstart ...' command"
[ -x "$BIN/quickstart" ] || fail "$BIN/quickstart missing: ./scripts/build.sh --target quickstart"
mkdir -p "$W/run/build" && ln -s "$SRC/testdata" "$W/run/testdata" && ln -s "$BIN/quickstart" "$W/run/build/quickstart"
(cd "$W/run" && eval "$cmd") >"$W/out.txt" 2>&1 || { cat "$W/out.txt" >&2; fail "$cmd failed"; }
grep -q "layers quantized in" "$W/out.txt" || fail "no quantization summary: $(cat "$W/out.txt")"
grep -q "perplexity" "$W/out.txt" || fail "no evaluation: $(cat "$W/out.txt")"
echo "ok: $cmd"
tail -3 "$W/out.txt"
