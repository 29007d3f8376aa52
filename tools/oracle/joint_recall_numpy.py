#!/usr/bin/env python3
"""Independent oracle for hax's joint-recall generator.

The paper's create_dataset loop (reference.md section 1), written with numpy's own legacy global RandomState
(np.random.seed / randint / permutation), so hax's C++ reproduction of the RNG can be checked against numpy
itself rather than against a second reading of the same spec. Dedup is the reference's: a set of the
space-joined padded token strings, shared across all splits.

Prints every split in stream order (train, valid, test) in the two-lines-per-sample text format:
the padded token ids, then the mask bits. --limit stops after that many samples (for timing a slice).
"""
import argparse
import sys

import numpy as np

BOS, PAD, SEP, BIAS = 1, 3, 4, 10


def make_sample(g1, g2, args, pad_len):
    table = np.random.randint(0, args.values, (g1, g2))
    seq, mask = [BOS], [0]

    def half(scored):
        for i in np.random.permutation(g1):
            seq.append(args.max_keys + args.values + i + BIAS)
            mask.append(0)
            for j in np.random.permutation(g2):
                seq.append(args.values + j + BIAS)
                mask.append(scored)
                seq.append(table[i][j] + BIAS)
                mask.append(0)

    half(0)
    seq.append(SEP)
    mask.append(0)
    half(1)
    padding = pad_len - len(seq)
    return " ".join(map(str, seq + [PAD] * padding)), " ".join(map(str, mask + [0] * padding))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--min-contexts", type=int, default=5)
    parser.add_argument("--max-contexts", type=int, default=16)
    parser.add_argument("--min-keys", type=int, default=5)
    parser.add_argument("--max-keys", type=int, default=16)
    parser.add_argument("--values", type=int, default=16)
    parser.add_argument("--train-per-cell", type=int, default=10000)
    parser.add_argument("--eval-per-cell", type=int, default=100)
    parser.add_argument("--limit", type=int, default=None)
    args = parser.parse_args()

    np.random.seed(args.seed)
    pad_len = (2 * args.max_contexts) * (2 * args.max_keys + 1) + 2
    seen = set()
    written = 0
    out = sys.stdout
    for n in (args.train_per_cell, args.eval_per_cell, args.eval_per_cell):
        for _ in range(n):
            for g1 in range(args.min_contexts, args.max_contexts + 1):
                for g2 in range(args.min_keys, args.max_keys + 1):
                    if args.limit is not None and written >= args.limit:
                        return
                    while True:
                        tokens, mask = make_sample(g1, g2, args, pad_len)
                        if tokens not in seen:
                            break
                    seen.add(tokens)
                    out.write(tokens + "\n" + mask + "\n")
                    written += 1


if __name__ == "__main__":
    main()
