#!/usr/bin/env python3
"""Summarizes docs/studies/activation-range/results.csv (and storage.csv) as Markdown:
per mode, the mean validation loss of signed and auto codes over the seeds both have,
the paired difference (auto - signed) per seed, its mean and spread."""
import csv
import pathlib
import statistics

root = pathlib.Path(__file__).resolve().parent.parent / "docs" / "studies" / "activation-range"
rows = list(csv.DictReader(open(root / "results.csv")))
loss = {(r["mode"], r["range"], r["seed"]): float(r["val_loss"]) for r in rows}
print("| mode | seeds | signed (mean) | auto (mean) | auto - signed, per seed | mean difference |")
print("|---|---|---|---|---|---|")
for mode in ("binary", "ternary"):
    seeds = sorted({s for (m, _, s) in loss if m == mode and (m, "signed", s) in loss and (m, "auto", s) in loss})
    if not seeds:
        continue
    signed = [loss[(mode, "signed", s)] for s in seeds]
    auto = [loss[(mode, "auto", s)] for s in seeds]
    diffs = [a - b for a, b in zip(auto, signed)]
    spread = f" ± {statistics.stdev(diffs):.4f}" if len(diffs) > 1 else ""
    print(f"| {mode} | {', '.join(seeds)} | {statistics.mean(signed):.4f} | {statistics.mean(auto):.4f} | "
          f"{', '.join(f'{d:+.4f}' for d in diffs)} | {statistics.mean(diffs):+.4f}{spread} |")
storage = root / "storage.csv"
if storage.exists():
    for r in csv.DictReader(open(storage)):
        base = loss.get((r["mode"], "signed", r["seed"]))
        if base is not None:
            print(f"\nBF16 storage, {r['mode']} seed {r['seed']}: {float(r['val_loss']):.4f} against FP32's {base:.4f} "
                  f"({float(r['val_loss']) - base:+.4f})")
