#!/usr/bin/env bash
# The paper's continual pre-training study (paper.md §4.2, issue 11) scaled to a 2-core CPU: pre-train a small
# Mamba (configs/lm_mamba_small.json) on the Linux kernel documentation, continue it as plain Mamba and with each
# sparse pattern added the paper's way (--init-from: K and Q from x_proj's B and C rows, E = 1), and evaluate every
# model the same way (hax lm eval: perplexity by position and the RULER-style tasks at 1x, 2x and 4x the context).
#
# Scaled recipe (the paper's in brackets): context 512 [2K]; budget k = 32 [128], split 16 + 16 in two-pattern
# unions; argmax LSH with h = k = 32 hyperplanes [h = k]; continuation 400 updates [50K] of 8 x 512 tokens, with the
# schedule's shape kept: 2 updates at lr 0 [200], 6 of linear warm-up [800], cosine from 3e-4 to 1e-5 [the same].
# Pre-training: 1500 updates, lr 1e-3 (100 of warm-up, cosine to 1e-4), gradient clipping at 1.
#
# Every step is resumable: a finished step leaves STEP.done in the runs folder and is skipped; an interrupted
# training resumes exactly from its last/ checkpoint (eval every 100 updates). Run folders live outside the work
# tree. Afterwards scripts/real_text_json.py writes docs/results/real_text.json and the table for docs/results.md.
#
# Usage: scripts/real_text_study.sh [--jobs N] [--runs-dir DIR]
#   --jobs N      continuations and evaluations run N at a time, one thread each; pre-training, which runs
#                 alone, uses N threads (default 2)
#   --runs-dir    default ${HAX_RUNS_DIR:-~/hax-runs}/real_text
#   HAX_BINARY    the hax binary (default build/hax)
#   steps (STEP.done, STEP.log, STEP.command): corpus, pretrain, eval_pretrain, cont_<variant>, eval_<variant>
set -euo pipefail
cd "$(dirname "$0")/.."

jobs=2
runs="${HAX_RUNS_DIR:-$HOME/hax-runs}/real_text"
while [ $# -gt 0 ]; do
  case "$1" in
    --jobs) jobs="$2"; shift 2 ;;
    --runs-dir) runs="$2"; shift 2 ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "real_text_study.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done

hax="${HAX_BINARY:-$(pwd)/build/hax}"  # a copy outside build/ keeps a long study safe from rebuilds
[ -x "$hax" ] || { echo "real_text_study.sh: $hax is missing: run scripts/build.sh first" >&2; exit 1; }
mkdir -p "$runs"
export OMP_WAIT_POLICY=passive  # several single-thread jobs share the cores

context=512
batch=8
keys=32
corpus="$runs/corpus"

# The sparse variants of the paper's Table 2/4, by the names used in the results: name -> hax flags.
declare -A variant_flags=(
  [mamba]=""
  [sw]="--sparse-arch sliding_window --sparse-keys $keys"
  [a]="--sparse-arch sliding_window+sink --sparse-keys $keys"
  [d]="--sparse-arch dilated --sparse-keys $keys --data-max-length $context"
  [lsh]="--sparse-arch argmax_lsh --sparse-keys $keys --num-hash $keys"
  [ks]="--sparse-arch key_selection --sparse-keys $keys"
  [hax]="--sparse-arch argmax_lsh+key_selection --sparse-keys $keys --num-hash $keys"
)
variants=(mamba hax ks lsh sw a d)

# Runs `command...` once with `threads` OpenMP threads: skipped when STEP.done exists; the command line goes to
# STEP.command and the output to STEP.log; STEP.done records the wall time.
threads=1
run_step() {
  local step="$1"; shift
  [ -f "$runs/$step.done" ] && { echo "== $step: done already"; return 0; }
  echo "== $step: $*"
  printf '%q ' "$@" > "$runs/$step.command"; echo >> "$runs/$step.command"
  local start; start=$(date +%s.%N)
  if "$@" > "$runs/$step.log" 2>&1; then
    echo "{\"step\": \"$step\", \"wall_seconds\": $(echo "$(date +%s.%N) - $start" | bc), \"threads\": $threads, \"finished\": \"$(date -u +%FT%TZ)\", \"machine\": \"$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')\"}" > "$runs/$step.done"
    echo "== $step: finished"
  else
    echo "== $step: FAILED (see $runs/$step.log)" >&2
    return 1
  fi
}

# `hax lm train` with --resume when an earlier attempt left a checkpoint.
train() {
  local out="$1"; shift
  local resume=()
  [ -d "$out/last" ] && resume=(--resume)
  "$hax" lm train --corpus "$corpus" --out "$out" --context $context --batch-size $batch --threads $threads \
    --eval-every 100 --eval-windows 64 "$@" "${resume[@]}"
}

evaluate() {
  local checkpoint="$1" out="$2"
  "$hax" lm eval --checkpoint "$checkpoint" --corpus "$corpus" --context $context --lengths 1,2,4 \
    --depths 0,25,50,75,100 --samples 4 --threads 1 --out "$out"
}

if [ ! -f "$runs/corpus.done" ]; then
  rm -rf "$corpus"  # a half-made corpus never exists (prepare renames into place), but an old one might
fi
run_step corpus "$hax" lm prepare --extensions rst,txt --vocab-size 8192 --seed 1 --threads 2 --out "$corpus"

threads=$jobs
run_step pretrain train "$runs/pretrain" --config configs/lm_mamba_small.json --vocab-from-corpus --steps 1500 \
  --lr 1e-3 --min-lr 1e-4 --warmup 100 --clip-grad 1

# Continuations, then evaluations, `jobs` at a time.
threads=1
pids=()
throttle() {
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || true; done
}
run_step eval_pretrain evaluate "$runs/pretrain/best" "$runs/eval_pretrain" &
for v in "${variants[@]}"; do
  throttle
  # shellcheck disable=SC2086
  run_step "cont_$v" train "$runs/cont_$v" --init-from "$runs/pretrain/best" ${variant_flags[$v]} --steps 400 \
    --lr 3e-4 --min-lr 1e-5 --zero-steps 2 --warmup 6 --clip-grad 1 &
done
wait
for v in "${variants[@]}"; do
  throttle
  [ -f "$runs/cont_$v.done" ] && run_step "eval_$v" evaluate "$runs/cont_$v/best" "$runs/eval_$v" &
done
wait
echo "== all steps finished; now: scripts/real_text_json.py"
