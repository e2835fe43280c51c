#!/bin/bash
# Issue 14's study on the linux corpus (docs/sweeps/linux/PLAN.md), one step after another;
# every step resumes, so run it again after an interruption. Run directories go under
# runs/study-linux (not in git).
#   scripts/study-linux.sh        run (or continue) the study, fetching and preparing the
#                                 corpus first if this machine has none
#   scripts/study-linux.sh save   copy every finished run's config and result (not its
#                                 checkpoints), and each part's results, report and
#                                 plots, into docs/sweeps/linux/runs, to commit
#   scripts/study-linux.sh hours  CPU-hours of the saved runs, per part
#   scripts/study-linux.sh seeds  each protocol beside its second-seed sweeps, from the saved runs
#   scripts/study-linux.sh long [RUN]
#                                 a long run's curve, loss, samples and runtime speed, from
#                                 its latest checkpoint, into docs/sweeps/linux/RUN
#                                 (small-binary, the default, or small-fp)
# A run saved there is not trained again, even on a machine whose run directories are
# gone: the study restores the saved files before it starts.
cd "$(dirname "$0")/.."
# Point BITNET_TRAIN at a copy of the binary, so that rebuilding does not disturb a running study.
B=${BITNET_TRAIN:-.build/release/bitnet-train}
S=${STUDY_DIR:-runs/study-linux}
K=docs/sweeps/linux/runs
D=runs/linux-data
sizes=32x2,48x2,64x2,96x3,128x4
modes=fp,binary,ternary

# The small files of every finished run, and each part's own results: what a later call
# needs to skip the run (Sweep and LearningRateSweep check the config, then the result).
copy_finished() {  # FROM TO
  local part run
  for part in "$1"/*/; do
    part=$(basename "$part")
    [ -d "$1/$part/runs" ] || continue
    # Not yet a part with a finished run (a sweep's results.json, an lr-sweep's result).
    [ -f "$1/$part/results.json" ] || ls "$1/$part"/runs/*/lr_result.json > /dev/null 2>&1 || continue
    mkdir -p "$2/$part"
    for f in sweep.json results.json results.csv report.md "$1/$part"/*.svg; do
      f=$(basename "$f")
      [ -f "$1/$part/$f" ] && cp -p "$1/$part/$f" "$2/$part/"
    done
    for run in "$1/$part"/runs/*/; do
      run=$(basename "$run")
      # Finished: an lr-sweep run with its result, or a sweep run in its results.json.
      if [ -f "$1/$part/runs/$run/lr_result.json" ] || grep -q "\"run\" *: *\"$run\"" "$1/$part/results.json" 2>/dev/null; then
        mkdir -p "$2/$part/runs/$run"
        for f in config.json lr_result.json metrics.jsonl; do
          [ -f "$1/$part/runs/$run/$f" ] && cp -p "$1/$part/runs/$run/$f" "$2/$part/runs/$run/"
        done
      fi
    done
  done
}
if [ "${1:-}" = save ]; then
  copy_finished $S $K
  # The long runs' configs and metrics so far, outside runs/ (not restored: without their
  # checkpoints they could not resume).
  for long in $S/small-*/; do
    long=$(basename "$long")
    [ -f $S/$long/config.json ] || continue
    mkdir -p $K/../$long
    cp -p $S/$long/config.json $S/$long/metrics.jsonl $K/../$long/ 2>/dev/null
    [ -f $S/$long/done ] && cp -p $S/$long/done $K/../$long/
  done
  echo "study: saved finished runs into $K"
  exit 0
