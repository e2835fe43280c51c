#!/usr/bin/env bash
# bitnet-run against llama.cpp on the same random ternary b1.58-layout weights: for each
# shape, the packed file and GGUF (TQ2_0, TQ1_0) exported from one seed; then, for 1 and
# 2 threads, llama-bench (pp128, tg128) and bitnet-run --bench (128 + 128 tokens, FP16
# KV cache as llama.cpp's default) one right after the other. Prints one line per
# measurement (tokens/s) and the machine. Usage: scripts/bench-vs-llama-cpp.sh [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-2}
B=.build/release/bitnet-train R=.build/release/bitnet-run
swift build -c release --product bitnet-train >/dev/null && swift build -c release --product bitnet-run >/dev/null
llama_bench=$(scripts/llama-bench-build.sh)
dir=${BENCH_DIR:-/tmp/bitnet-vs-llama-cpp}
mkdir -p "$dir"
declare -A shapes=([125m]="--dim 768 --layers 12 --heads 12 --ffn-dim 2048" [700m]="--dim 1536 --layers 24 --heads 16 --ffn-dim 4096")
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores," \
     "flags: $(grep -o -w -E 'avx2|avx512f|avx512_vnni|avx512_bf16|avx_vnni|avx512_vpopcntdq' /proc/cpuinfo | sort -u | tr '\n' ' ')"
for shape in 125m 700m; do
    common="--random --mode ternary --layout b1.58 ${shapes[$shape]} --vocab-size 32000 --context 2048 --seed 1"
    [ -f "$dir/$shape.bitnet" ] || $B export $common --out "$dir/$shape.bitnet" >/dev/null 2>&1
    for type in tq2_0 tq1_0; do
        [ -f "$dir/$shape-$type.gguf" ] || $B export $common --format gguf --type $type --out "$dir/$shape-$type.gguf" >/dev/null 2>&1
    done
done
for round in $(seq "$rounds"); do
    for shape in 125m 700m; do
        for threads in 1 2; do
            for type in tq2_0 tq1_0; do
                "$llama_bench" -m "$dir/$shape-$type.gguf" -p 128 -n 128 -t "$threads" -r 3 -o json 2>/dev/null |
                    python3 -c "
import json, sys
for r in json.load(sys.stdin):
    test = 'pp128' if r['n_prompt'] else 'tg128'
    print(f'round $round $shape threads $threads llama.cpp $type {test} {r[\"avg_ts\"]:.1f}')"
            done
            $R "$dir/$shape.bitnet" --bench --json --threads "$threads" --repetitions 3 --kv-cache f16 --no-bandwidth 2>/dev/null |
                python3 -c "
import json, sys
r = json.load(sys.stdin)
print(f'round $round $shape threads $threads bitnet-run packed pp128 {r[\"prompt_tokens_per_second\"]:.1f}')
print(f'round $round $shape threads $threads bitnet-run packed tg128 {r[\"gen_tokens_per_second\"]:.1f}')"
        done
    done
done
