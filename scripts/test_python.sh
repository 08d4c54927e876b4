#!/usr/bin/env bash
# The Python suite: installs gptqcpp into build/venv (scripts/install_python.sh) and runs its pytest
# suite (python/tests) against the installed package and the `gptq` CLI. Arguments go to pytest.
# pytest's own exit status is this script's (5 = no tests collected is a failure too).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD_DIR:-build}
VENV=${VENV:-$BUILD/venv}
./scripts/install_python.sh
./scripts/build.sh --target gptq >/dev/null
# From the repository root, so that `import gptqcpp` finds the installed package, not python/.
GPTQ_EXE=$PWD/$BUILD/gptq GPTQ_EXPECT_INSTALLED=1 "$VENV/bin/python" -m pytest python/tests -q -p no:cacheprovider "$@"