fi
# A long run's page material, from its latest checkpoint (so it works while the run
# trains): its curve, samples from the runtime on its exported model, and the runtime's
# speed on that model, into docs/sweeps/linux/RUN/.
if [ "${1:-}" = long ]; then
  name=${2:-small-binary}
  case $name in small-binary|small-fp) ;; *) echo "study: long: no long run named '$name' (small-binary or small-fp)" >&2; exit 64;; esac
  run=$S/$name out=docs/sweeps/linux/$name R=${BITNET_RUN:-.build/release/bitnet-run}
  mode=${name#small-}
  [ -f $run/checkpoint.safetensors ] || { echo "study: $run has no checkpoint yet" >&2; exit 1; }
  mkdir -p $out
  cp -p $run/config.json $run/metrics.jsonl $out/
  $B plot $run --out $out/curve.svg --x tokens --from-step 200 --title "small, $mode, on the linux corpus" > $out/curve.txt || exit 1
  # Its loss on the sweeps' windows (128 of 128 tokens), comparable with their tables, and
  # on its own; on the second corpus in windows of 128, as the sweeps' --text; and by
  # position on the 4096 windows of 128 the reports' position laws were fitted on.
  { $B eval $run --data $D --windows 128 --window 128 && $B eval $run --data $D --windows 128 &&
    $B eval $run --text $S/shakespeare-1MB.txt --window 128 &&
    $B eval $run --data $D --windows 4096 --window 128 --by-position; } > $out/eval.txt || exit 1
  # The out-of-sample test: the compute-optimal laws beside the run's loss measured as the
  # sweep measured its runs; then what each sweep's laws say of `small` on its own budget.
  { echo "## The run against the compute-optimal sweep's laws"; echo
    echo "\`bitnet-train report runs/compute-optimal --predict-run $name\`:"; echo
    $B report $K/compute-optimal --predict-run $run || exit 1
    for part in compute-optimal paper; do
      echo; echo "## The $part sweep's laws for \`small\` on that sweep's budget (\`report runs/$part --predict small\`)"; echo
      $B report $K/$part --predict small || exit 1
    done; } > $out/predicted.md.tmp && mv $out/predicted.md.tmp $out/predicted.md || exit 1
  $B export $run --out $S/$name.bitnet || exit 1
  {
    echo "# Samples from the long run's exported model"
    echo
    echo "\`bitnet-run $name.bitnet --prompt P --max-tokens 160 --temperature 0.8 --top-k 40 --seed 1\`,"
    echo "from its checkpoint at $(grep -o 'step [0-9]*' $out/eval.txt | head -1); then the same with"
    echo "\`--repeat-penalty 1.2\` (over the last 64 tokens)."
    for penalty in 1 1.2; do
      # No trailing space on the code prompts: ending in a lone space piece, `static int `
      # drew only whitespace from the binary run.
      for prompt in 'static int' '#include <linux/' 'struct file_operations' '/*
 * '; do
        echo
        echo "Prompt: \`$(printf '%s' "$prompt" | head -1)\`$([ $penalty = 1 ] || echo ", repeat penalty $penalty")"
        echo
        echo '```c'
        $R $S/$name.bitnet --prompt "$prompt" --max-tokens 160 --temperature 0.8 --top-k 40 --seed 1 \
          --repeat-penalty $penalty || exit 1
        echo
        echo '```'
      done
    done
  } > $out/samples.md.tmp && mv $out/samples.md.tmp $out/samples.md
  { grep -m1 "model name" /proc/cpuinfo; $R $S/$name.bitnet --bench --threads 2 --repetitions 5; } > $out/bench.txt 2>&1 || exit 1
  echo "study: wrote $out (curve.svg, eval.txt, predicted.md, samples.md, bench.txt)"
  exit 0
fi
# Each protocol beside its second-seed sweeps (as saved), into docs/sweeps/linux/runs/seeds-*.md.
if [ "${1:-}" = seeds ]; then
  for part in compute-optimal paper; do
    others=$(ls -d $K/$part-seed2* 2>/dev/null | paste -sd, -)
    [ -n "$others" ] || continue
    { echo "# The $part protocol at both seeds"; echo
      echo "\`bitnet-train report runs/$part --seeds $(echo "$others" | sed "s|$K/|runs/|g")\`"; echo
      $B report $K/$part --seeds "$others" || exit 1; } > $K/seeds-$part.md.tmp && mv $K/seeds-$part.md.tmp $K/seeds-$part.md || exit 1
    echo "study: wrote $K/seeds-$part.md"
  done
  exit 0
fi
# The CPU time of the saved runs: each run's last elapsed_seconds times the threads it
# trained with (one with --jobs 2, the long runs two). Work thrown away (runs restarted
# after a change) is not in it; PLAN.md says what was.
if [ "${1:-}" = hours ]; then
  python3 - $K <<'PY'
import glob, json, os, sys
total, seen = 0.0, set()
parts = sorted(glob.glob(os.path.join(sys.argv[1], "*"))) + sorted(glob.glob(os.path.join(sys.argv[1], "..", "small-*")))
for part in parts:
    runs = sorted(glob.glob(os.path.join(part, "runs", "*", "metrics.jsonl")) + glob.glob(os.path.join(part, "metrics.jsonl")))
    if not runs:
        continue
    threads = 2 if os.path.basename(part).startswith("small-") else 1
    seconds, counted = 0.0, 0
    for path in runs:
        lines = [l for l in open(path) if l.strip()]
        if lines[-1] in seen:  # the paper's protocol holds copies of compute-optimal's 128x4 runs
            continue
        seen.add(lines[-1])
        counted += 1
        seconds += json.loads(lines[-1])["elapsed_seconds"] * threads
    total += seconds
    print("%-21s %3d runs %7.2f CPU-hours" % (os.path.basename(part), counted, seconds / 3600))
print("%-21s          %7.2f CPU-hours" % ("total", total / 3600))
PY
  exit 0
fi
# The corpus and its token files (data/README.md), made here when missing. The saved runs
# were trained on exactly these token files: a different build of them stops the study.
if [ ! -f $D/meta.json ]; then
  bash data/fetch.sh linux || exit 1
  [ -f runs/linux.model ] || $B tokenizer --input data/corpus/linux-6.1 --glob '*.[ch]' --max-file-mb 1 \
    --vocab-size 8192 --out runs/linux.model || exit 1
  $B prepare --input data/corpus/linux-6.1 --glob '*.[ch]' --max-file-mb 1 --tokenizer runs/linux.model --out $D || exit 1
fi
expected="5bd6619df9ec55a1093ff90153db0f527f196113d0544dea4d3732cb62512305  $D/train.bin"
if [ "$(sha256sum $D/train.bin)" != "$expected" ]; then
  echo "study: $D/train.bin is not the token file the saved runs were trained on (sha256 differs)" >&2
  exit 1
fi
mkdir -p $S
# Restore what earlier machines saved, without overwriting what this one has.
if [ -d $K ]; then
  for part in $K/*/; do
    part=$(basename "$part")
    [ -e $S/$part ] || cp -rp $K/$part $S/
  done
fi
# The second corpus: the first 1 MB of the quick-start Shakespeare (whole lines).
[ -s $S/shakespeare-1MB.txt ] || head -c 1000000 data/corpus/shakespeare.txt | sed '$d' > $S/shakespeare-1MB.txt

# Steps 1-3 train two runs at a time, one core each (--jobs 2): these small models train
# about 1.1-1.3x faster that way (docs/BENCHMARKS.md).
# 1. lr-sweeps at two widths, 2M tokens (977 steps of 16 x 128) each.
for size in 64x2 128x4; do
  [ -f $S/lr-$size/results.json ] && continue
  $B lr-sweep --data $D --preset $size --steps 977 --modes $modes --lrs 1e-3,3e-3,1e-2,3e-2 \
    --jobs 2 --out $S/lr-$size >> $S/lr-$size.log 2>&1 || exit 1
done
lr="--lr-from $S/lr-64x2,$S/lr-128x4"

# 2. Compute-optimal: 20 tokens per non-embedding parameter.
$B sweep --data $D --presets $sizes --modes $modes --tokens-per-param 20 $lr --text $S/shakespeare-1MB.txt \
  --jobs 2 --out $S/compute-optimal >> $S/compute-optimal.log 2>&1 || exit 1

# 2b. A second seed at the three smallest sizes (minutes each): how much of a gap
#     between modes is the seed's.
$B sweep --data $D --presets 32x2,48x2,64x2 --modes $modes --tokens-per-param 20 $lr --text $S/shakespeare-1MB.txt \
  --seed 2 --jobs 2 --out $S/compute-optimal-seed2 >> $S/compute-optimal-seed2.log 2>&1 || exit 1

# 3. The paper's protocol: every size on the largest size's tokens; its runs are the same
#    configs as in step 2, so their directories and results are copied, not retrained.
steps=$(python3 -c "import json; print(json.load(open('$S/compute-optimal/runs/128x4-fp/config.json'))['training']['steps'])")
mkdir -p $S/paper/runs
for m in fp binary ternary; do
  [ -d $S/paper/runs/128x4-$m ] || cp -r $S/compute-optimal/runs/128x4-$m $S/paper/runs/
done
[ -f $S/paper/results.json ] || python3 - $S/compute-optimal/results.json $S/paper/results.json <<'PY' || exit 1
import json, sys
rows = [r for r in json.load(open(sys.argv[1])) if r["size"] == "128x4"]
json.dump(rows, open(sys.argv[2], "w"))
PY
$B sweep --data $D --presets $sizes --modes $modes --tokens $((steps * 16 * 128)) $lr --text $S/shakespeare-1MB.txt \
  --jobs 2 --out $S/paper >> $S/paper.log 2>&1 || exit 1
# The loss by position of runs trained before sweeps measured it (from their checkpoints;
# runs restored from docs/ already have it or are passed over).
for part in compute-optimal compute-optimal-seed2 paper; do
  $B report $S/$part --by-position >> $S/$part.log 2>&1 || exit 1
done

# The long runs: `small` (4.82M non-embedding parameters) at 20 tokens per parameter
# (23176 steps of 16 x 256, 95M tokens) on both cores, at the better of two peak rates on
# 2M tokens (488 steps), checkpointing every 250 steps.
long_run() {  # MODE RATES
  local lrdir=$S/lr-small out=$S/small-$1 rate rc
  [ $1 = binary ] || lrdir=$S/lr-small-$1
  [ -f $lrdir/results.json ] || $B lr-sweep --data $D --preset small --steps 488 --modes $1 \
    --lrs $2 --jobs 2 --out $lrdir >> $lrdir.log 2>&1 || exit 1
  # Done here, or on an earlier machine (its `done` saved with its metrics).
  [ -f $out/done ] || [ -f $K/../small-$1/done ] && return 0
  # --resume once the run has a config: a run killed before its first checkpoint then
  # starts again from step 0 with that config (a fresh `train` would refuse the directory).
  if [ -f $out/config.json ]; then
    $B train --data $D --out $out --resume >> $out.log 2>&1
  else
    rate=$(python3 -c "import json; r = json.load(open('$lrdir/results.json')); print(min((x for x in r if not x['diverged']), key=lambda x: x['final_val_loss'])['learning_rate'])") || exit 1
    $B train --data $D --out $out --preset small --mode $1 --steps 23176 --lr $rate --log-every 50 --eval-every 1000 \
      --checkpoint-every 250 --seed 1 >> $out.log 2>&1
  fi
  rc=$?
  [ $rc -eq 0 ] && touch $out/done || { echo "exit $rc" >> $out.log; exit $rc; }
}

# 4. The longest run, binary: rates 3e-3 (the mode's default) and 1e-2 (what the lr rule
#    gives binary at every width).
long_run binary 3e-3,1e-2

# 5. A second seed at 48x2 and 64x2 on the paper's budget (about an hour; before step 6 so
#    that it lands within one session): whether 48x2-fp sitting below 64x2-fp (2.67
#    against 2.71, the one break in the fp curve) is the seed's.
$B sweep --data $D --presets 48x2,64x2 --modes $modes --tokens $((steps * 16 * 128)) $lr --text $S/shakespeare-1MB.txt \
  --seed 2 --jobs 2 --out $S/paper-seed2 >> $S/paper-seed2.log 2>&1 || exit 1

# 6. A second seed at the two largest sizes, compute-optimal (about 2 hours): whether the
#    gaps there, the widest of the study, are more than one seed's.
$B sweep --data $D --presets 96x3,128x4 --modes $modes --tokens-per-param 20 $lr --text $S/shakespeare-1MB.txt \
  --seed 2 --jobs 2 --out $S/compute-optimal-seed2-large >> $S/compute-optimal-seed2-large.log 2>&1 || exit 1

# 7. The same long run in fp (binary's took 6.9 hours at full speed): the gap measured at
#    `small`, 6x beyond the sweeps, where fp's laws put it at +0.15 to +0.24 (binary's
#    1.7774 against fp's 1.6272 and 1.5597, the laws in parameters and in FLOPs).
#    Rates 1e-3 (near the fp rule's 9e-4 at width 256) and 3e-3 (binary's choice).
long_run fp 1e-3,3e-3
