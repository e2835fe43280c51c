#!/usr/bin/env bash
# The [0, Qb] study (issue 10): mini with relu2, binary and ternary, three seeds, signed
# against auto (unsigned codes for the down projection). Each run's final validation
# loss over the whole validation split goes to docs/studies/activation-range/results.csv.
# Safe to run again: finished runs are skipped and an interrupted one resumes.
#   DATA=runs/shakespeare-data scripts/activation-range-study.sh
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-runs/shakespeare-data}
BIN=.build/release/bitnet-train
OUT=docs/studies/activation-range
mkdir -p "$OUT" runs/activation-range
test -f "$OUT/results.csv" || echo "mode,range,seed,steps,val_loss,val_perplexity,train_seconds" > "$OUT/results.csv"
for seed in 1 2 3; do
  for mode in binary ternary; do
    for range in signed auto; do
      run=runs/activation-range/$mode-$range-$seed
      if grep -q "^$mode,$range,$seed," "$OUT/results.csv"; then continue; fi
      "$BIN" train --data "$DATA" --preset mini --ffn-activation relu2 --mode "$mode" --activation-range "$range" \
        --seed "$seed" --out "$run" --resume >"$run.log" 2>&1 || { echo "study: $run failed, see $run.log" >&2; exit 1; }
      json=$("$BIN" eval "$run" --data "$DATA" --json)
      python3 - "$json" "$mode" "$range" "$seed" "$run" >>"$OUT/results.csv" <<'PY'
import json, sys
r = json.loads(sys.argv[1])
elapsed = [json.loads(l).get("elapsed_seconds", 0) for l in open(sys.argv[5] + "/metrics.jsonl")][-1]
print(f"{sys.argv[2]},{sys.argv[3]},{sys.argv[4]},{r['step']},{r['val_loss']:.5f},{r['val_perplexity']:.3f},{elapsed:.0f}")
PY
      echo "study: $mode $range seed $seed: $(tail -1 "$OUT/results.csv")" >&2
    done
  done
done
