#!/usr/bin/env python3
# Collects the finished steps of scripts/real_text_study.sh into docs/results/real_text.json (one object per model:
# the exact training and evaluation commands, held-out perplexity, each RULER-style task's score per length, wall
# times) and prints the Markdown table for docs/results.md, with the paper's Mamba-790M RULER-2K averages beside
# ours. A model whose steps have not finished is listed with the steps missing, never with a guessed number. Wall
# times are those of each step's last attempt (see STEP.note where a step was resumed).
# Usage: scripts/real_text_json.py [RUNS_DIR]   (default ${HAX_RUNS_DIR:-~/hax-runs}/real_text)
import json, math, os, sys

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
runs = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    os.environ.get("HAX_RUNS_DIR", os.path.expanduser("~/hax-runs")), "real_text")
out_path = os.path.join(root, "docs/results/real_text.json")

# paper.md §4.2: RULER at 2K, Mamba-790M, average over tasks.
PAPER_RULER_2K = {"mamba": 42.43, "sw": 42.52, "a": 41.91, "ks": 43.10, "hax": 44.57, "lsh": 8.36, "d": 9.78}
LABELS = {"pretrain": "Mamba (pre-trained, not continued)", "mamba": "Mamba (continued)", "sw": "+SW",
          "a": "+A (SW + sink)", "d": "+D", "lsh": "+LSH", "ks": "+KS", "hax": "+HAX"}
MODELS = ["pretrain", "mamba", "sw", "a", "ks", "hax", "lsh", "d"]


def read(path):
    return open(path).read().strip() if os.path.exists(path) else None


def done(step):
    path = os.path.join(runs, step + ".done")
    return json.load(open(path)) if os.path.exists(path) else None


def model_record(name):
    train_step = "pretrain" if name == "pretrain" else "cont_" + name
    eval_step = "eval_" + name
    record = {"model": name, "label": LABELS[name], "train_command": read(os.path.join(runs, train_step + ".command")),
              "eval_command": read(os.path.join(runs, eval_step + ".command"))}
    missing = [s for s in (train_step, eval_step) if not done(s)]
    if missing:
        record["status"] = "not finished: " + ", ".join(missing)
        return record
    record["status"] = "done"
    record["train_wall_seconds"] = done(train_step)["wall_seconds"]
    record["eval_wall_seconds"] = done(eval_step)["wall_seconds"]
    record["machine"] = done(train_step).get("machine")
    record["train_threads"] = done(train_step).get("threads", 1)
    record["eval_threads"] = done(eval_step).get("threads", 1)
    # STEP.note (written by hand in the runs folder): what the .done files cannot say, e.g. that the wall time
    # counts only the last attempt of a resumed step.
    notes = [n for n in (read(os.path.join(runs, s + ".note")) for s in (train_step, eval_step)) if n]
    if notes:
        record["notes"] = notes
    valid = [json.loads(line) for line in open(os.path.join(runs, train_step, "metrics.jsonl"))
             if '"valid"' in line]
    record["heldout_loss_best"] = min(v["loss"] for v in valid)
    record["heldout_perplexity_best"] = min(v["perplexity"] for v in valid)
    record["updates"] = max(v["step"] for v in valid)
    ev = json.load(open(os.path.join(runs, eval_step, "results.json")))
    record["eval_perplexity"] = ev["perplexity"]["perplexity"]
    record["perplexity_by_position"] = ev["perplexity"]["by_position"]
    # Perplexity inside the training context and in each further multiple of it (positions [k C, (k+1) C)).
    context = ev["context"]
    spans = {}
    for b in ev["perplexity"]["by_position"]:
        if b["tokens"] and b["mean_nll"] is not None:
            k = b["first_position"] // context
            nll, tokens = spans.get(k, (0.0, 0))
            spans[k] = (nll + b["mean_nll"] * b["tokens"], tokens + b["tokens"])
    record["perplexity_by_context_multiple"] = {
        f"{k * context}-{(k + 1) * context - 1}": math.exp(nll / tokens) for k, (nll, tokens) in sorted(spans.items())}
    record["ruler_average_by_length"] = ev["average_by_length"]
    record["ruler_by_task"] = {task: r["accuracy_by_length"] for task, r in ev["tasks"].items()}
    # The forced choice (value against foil, chance 50), where the evaluation had it.
    if "choice_average_by_length" in ev:
        record["choice_average_by_length"] = ev["choice_average_by_length"]
        record["choice_by_task"] = {task: r["choice_accuracy_by_length"] for task, r in ev["tasks"].items()}
        record["margin_by_task"] = {task: r["margin_by_length"] for task, r in ev["tasks"].items()}
    return record


def main():
    records = [model_record(m) for m in MODELS]
    os.makedirs(os.path.dirname(out_path), exist_ok=True)
    with open(out_path + ".tmp", "w") as f:
        json.dump(records, f, indent=1)
        f.write("\n")
    os.replace(out_path + ".tmp", out_path)
    lengths = None
    for r in records:
        if r["status"] == "done":
            lengths = sorted(r["ruler_average_by_length"], key=int)
            break
    spans = next((list(r["perplexity_by_context_multiple"]) for r in records if r["status"] == "done"), [])
    head = "| Model | Paper 790M RULER-2K avg | held-out ppl | " + " | ".join(
        f"ppl {span}" for span in spans) + " | " + " | ".join(
        f"RULER {l} avg" for l in (lengths or [])) + " | " + " | ".join(
        f"choice {l} avg" for l in (lengths or [])) + " | train s | eval s |"
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for r in records:
        paper = PAPER_RULER_2K.get(r["model"], "–") if r["model"] != "pretrain" else "–"
        if r["status"] != "done":
            cells = [f"({r['status']})"] + [""] * ((2 * len(lengths) if lengths else 0) + len(spans) + 2)
        else:
            choice = r.get("choice_average_by_length", {})
            cells = [f"{r['heldout_perplexity_best']:.2f}"] + [
                f"{r['perplexity_by_context_multiple'][span]:.2f}" for span in spans] + [
                f"{r['ruler_average_by_length'][l]:.2f}" for l in lengths] + [
                f"{choice[l]:.1f}" if choice.get(l) is not None else "–" for l in lengths] + [
                f"{r['train_wall_seconds']:.0f}", f"{r['eval_wall_seconds']:.0f}"]
        print(f"| {r['label']} | {paper} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
