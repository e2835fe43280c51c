#!/bin/bash
# Training throughput of bitnet-train and PyTorch (scripts/pytorch-reference.py) on the
# two shapes of docs/BENCHMARKS.md, each mode run in both one right after the other.
# Usage: scripts/bench-vs-pytorch.sh PYTHON [ROUNDS]   (PYTHON: an interpreter with torch)
# Prints one JSON line per run (ours first, then PyTorch's, for each mode and shape).
set -euo pipefail
python=${1:?usage: scripts/bench-vs-pytorch.sh PYTHON [ROUNDS]}
rounds=${2:-1}
B=.build/release/bitnet-train
for round in $(seq "$rounds"); do
  for shape in a b; do
    if [ $shape = a ]; then d=256 l=4 h=4 f=1024 steps=15; else d=512 l=8 h=8 f=2048 steps=5; fi
    for mode in fp binary ternary int4; do
      $B bench --mode $mode --dim $d --layers $l --heads $h --ffn-dim $f --ffn-activation gelu --norm layer \
        --context 256 --batch-size 8 --vocab-size 4096 --bench-steps $steps --json 2>/dev/null | tail -1
      "$python" scripts/pytorch-reference.py --mode $mode --dim $d --layers $l --heads $h --ffn-dim $f \
        --context 256 --batch 8 --steps $steps 2>/dev/null | tail -1
    done
  done
done
