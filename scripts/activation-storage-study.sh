#!/usr/bin/env bash
# BF16 activation storage against FP32 (issue 10): the study's mini relu2 runs (signed
# codes) again with --activation-storage bf16, seeds as given; the final validation loss
# goes to docs/studies/activation-range/storage.csv, to compare with results.csv's
# signed runs of the same seed. Safe to run again.
#   SEEDS="1 2" DATA=runs/shakespeare-data scripts/activation-storage-study.sh
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-runs/shakespeare-data}
BIN=.build/release/bitnet-train
OUT=docs/studies/activation-range
mkdir -p "$OUT" runs/activation-range
test -f "$OUT/storage.csv" || echo "mode,storage,seed,steps,val_loss,val_perplexity,train_seconds" > "$OUT/storage.csv"
for seed in ${SEEDS:-1}; do
  for mode in binary; do
    run=runs/activation-range/$mode-signed-bf16-$seed
    if grep -q "^$mode,bf16,$seed," "$OUT/storage.csv"; then continue; fi
    "$BIN" train --data "$DATA" --preset mini --ffn-activation relu2 --mode "$mode" --activation-range signed \
      --activation-storage bf16 --seed "$seed" --out "$run" --resume >"$run.log" 2>&1 || { echo "study: $run failed" >&2; exit 1; }
    json=$("$BIN" eval "$run" --data "$DATA" --json)
    python3 - "$json" "$mode" "$seed" "$run" >>"$OUT/storage.csv" <<'PY'
import json, sys
r = json.loads(sys.argv[1])
elapsed = [json.loads(l).get("elapsed_seconds", 0) for l in open(sys.argv[4] + "/metrics.jsonl")][-1]
print(f"{sys.argv[2]},bf16,{sys.argv[3]},{r['step']},{r['val_loss']:.5f},{r['val_perplexity']:.3f},{elapsed:.0f}")
PY
    echo "study: $mode bf16 seed $seed: $(tail -1 "$OUT/storage.csv")" >&2
  done
done
