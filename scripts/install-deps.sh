#!/usr/bin/env bash
# Installs the Debian 12 packages hax needs to build and run (the default corpus of `hax lm prepare` included).
# With the argument `test`, also the test oracles (PyTorch and numpy under /usr/bin/python3, about 150 packages:
# scripts/test.sh asks for them, nothing else needs them); with `fuzz`, also what the fuzz targets need
# (scripts/fuzz.sh: clang and its libFuzzer + sanitizer runtimes). Safe to run any number of times: when everything
# is already installed it does nothing (and needs neither root nor the network).
set -euo pipefail

packages=(
  build-essential cmake pkg-config
  libopenblas-openmp-dev   # GEMM; the OpenMP build, so it shares our thread pool instead of oversubscribing
  libcli11-dev nlohmann-json3-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libsentencepiece-dev zlib1g-dev   # the tokenizer of real-text corpora, and reading .gz documents
  linux-doc-6.1                     # the default corpus of `hax lm prepare` (the kernel's documentation)
)
case "${1:-}" in
  "") ;;
  test) packages+=(python3 python3-numpy python3-torch) ;;  # test oracles only (run under /usr/bin/python3)
  fuzz) packages+=(clang libclang-rt-14-dev) ;;  # libclang_rt.fuzzer: only recommended by clang, so named here
  *) echo "install-deps: unknown argument '$1' (expected nothing, test or fuzz)" >&2; exit 2 ;;
esac

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
  sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
