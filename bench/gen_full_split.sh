#!/usr/bin/env bash
# Times `hax gen joint-recall --split train` (all 1,440,000 samples of the paper's train split, to a binary file in
# a temp dir) and, as the baseline in the same run, the numpy reference loop (tools/oracle/joint_recall_numpy.py)
# on the first $SLICE samples, scaled to the full split. It also checks that both made the same first samples.
# Usage: bench/gen_full_split.sh [path/to/hax]    (default build/hax; SLICE=14400 by default)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
hax=${1:-$root/build/hax}
slice=${SLICE:-14400}
full=1440000
[ -x "$hax" ] || { echo "gen_full_split: no hax binary at $hax (build first)" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

now() { date +%s.%N; }
calc() { awk "BEGIN { print $1 }"; }  # floating-point arithmetic without bc

cpu=$(grep -m1 "model name" /proc/cpuinfo | cut -d: -f2- | sed "s/^ *//")
echo "machine: $(nproc) cores, $cpu, load $(cut -d" " -f1-3 /proc/loadavg)"

start=$(now)
"$hax" gen joint-recall --split train --out "$tmp/train.bin"
hax_s=$(calc "$(now) - $start")
size=$(stat -c %s "$tmp/train.bin")

start=$(now)
/usr/bin/python3 "$root/tools/oracle/joint_recall_numpy.py" --limit "$slice" > "$tmp/numpy_slice.txt"
numpy_slice_s=$(calc "$(now) - $start")
numpy_full_s=$(calc "$numpy_slice_s * $full / $slice")

"$hax" data cat "$tmp/train.bin" --count "$slice" | cmp -s - "$tmp/numpy_slice.txt" \
  || { echo "gen_full_split: hax and numpy disagree on the first $slice samples" >&2; exit 1; }

printf 'hax:   %d samples, %.1f MB binary, %.2f s (%.0f samples/s)\n' "$full" "$(calc "$size / 1e6")" \
  "$hax_s" "$(calc "$full / $hax_s")"
printf 'numpy: %d samples in %.2f s, scaled to the full split: %.0f s\n' "$slice" "$numpy_slice_s" "$numpy_full_s"
printf 'ratio: hax is %.0fx faster than the numpy reference (first %d samples identical)\n' \
  "$(calc "$numpy_full_s / $hax_s")" "$slice"
