#!/usr/bin/env bash
# Installs llama.cpp for the GGUF tests: the npm package node-llama-cpp (pinned) with its prebuilt
# CPU binaries for linux-x64 (libllama, libggml-base.so), outside the repository, in
# ${GPTQ_NPM_CACHE:-$HOME/.cache/gptq-cpp/node-llama-cpp}. Optional dependencies (CUDA/Vulkan builds,
# other platforms) are left out and the package's postinstall (a from-source build fallback) is not
# run. Prints the install prefix; exits non-zero when it cannot be installed (no node/npm, offline).
set -euo pipefail
VERSION=3.21.1
PREFIX=${GPTQ_NPM_CACHE:-$HOME/.cache/gptq-cpp/node-llama-cpp}
LIB="$PREFIX/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64/libggml-base.so"
PKG="$PREFIX/node_modules/node-llama-cpp/package.json"
if [[ -f "$LIB" && -f "$PKG" ]] && grep -q "\"version\": \"$VERSION\"" "$PKG"; then
  echo "$PREFIX"
  exit 0
fi
command -v npm >/dev/null || { echo "setup_llama_cpp: npm is not installed" >&2; exit 1; }
mkdir -p "$PREFIX"
NODE_LLAMA_CPP_SKIP_DOWNLOAD=true npm install --prefix "$PREFIX" --no-audit --no-fund --omit=optional \
  --ignore-scripts "node-llama-cpp@$VERSION" "@node-llama-cpp/linux-x64@$VERSION" >&2
[[ -f "$LIB" ]] || { echo "setup_llama_cpp: $LIB missing after npm install" >&2; exit 1; }
echo "$PREFIX"
