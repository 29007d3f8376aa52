#!/bin/bash
# Decode throughput of two hax binaries, row by row in alternation (so that both see the same machine state): every
# (config, arch, threads) at T = 16384, 4096 decoded tokens, two repetitions. Usage:
#   bench/decode_before_after.sh OLD_BINARY NEW_BINARY OUT.jsonl
set -euo pipefail
cd "$(dirname "$0")/.."
old_bin="$1"; new_bin="$2"; out="$3"; : > "$out"
for cfg in mamba mamba2 samba; do
  archs="plain sign_bin_lsh+key_selection sliding_window"; [ $cfg = samba ] && archs=plain
  for arch in $archs; do for th in 1 2; do for rep in 1 2; do for b in old new; do
    bin="$old_bin"; [ $b = new ] && bin="$new_bin"
    r=$("$bin" bench decode --config configs/$cfg.json --one --arch $arch --length 16384 --thread-count $th --decode-tokens 4096 2>/dev/null | tail -1)
    echo "{\"config\":\"$cfg\",\"arch\":\"$arch\",\"threads\":$th,\"binary\":\"$b\",\"rep\":$rep,\"result\":$r}" >> "$out"
  done; done; done; done
done
