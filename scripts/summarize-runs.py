#!/usr/bin/env python3
"""A Markdown table of finished runs: mode (and int4 backward), steps, tokens, the final
validation loss and perplexity, the best validation loss, and the wall time.
Usage: scripts/summarize-runs.py RUN_DIR... [--baseline RUN_DIR]  (the gap column is
against the baseline's final validation loss)."""
import json
import pathlib
import sys

args = sys.argv[1:]
baseline = None
if "--baseline" in args:
    i = args.index("--baseline")
    baseline = args[i + 1]
    del args[i:i + 2]
if not args:
    sys.exit(__doc__)


def summary(run):
    run = pathlib.Path(run)
    config = json.loads((run / "config.json").read_text())
    lines = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines() if l.strip()]
    evals = [l for l in lines if "val_loss" in l]
    if not evals:
        sys.exit(f"{run}: no validation loss in metrics.jsonl yet")
    m, t = config["model"], config["training"]
    mode = m["mode"] + (f" ({m.get('int4_backward', 'lss')} backward)" if m["mode"] == "int4" else "")
    return {"run": run.name, "mode": mode, "step": evals[-1]["step"], "steps": t["steps"],
            "tokens": evals[-1]["step"] * t["batch_size"] * m["context"], "val": evals[-1]["val_loss"],
            "ppl": evals[-1]["val_perplexity"], "best": min(e["val_loss"] for e in evals),
            "hours": lines[-1]["elapsed_seconds"] / 3600}


rows = [summary(r) for r in args]
base = summary(baseline)["val"] if baseline else None
print("| run | mode | step | tokens | final val loss | val ppl | best val loss |"
      + (" vs baseline |" if base is not None else "") + " wall time |")
print("|---|---|---|---|---|---|---|" + ("---|" if base is not None else "") + "---|")
for r in rows:
    gap = f" {r['val'] - base:+.4f} |" if base is not None else ""
    done = "" if r["step"] == r["steps"] else f" (of {r['steps']})"
    print(f"| {r['run']} | {r['mode']} | {r['step']}{done} | {r['tokens'] / 1e6:.1f}M | {r['val']:.4f} | {r['ppl']:.2f} | "
          f"{r['best']:.4f} |{gap} {r['hours']:.2f} h |")
