#!/usr/bin/env bash
# hax bench train-step at the paper's setting (batch 64, padded length 1057, configs/mamba_double_size.json) against
# the PyTorch baseline, from a fresh Release build; the figures also go to runs/bench/train_step.json. Extra
# arguments go to the command, e.g. `bench/train_step.sh --threads 1 --baseline-steps 2`.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" --target hax
mkdir -p runs/bench
exec build/hax bench train-step --json runs/bench/train_step.json "$@"
