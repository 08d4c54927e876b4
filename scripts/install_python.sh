#!/usr/bin/env bash
# Installs the Python package gptqcpp (python/) into a virtual environment, offline: Debian's
# Python with its system packages (numpy, pytest, tqdm from apt, scripts/setup.sh), pip without an
# index, and the C++ module built by the project's CMake build (build/, incremental).
#   scripts/install_python.sh          -> build/venv (VENV=... to choose another place)
# Then: build/venv/bin/python -c "import gptqcpp", or `source build/venv/bin/activate`.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
BUILD=${BUILD_DIR:-build}
VENV=${VENV:-$BUILD/venv}
PYTHON=/usr/bin/python3  # Debian's interpreter: the one its python3-* packages serve
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv --system-site-packages "$VENV"
GPTQ_BUILD_DIR=$PWD/$BUILD "$VENV/bin/pip" install --quiet --no-index --no-build-isolation --no-deps \
  --disable-pip-version-check ./python
echo "gptqcpp $("$VENV/bin/python" -c 'import gptqcpp; print(gptqcpp.__version__)') installed in $VENV"
