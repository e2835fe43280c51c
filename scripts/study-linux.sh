#!/bin/bash
# Issue 14's study on the linux corpus (docs/sweeps/linux/PLAN.md), one step after another;
# every step resumes, so run it again after an interruption. Run directories go under
# runs/study-linux (not in git); results, plots and reports are copied into docs/sweeps/linux.
cd "$(dirname "$0")/.."
# Point BITNET_TRAIN at a copy of the binary, so that rebuilding does not disturb a running study.
B=${BITNET_TRAIN:-.build/release/bitnet-train}
S=runs/study-linux
D=runs/linux-data
sizes=32x2,48x2,64x2,96x3,128x4
modes=fp,binary,ternary
mkdir -p $S
# The second corpus: the first 1 MB of the quick-start Shakespeare (whole lines).
[ -s $S/shakespeare-1MB.txt ] || head -c 1000000 data/corpus/shakespeare.txt | sed '$d' > $S/shakespeare-1MB.txt

# Steps 1-3 train two runs at a time, one core each (--jobs 2): these small models train
# about 1.1-1.3x faster that way (docs/BENCHMARKS.md).
# 1. lr-sweeps at two widths, 2M tokens (977 steps of 16 x 128) each.
for size in 64x2 128x4; do
  [ -f $S/lr-$size/results.json ] && continue
  $B lr-sweep --data $D --preset $size --steps 977 --modes $modes --lrs 3e-4,1e-3,3e-3,1e-2,3e-2 \
    --jobs 2 --out $S/lr-$size >> $S/lr-$size.log 2>&1 || exit 1
done
lr="--lr-from $S/lr-64x2,$S/lr-128x4"

# 2. Compute-optimal: 20 tokens per non-embedding parameter.
$B sweep --data $D --presets $sizes --modes $modes --tokens-per-param 20 $lr --text $S/shakespeare-1MB.txt \
  --jobs 2 --out $S/compute-optimal >> $S/compute-optimal.log 2>&1 || exit 1

# 3. The paper's protocol: every size on the largest size's tokens; its runs are the same
#    configs as in step 2, so they are copied, not retrained.
steps=$(python3 -c "import json; print(json.load(open('$S/compute-optimal/runs/128x4-fp/config.json'))['training']['steps'])")
mkdir -p $S/paper/runs
for m in fp binary ternary; do
  [ -d $S/paper/runs/128x4-$m ] || cp -r $S/compute-optimal/runs/128x4-$m $S/paper/runs/
done
$B sweep --data $D --presets $sizes --modes $modes --tokens $((steps * 16 * 128)) $lr --text $S/shakespeare-1MB.txt \
  --jobs 2 --out $S/paper >> $S/paper.log 2>&1 || exit 1

# 4. The longest run: binary `small` at 20 tokens per non-embedding parameter (95M tokens).
out=$S/small-binary
if [ ! -f $out/done ]; then
  # --resume once the run has a config: a run killed before its first checkpoint then
  # starts again from step 0 with that config (a fresh `train` would refuse the directory).
  if [ -f $out/config.json ]; then
    $B train --data $D --out $out --resume >> $out.log 2>&1
  else
    $B train --data $D --out $out --preset small --mode binary --steps 23176 --log-every 50 --eval-every 1000 \
      --checkpoint-every 250 --seed 1 >> $out.log 2>&1
  fi
  rc=$?
  [ $rc -eq 0 ] && touch $out/done || { echo "exit $rc" >> $out.log; exit $rc; }
fi
