#!/usr/bin/env python3
"""Markdown tables for docs/DISTRIBUTED.md from scripts/measure-distributed.sh's results.

    scripts/distributed-table.py docs/distributed/measurements.jsonl

Per preset, one row per job: tokens/s in each logged window, their mean without the first
window (which holds the start-up), the share of time blocked in MPI, and the scaling
efficiency: two ranks' tokens/s over twice one single-threaded process's (each simulated
machine has one core). Then each link's all-reduce fit.
"""
import json
import sys

rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
jobs = [r for r in rows if "preset" in r]
fits = [r for r in rows if "allreduce" in r]


def steady(values):
    return sum(values[1:]) / len(values[1:]) if len(values) > 1 else values[0]


for preset in dict.fromkeys(r["preset"] for r in jobs):
    mine = [r for r in jobs if r["preset"] == preset]
    single = [r for r in mine if r["layout"].startswith("1 process x 1 ")]
    base = 2 * steady(single[-1]["tokens_per_second"]) if single else None
    print(f"\n`{preset}`, binary, steps {mine[0]['steps']}, on {mine[0]['cpu']}:\n")
    print("| layout | --zero | tokens/s per window | mean after the first | blocked in MPI | efficiency |")
    print("|---|---|---|---|---|---|")
    for r in mine:
        tps = r["tokens_per_second"]
        shares = [s for s in r["communication_share"] if s is not None]
        blocked = ", ".join(f"{100 * s:.0f}%" for s in shares) if shares else "-"
        two = r["layout"].startswith("2 ")
        efficiency = f"{100 * steady(tps) / base:.0f}%" if two and base else "-"
        print(f"| {r['layout']} | {1 if r['zero'] else 0} | {', '.join(f'{t:.0f}' for t in tps)} | {steady(tps):.0f} "
              f"| {blocked} | {efficiency} |")
if fits:
    print("\n| link | alpha | beta | bandwidth |\n|---|---|---|---|")
    for f in fits:
        print(f"| {f['allreduce']} | {f['alpha_us']:.1f} us | {f['beta_ns_per_byte']:.3f} ns/byte "
              f"| {1 / f['beta_ns_per_byte']:.2f} GB/s |")
