#!/usr/bin/env bash
# Writes the seed corpus of every fuzz target into fuzz/corpus/<target>/ from files hax itself writes (and the
# repository's configs and experiments), small enough for libFuzzer's default input size (4 KiB) where the format
# allows. The corpus is committed; run this again only when a format changes. Needs build/hax (scripts/build.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
hax=build/hax
corpus=fuzz/corpus
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
rm -rf "$corpus"
mkdir -p "$corpus"/{safetensors,model_config,binary_dataset,binary_dataset_sealed,text_dataset,tokens_file,npy,experiment,state_file}

tiny=(--min-contexts 2 --max-contexts 3 --min-keys 2 --max-keys 2 --values 4 --vocab 24 --train-per-cell 2)
"$hax" gen joint-recall "${tiny[@]}" --out "$corpus/binary_dataset/joint_recall.bin" >/dev/null
"$hax" gen joint-recall "${tiny[@]}" --out "$corpus/text_dataset/joint_recall.txt" >/dev/null
head -n 4 tests/fixtures/joint_recall_seed1_train_first288.txt > "$corpus/text_dataset/reference_first2.txt"
"$hax" gen mqar --seq-len 16 --kv-pairs 2 --vocab 300 --train-size 3 --out "$corpus/binary_dataset/mqar.bin" >/dev/null
cp "$corpus"/binary_dataset/* "$corpus/binary_dataset_sealed/"

for c in configs/*.json; do cp "$c" "$corpus/model_config/$(basename "$c")"; done
for e in experiments/*.json; do cp "$e" "$corpus/experiment/$(basename "$e")"; done

# A tiny model: its config.json (with hax's own keys) and checkpoint are seeds; its logits are the .npy seed.
cat > "$tmp/tiny.json" <<'JSON'
{"model_type": "mamba", "vocab_size": 24, "hidden_size": 4, "intermediate_size": 8, "state_size": 2,
 "time_step_rank": 1, "num_hidden_layers": 1, "conv_kernel": 2, "expand": 2}
JSON
for arch in none sign_bin_lsh+key_selection; do
  "$hax" train --config "$tmp/tiny.json" --sparse-arch "$arch" --sparse-keys 4 --steps 1 --batch-size 2 --vocab 24 --values 4 \
    --min-contexts 2 --max-contexts 2 --min-keys 2 --max-keys 2 --train-per-cell 2 --eval-per-cell 1 \
    --out "$tmp/run_$arch" >/dev/null
  name=${arch//+/_}
  cp "$tmp/run_$arch/last/config.json" "$corpus/model_config/tiny_$name.json"
  cp "$tmp/run_$arch/last/model.safetensors" "$corpus/safetensors/tiny_$name.safetensors"
done
printf '1 2 3\n4 5 6 7\n' > "$corpus/tokens_file/two_lines.txt"
printf '0\n' > "$corpus/tokens_file/one_token.txt"
cp "$corpus/tokens_file/two_lines.txt" "$tmp/tokens.txt"
"$hax" logits --checkpoint "$tmp/run_none/last" --tokens "$tmp/tokens.txt" --out "$corpus/npy/logits_f32.npy" >/dev/null
/usr/bin/python3 - "$corpus/npy" <<'PY'
import sys, numpy as np
np.save(sys.argv[1] + "/ints_i4.npy", np.arange(6, dtype="<i4").reshape(2, 3))
np.save(sys.argv[1] + "/scalar_f4.npy", np.float32(1.5))
PY
# The state file seed: written by the suite from a real model of the shape fuzz/readers.h describes (needs
# build/tests/test_inference).
HAX_FUZZ_STATE_SEED="$corpus/state_file/tiny_hax.state" build/tests/test_inference \
  --gtest_filter='StateFile.FuzzSeedIsARealModelsState' >/dev/null
find "$corpus" -type f | sort | while read -r f; do printf '%6d  %s\n' "$(stat -c %s "$f")" "$f"; done
