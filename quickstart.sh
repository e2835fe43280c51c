#!/usr/bin/env bash
# The main job: set up, fetch the default corpus, train the default BitNet model
# (about ten minutes on 2 cores), export it packed, and generate with bitnet-run. Safe to run again: finished
# steps are skipped and an interrupted training run resumes from its checkpoint.
#   MODE=fp|binary|ternary PRESET=name STEPS=n ./quickstart.sh
set -euo pipefail
cd "$(dirname "$0")"
MODE=${MODE:-binary}
PRESET=${PRESET:-mini}
RUN=runs/quickstart-$PRESET-$MODE
EXTRA=()
if [ -n "${STEPS:-}" ]; then EXTRA+=(--steps "$STEPS"); fi

scripts/setup.sh
data/fetch.sh
echo "quickstart: building (release)..." >&2
swift build -c release 2>&1 | grep -E "error|Build complete" >&2 || true
BIN=.build/release/bitnet-train
test -x "$BIN"

mkdir -p runs
if [ ! -f runs/shakespeare.model ]; then
    "$BIN" tokenizer --input data/corpus/shakespeare.txt --vocab-size 4096 --out runs/shakespeare.model
fi
if [ ! -f runs/shakespeare-data/meta.json ]; then
    "$BIN" prepare --input data/corpus/shakespeare.txt --tokenizer runs/shakespeare.model --out runs/shakespeare-data
fi
"$BIN" train --data runs/shakespeare-data --preset "$PRESET" --mode "$MODE" --out "$RUN" --resume "${EXTRA[@]}"
"$BIN" eval "$RUN" --data runs/shakespeare-data
if [ "$MODE" = fp ]; then
    # Packed models are 1-bit: the fp baseline samples with the trainer's forward pass.
    echo "--- sample (bitnet-train sample, temperature 0.8, top-k 40) ---" >&2
    "$BIN" sample "$RUN" --prompt "KING HENRY. " --max-tokens 200 --temperature 0.8 --top-k 40 --seed 1
else
    "$BIN" export "$RUN" --out "$RUN/model.bitnet"
    echo "--- sample (bitnet-run, add-only inference on packed weights; temperature 0.8, top-k 40) ---" >&2
    .build/release/bitnet-run "$RUN/model.bitnet" --prompt "KING HENRY. " --max-tokens 200 --temperature 0.8 --top-k 40 --seed 1
fi
