#!/usr/bin/env bash
# Carries a sweep's unfinished runs from one machine to the next through the repository.
#
# `hax sweep` keeps run folders outside the work tree (~/hax-runs), and a run of the CPU pilot takes one to two
# hours at two jobs, so a session often ends mid-run; the next session may start on a fresh machine whose
# ~/hax-runs is empty. Finished runs survive in the committed results (--out-docs's results.json counts them as
# done); this keeps the unfinished ones: `save` packs every run folder that has a checkpoint (last/) but no
# test.json (with its logs) into experiments/stash/NAME.tar.gz, to be committed; `restore` unpacks the folders that
# the runs folder lacks, and `hax sweep` then resumes them exactly (training resume is bit for bit).
#
# Usage: scripts/sweep_stash.sh save|restore NAME [RUNS_DIR]   (NAME: the experiment's "name"; RUNS_DIR: ~/hax-runs)
set -euo pipefail

action=${1:-}
name=${2:-}
runs_dir=${3:-$HOME/hax-runs}
[[ ( $action == save || $action == restore ) && -n $name ]] || {
  echo "usage: scripts/sweep_stash.sh save|restore NAME [RUNS_DIR]" >&2
  exit 2
}
repo=$(cd "$(dirname "$0")/.." && pwd)
stash="$repo/experiments/stash/$name.tar.gz"
root="$runs_dir/$name"

case $action in
  save)
    [ -d "$root" ] || { echo "sweep_stash: no runs folder $root" >&2; exit 1; }
    cd "$root"
    runs=()
    for dir in */; do
      dir=${dir%/}
      [ -d "$dir/last" ] && [ ! -f "$dir/test.json" ] && runs+=("$dir")
    done
    if [ ${#runs[@]} -eq 0 ]; then
      rm -f "$stash"
      echo "sweep_stash: no unfinished run in $root (removed any old stash)"
      exit 0
    fi
    files=()
    for run in "${runs[@]}"; do
      files+=("$run")
      for log in "$run".*.log; do [ -f "$log" ] && files+=("$log"); done
    done
    mkdir -p "$(dirname "$stash")"
    tar -czf "$stash.tmp" "${files[@]}"
    mv "$stash.tmp" "$stash"
    for run in "${runs[@]}"; do
      echo "sweep_stash: saved $run (step $(sed -n 's/.*"step": *\([0-9]*\).*/\1/p' "$run/last/trainer_state.json" | head -1))"
    done
    echo "sweep_stash: $stash ($(du -h "$stash" | cut -f1)); commit it"
    ;;
  restore)
    [ -f "$stash" ] || { echo "sweep_stash: no stash $stash: nothing to restore"; exit 0; }
    mkdir -p "$root"
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    tar -xzf "$stash" -C "$tmp"
    for dir in "$tmp"/*/; do
      run=$(basename "$dir")
      if [ -e "$root/$run" ]; then
        echo "sweep_stash: $root/$run exists: kept as it is"
        continue
      fi
      mv "$dir" "$root/$run"
      for log in "$tmp/$run".*.log; do [ -f "$log" ] && mv "$log" "$root/"; done
      echo "sweep_stash: restored $run"
    done
    ;;
esac
