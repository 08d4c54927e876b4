#!/usr/bin/env bash
# Installs the Debian 12 packages gptq.cpp builds with (idempotent: installs only what is missing).
set -euo pipefail
PKGS=(g++ cmake ninja-build pkg-config
      libopenblas-dev liblapacke-dev nlohmann-json3-dev libcli11-dev libfmt-dev
      libpcre2-dev libsentencepiece-dev libhwy-dev libxxhash-dev libgtest-dev libgmock-dev libbenchmark-dev
      # the Python package gptqcpp (python/): its module, install and tests; tqdm draws progress bars
      python3 python3-dev pybind11-dev python3-numpy python3-pytest python3-venv python3-pip
      python3-setuptools python3-wheel python3-tqdm)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
