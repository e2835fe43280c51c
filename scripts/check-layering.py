#!/usr/bin/env python3
"""Checks Package.swift's target graph (from `swift package dump-package` on stdin):
the runtime and its CLI must not reach the training library, OpenBLAS or SentencePiece,
and the format, sampling and math modules must depend on nothing. Exits 1 with one line per violation."""
import json
import sys

package = json.load(sys.stdin)
edges = {}
for target in package["targets"]:
    names = []
    for dep in target["dependencies"]:
        kind, value = next(iter(dep.items()))
        names.append(value[0])
    edges[target["name"]] = names


def reachable(start):
    seen, stack = set(), [start]
    while stack:
        for dep in edges.get(stack.pop(), []):
            if dep not in seen:
                seen.add(dep)
                stack.append(dep)
    return seen


rules = {
    "BitNetRuntime": {"BitNet", "COpenBLAS", "CSentencePiece"},
    "bitnet-run": {"BitNet", "COpenBLAS", "CSentencePiece"},
    "BitNetFormat": set(edges) - {"BitNetFormat"},
    "BitNetSampling": set(edges) - {"BitNetSampling"},
    "BitNetMath": set(edges) - {"BitNetMath"},
}
failures = [f"layering: {target} depends on {', '.join(sorted(reachable(target) & banned))}"
            for target, banned in rules.items() if reachable(target) & banned]
for line in failures:
    print(line, file=sys.stderr)
if not failures:
    print("layering: the runtime reaches " + ", ".join(sorted(reachable("bitnet-run"))) + " only", file=sys.stderr)
sys.exit(1 if failures else 0)
