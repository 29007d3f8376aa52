#!/usr/bin/env bash
# The main job on a small default (a few minutes on 2 cores):
#  1. generate the first 1,440 samples (10 per (n_context, n_key) cell) of the paper's seed-1 joint-recall stream,
#     validate the file and show its first sample;
#  2. train the paper's Mamba config (configs/mamba.json) for 200 updates of 16 sequences on that stream;
#  3. evaluate the best checkpoint on 1,440 test samples, per cell, with a heatmap;
#  4. the same for Mamba + HAX (--sparse-arch sign_bin_lsh+key_selection, the paper's sparse attention).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p data runs
build/hax gen joint-recall --split train --count 1440 --out data/joint_recall_train_1440.bin
build/hax data info data/joint_recall_train_1440.bin | head -n 12
build/hax data cat data/joint_recall_train_1440.bin --count 1 | cut -c1-120

# train_and_eval RUN [extra train flags...]
train_and_eval() {
  local run="runs/$1"
  shift
  rm -rf "$run"
  build/hax train --config configs/mamba.json --out "$run" --steps 200 --batch-size 16 --warmup 50 \
    --eval-every 100 --valid-samples 288 "$@"
  build/hax eval --checkpoint "$run/best" --count 1440 --json "$run/eval.json" --heatmap "$run/heatmap.svg"
  echo "demo: metrics in $run/metrics.jsonl, per-cell accuracy in $run/eval.json and $run/heatmap.svg"
}
train_and_eval demo
train_and_eval demo_hax --sparse-arch sign_bin_lsh+key_selection
