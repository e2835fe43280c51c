#!/usr/bin/env bash
# Measures data-parallel training on this machine for docs/DISTRIBUTED.md: one preset,
# `binary`, the same short job in every layout: 1 process x 1 thread, 1 process x 2
# threads, 2 ranks x 1 thread over shared memory, and 2 ranks x 1 thread on two simulated
# machines (scripts/simulated-machines.sh) at 1 and 10 Gb/s; the two-rank layouts with and
# without --zero 1. On each link it also runs `bench --allreduce` (the alpha-beta fit).
# Other bitnet-train processes are paused meanwhile and resumed at the end. Needs root.
#
#   scripts/measure-distributed.sh PRESET STEPS LOG_EVERY RESULTS.jsonl [TRAIN_OPTIONS...]
# Appends one JSON line per job: preset, layout, zero, and per logged step tokens/s and
# the share of time blocked in MPI. ONLY=allreduce runs the link benchmarks alone,
# ONLY=links the simulated machines alone; LINKS="1gbit" picks the links.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
preset=${1:?preset}; steps=${2:?steps}; every=${3:?log every}; results=${4:?results file}; shift 4
bin=${BITNET_TRAIN:-$root/.build/release/bitnet-train}
data=${DATA:-$root/runs/shakespeare-data}
work=$(mktemp -d /tmp/measure-distributed.XXXXXX)
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

others=$(pgrep -f "bitnet-train-(bg|q|ptq) " || true)
resume_others() {
    [ -n "$others" ] && kill -CONT $others 2>/dev/null || true
    "$here/simulated-machines.sh" down
}
trap resume_others EXIT
[ -n "$others" ] && kill -STOP $others

job=(train --data "$data" --preset "$preset" --mode binary --steps "$steps" --log-every "$every"
     --eval-every 100000 --eval-windows 4 --checkpoint-every 100000 "$@")

record() {  # layout zero run-directory
    python3 - "$preset" "$1" "$2" "$3/metrics.jsonl" "$(lscpu | sed -n 's/^Model name: *//p')" >> "$results" <<'EOF'
import json, sys
preset, layout, zero, metrics, cpu = sys.argv[1:6]
rows = [json.loads(l) for l in open(metrics)]
print(json.dumps({"preset": preset, "layout": layout, "zero": zero == "1", "cpu": cpu,
                  "steps": [r["step"] for r in rows], "tokens_per_second": [r["tokens_per_second"] for r in rows],
                  "communication_share": [r.get("communication_share") for r in rows],
                  "loss": rows[-1]["loss"]}))
EOF
    echo "$1 zero=$2: $(tail -1 "$results")" >&2
}

run_alone() {  # threads
    out="$work/alone-$1"
    "$bin" "${job[@]}" --out "$out" --threads "$1" > /dev/null 2>&1
    record "1 process x $1 threads" 0 "$out"
}

run_two() {  # layout-name launcher... (the job's arguments follow)
    local name=$1; shift
    for zero in 0 1; do
        out="$work/$(echo "$name" | tr -c 'a-z0-9' -)-$zero"
        "$@" "$bin" "${job[@]}" --out "$out" --threads 1 --zero "$zero" > /dev/null 2>&1
        record "$name" "$zero" "$out"
    done
}

training=$([ "${ONLY:-}" = allreduce ] && echo no || echo yes)
if [ $training = yes ] && [ "${ONLY:-}" != links ]; then
    run_alone 1
    run_alone 2
    run_two "2 ranks x 1 thread, shared memory" mpirun -np 2 --bind-to none
fi
for rate in ${LINKS:-1gbit 10gbit}; do
    "$here/simulated-machines.sh" down
    "$here/simulated-machines.sh" up "$rate"
    [ $training = yes ] && run_two "2 machines x 1 thread, $rate" "$here/simulated-machines.sh" run
    [ "${ONLY:-}" = links ] && continue
    echo "allreduce over $rate:" >&2
    "$here/simulated-machines.sh" run "$bin" bench --allreduce | tee "$work/allreduce-$rate.txt" >&2
    python3 - "$rate" "$work/allreduce-$rate.txt" >> "$results" <<'EOF'
import json, re, sys
rate, path = sys.argv[1:3]
lines = open(path).read().splitlines()
fit = [l for l in lines if l.startswith("fit:")][-1]
alpha, beta = re.search(r"alpha ([0-9.e+-]+) us.*beta ([0-9.e+-]+) ns/byte", fit).groups()
points = [[int(m.group(1)), float(m.group(2))] for m in (re.match(r" *([0-9]+) bytes: ([0-9.]+) ms", l) for l in lines) if m]
print(json.dumps({"allreduce": rate, "alpha_us": float(alpha), "beta_ns_per_byte": float(beta), "bytes_ms": points}))
EOF
done
"$here/simulated-machines.sh" down
rm -rf "$work"
