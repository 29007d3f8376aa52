#!/usr/bin/env python3
# Writes docs/results/joint_recall.json, one object per finished joint-recall run: the Mamba2 pilot runs made by hand
# before `hax sweep` existed (kept as they are in the file), then every finished run of the sweeps rendered under
# docs/results/<experiment>/results.json. Each sweep run records its experiment, base, sparse_arch, semantics, seed,
# steps, test_accuracy, wall_seconds, threads, command and eval_command. Runs adopted into a sweep from the hand-made
# ones are left out (they are the hand-made records). A run trained in several attempts that finished before the
# sweep recorded wall time every minute (2026-12-01 20:50 UTC) has only its last attempt's time: its wall_seconds is
# null and wall_seconds_last_attempt says what was recorded (attempts are counted from its train log's headers).
# A run whose folder is on another machine (results.json "recorded" it) keeps the object written where it ran. A
# `causal` run that its `paper` twin stands for ("measured_as") has the twin's accuracy and wall_seconds 0.
# Usage: scripts/joint_recall_json.py  (reads the run logs from ~/hax-runs, or HAX_RUNS_DIR)
import datetime, glob, json, os, sys

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
out_path = os.path.join(root, "docs/results/joint_recall.json")
# Every experiment file's sweep (derived, so a new experiment cannot be left out); one not rendered yet is skipped.
experiments = sorted(json.load(open(path))["name"] for path in glob.glob(os.path.join(root, "experiments", "*.json")))
per_minute_since = datetime.datetime(2026, 12, 1, 20, 50, tzinfo=datetime.timezone.utc).timestamp()

def attempts(folder):
    log = folder + ".train.log"
    if not os.path.exists(log):
        return None
    return sum(1 for line in open(log) if line.startswith("== hax sweep: "))

def key(r):
    return (r.get("experiment"), r["base"], r["sparse_arch"], r["semantics"], r["seed"])

previous = json.load(open(out_path))
hand_made = [r for r in previous if "experiment" not in r]
written = {key(r): r for r in previous if "experiment" in r}
records = list(hand_made)
for name in experiments:
    rendered = os.path.join(root, "docs/results", name, "results.json")
    if not os.path.exists(rendered):  # an experiment not run yet
        continue
    for r in json.load(open(rendered)):
        if r.get("status") != "done":
            continue
        rec = {"experiment": name, **{k: r[k] for k in ("base", "sparse_arch", "semantics", "seed", "steps",
                                                          "test_accuracy", "threads", "command", "eval_command")}}
        rec["wall_seconds"] = r["wall_seconds"]
        if "measured_as" in r:  # not trained: its `paper` twin's results (same_under_both_semantics)
            rec["measured_as"] = r["measured_as"]
            records.append(rec)
            continue
        state = os.path.join(r["folder"], "sweep_run.json")
        if not os.path.exists(state):  # a run recorded on another machine: keep what was written there
            if key(rec) in written:
                records.append(written[key(rec)])
            elif not any(key({**h, "experiment": name}) == key(rec) and h["test_accuracy"] == rec["test_accuracy"]
                         for h in hand_made):  # else an adopted hand-made run, which is there already
                records.append(rec)
            continue
        if "adopted_from" in json.load(open(state)):
            continue
        n = attempts(r["folder"])
        finished = os.path.getmtime(os.path.join(r["folder"], "test.json"))
        if n is not None and n > 1 and finished < per_minute_since:
            rec["wall_seconds"] = None
            rec["wall_seconds_last_attempt"] = r["wall_seconds"]
            rec["attempts"] = n
        records.append(rec)
json.dump(records, open(out_path, "w"), indent=1)
open(out_path, "a").write("\n")
print(f"{out_path}: {len(hand_made)} hand-made runs, {len(records) - len(hand_made)} sweep runs")
