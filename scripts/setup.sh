#!/usr/bin/env bash
# Installs the Debian packages diffsearch needs to build and test. Idempotent:
# when everything is present it changes nothing and runs no apt-get at all.
set -euo pipefail

packages=(
  build-essential cmake pkg-config
  libtorch-dev
  libopenmpi-dev openmpi-bin
  libhdf5-dev
  nlohmann-json3-dev
  libspdlog-dev
  libgtest-dev
  libcli11-dev
  python3 python3-h5py python3-pandas python3-numpy
  slurm-wlm munge  # a real one-node Slurm for the Slurm tests (slurm/testing/)
  chromium  # headless, opens `diffsearch report`'s HTML in its test (tests/cli/report_e2e_test.cc)
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#packages[@]} packages present"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "setup: missing packages: ${missing[*]}; run this script as root (or with sudo)" >&2
  exit 2
fi
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
