#!/usr/bin/env bash
# The main job on a small default: generate the first 1,440 samples (10 of each (n_context, n_key) cell) of the
# paper's seed-1 joint-recall training stream into a binary dataset, validate it, and print the first sample.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p data
build/hax gen joint-recall --split train --count 1440 --out data/joint_recall_train_1440.bin
build/hax data info data/joint_recall_train_1440.bin
build/hax data cat data/joint_recall_train_1440.bin | head -n 2 | cut -c1-160
