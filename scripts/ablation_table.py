#!/usr/bin/env python3
# The combined Mamba-1 ablation table of docs/results.md: validation accuracy (%) at each 1,000 updates of the
# ablation, causal-variant and baseline runs, and the test accuracy of each one's best checkpoint, read from their run folders (~/hax-runs, or HAX_RUNS_DIR).
# Usage: scripts/ablation_table.py > table.md
import json,os,sys
R=os.environ.get('HAX_RUNS_DIR', os.path.expanduser('~/hax-runs'))
rows=[
 ("`paper`, all ingredients (cpu_pilot run, first 6k updates)", "cpu_pilot/mamba__sign_bin_lsh_key_selection__paper__seed1"),
 ("`paper` without `lsh_statistics`", "ablation_paper_mamba/without_lsh_statistics__sign_bin_lsh_key_selection__paper__seed1"),
 ("`paper` without `ks_normalization`", "ablation_paper_mamba/without_ks_normalization__sign_bin_lsh_key_selection__paper__seed1"),
 ("`paper` with a fixed LSH projection (`--lsh-resample never`)", "ablation_paper_mamba/fixed_lsh_projection__sign_bin_lsh_key_selection__paper__seed1"),
 ("`paper` without all four, fixed projection", "ablation_paper_mamba/without_all__sign_bin_lsh_key_selection__paper__seed1"),
 ("`causal` (default; cpu_pilot run, first 6k updates)", "cpu_pilot/mamba__sign_bin_lsh_key_selection__causal__seed1"),
 ("`causal` + running LSH statistics", "causal_variants_mamba/running_lsh_statistics__sign_bin_lsh_key_selection__causal__seed1"),
 ("`causal` + running KS normalization", "causal_variants_mamba/running_ks_normalization__sign_bin_lsh_key_selection__causal__seed1"),
 ("`causal` + running KS normalization, seed 2", "causal_variants_mamba/running_ks_normalization__sign_bin_lsh_key_selection__causal__seed2"),
 ("`causal` + both running", "causal_variants_mamba/running_both__sign_bin_lsh_key_selection__causal__seed1"),
 ("`causal` + both running, seed 2", "causal_variants_mamba/running_both__sign_bin_lsh_key_selection__causal__seed2"),
 ("`causal` + both running + `--lsh-resample training`", "causal_variants_mamba/running_both_resampled__sign_bin_lsh_key_selection__causal__seed1"),
 ("plain Mamba (cpu_pilot run, first 6k updates)", "cpu_pilot/mamba__plain__none__seed1"),
 ("plain Mamba, seed 2 (cpu_pilot run, first 6k updates)", "cpu_pilot/mamba__plain__none__seed2"),
]
print("| run (seed 1 unless named) | 1k | 2k | 3k | 4k | 5k | 6k | test % |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
for name,folder in rows:
    f=os.path.join(R,folder,'metrics.jsonl')
    acc={}
    if os.path.exists(f):
        for l in open(f):
            j=json.loads(l)
            if j.get('event')=='valid': acc[j['step']]=j['accuracy']
    cells=[f"{100*acc[s]:.1f}" if s in acc else "–" for s in range(1000,7000,1000)]
    # Test accuracy of the run's best validation checkpoint; a cpu_pilot run's is from its whole 10k updates.
    t=os.path.join(R,folder,'test.json')
    test="–"
    if os.path.exists(t):
        test=f"{100*json.load(open(t))['accuracy']:.1f}"+(" (10k run)" if folder.startswith('cpu_pilot/') else "")
    print(f"| {name} | "+" | ".join(cells)+f" | {test} |")
