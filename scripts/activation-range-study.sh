#!/usr/bin/env bash
# The studies of issue 10 on mini with relu2, binary and ternary:
# 1. activation range: signed against auto (unsigned codes for the down projection),
#    seeds 1-3 -> docs/studies/activation-range/results.csv;
# 2. activation storage: the signed binary runs again with --activation-storage bf16
#    (seeds STORAGE_SEEDS, default 1) -> storage.csv, against results.csv's f32 runs.
# Each score is the final validation loss over the whole validation split. Safe to run
# again: finished rows are skipped and an interrupted run resumes from its checkpoint.
#   DATA=runs/shakespeare-data scripts/activation-range-study.sh
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-runs/shakespeare-data}
BIN=.build/release/bitnet-train
OUT=docs/studies/activation-range
mkdir -p "$OUT" runs/activation-range
test -f "$OUT/results.csv" || echo "mode,range,seed,steps,val_loss,val_perplexity,train_seconds" > "$OUT/results.csv"
test -f "$OUT/storage.csv" || echo "mode,storage,seed,steps,val_loss,val_perplexity,train_seconds" > "$OUT/storage.csv"

# study_run CSV ROW_PREFIX RUN_DIR TRAIN_FLAGS...: trains (or resumes) and appends "ROW_PREFIX,steps,loss,ppl,seconds".
study_run() {
  local csv=$1 prefix=$2 run=$3
  shift 3
  if grep -q "^$prefix," "$csv"; then return; fi
  "$BIN" train --data "$DATA" --preset mini --ffn-activation relu2 --out "$run" --resume "$@" >"$run.log" 2>&1 \
    || { echo "study: $run failed, see $run.log" >&2; exit 1; }
  local json
  json=$("$BIN" eval "$run" --data "$DATA" --json)
  python3 - "$json" "$prefix" "$run" >>"$csv" <<'PY'
import json, sys
r = json.loads(sys.argv[1])
elapsed = [json.loads(l).get("elapsed_seconds", 0) for l in open(sys.argv[3] + "/metrics.jsonl")][-1]
print(f"{sys.argv[2]},{r['step']},{r['val_loss']:.5f},{r['val_perplexity']:.3f},{elapsed:.0f}")
PY
  echo "study: $(tail -1 "$csv")" >&2
}

for seed in 1 2 3; do
  for mode in binary ternary; do
    for range in signed auto; do
      study_run "$OUT/results.csv" "$mode,$range,$seed" "runs/activation-range/$mode-$range-$seed" \
        --mode "$mode" --activation-range "$range" --seed "$seed"
    done
  done
done
for seed in ${STORAGE_SEEDS:-1}; do
  study_run "$OUT/storage.csv" "binary,bf16,$seed" "runs/activation-range/binary-signed-bf16-$seed" \
    --mode binary --activation-range signed --activation-storage bf16 --seed "$seed"
done
