#!/usr/bin/env bash
# The main job on a small default (about 3 minutes on 2 cores):
#  1. generate the first 1,440 samples (10 per (n_context, n_key) cell) of the paper's seed-1 joint-recall stream,
#     validate the file and show its first sample;
#  2. train Mamba2 (configs/mamba2.json) and Mamba2 + HAX (--sparse-arch sign_bin_lsh+key_selection, the paper's
#     sparse attention, in hax's strictly causal semantics) side by side, one core each, for 1,000 updates of 32
#     sequences on a smaller joint-recall grid (4-8 contexts x 4-8 keys), the CPU-scale setting of docs/results.md
#     where plain Mamba2 is still on its ~23% plateau after 1,000 updates and HAX is not;
#  3. evaluate both best checkpoints on 1,000 test samples, per cell, with heatmaps, and print the two accuracies.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p data runs
build/hax gen joint-recall --split train --count 1440 --out data/joint_recall_train_1440.bin
build/hax data info data/joint_recall_train_1440.bin | head -n 12
build/hax data cat data/joint_recall_train_1440.bin --count 1 | cut -c1-120

TASK=(--min-contexts 4 --max-contexts 8 --min-keys 4 --max-keys 8 --eval-per-cell 40)

# train_and_eval RUN [extra train flags...]
train_and_eval() {
  local run="runs/$1"
  shift
  rm -rf "$run"
  OMP_WAIT_POLICY=passive build/hax train --config configs/mamba2.json --out "$run" --steps 1000 --batch-size 32 \
    --warmup 500 --eval-every 500 --threads 1 "${TASK[@]}" "$@" > "$run.log" 2>&1
  OMP_WAIT_POLICY=passive build/hax eval --checkpoint "$run/best" --threads 1 "${TASK[@]}" --json "$run/eval.json" \
    --heatmap "$run/heatmap.svg" >> "$run.log" 2>&1
}
# The overall test accuracy (the first "accuracy" of eval.json), in percent.
accuracy() {
  sed -n 's/.*"accuracy": *\([0-9.eE+-]*\).*/\1/p' "runs/$1/eval.json" | head -n 1 | awk '{printf "%.1f%%", 100 * $1}'
}

echo "demo: training Mamba2 and Mamba2 + HAX side by side (logs: runs/demo_mamba2.log, runs/demo_mamba2_hax.log)"
train_and_eval demo_mamba2 &
plain=$!
train_and_eval demo_mamba2_hax --sparse-arch sign_bin_lsh+key_selection &
hax=$!
wait "$plain" "$hax"
printf 'demo: test accuracy after 1,000 updates (1,000 test samples, 4-8 contexts x 4-8 keys):\n'
printf '  Mamba2          %s\n  Mamba2 + HAX    %s\n' "$(accuracy demo_mamba2)" "$(accuracy demo_mamba2_hax)"
echo "demo: per-cell accuracy in runs/demo_mamba2*/eval.json and runs/demo_mamba2*/heatmap.svg"
