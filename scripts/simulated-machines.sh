#!/usr/bin/env bash
# Two simulated machines on this one: network namespaces bna (10.77.0.1) and bnb
# (10.77.0.2) joined by a veth pair, each direction rate-limited with tc to RATE (e.g.
# 1gbit, 10gbit). `scripts/simulated-machines.sh up RATE` creates them, `down` removes
# them; `run ARGS...` runs `mpirun ARGS...` from bna with one rank per namespace (Open
# MPI starts the remote rank through scripts/netns-agent.sh instead of ssh; TCP only,
# over the veth link). Needs root.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
case "${1:-}" in
up)
    rate=${2:?rate, e.g. 1gbit}
    ip netns add bna && ip netns add bnb
    ip link add vbna type veth peer name vbnb
    ip link set vbna netns bna && ip link set vbnb netns bnb
    ip -n bna addr add 10.77.0.1/24 dev vbna && ip -n bnb addr add 10.77.0.2/24 dev vbnb
    for ns in bna bnb; do ip -n $ns link set lo up; done
    ip -n bna link set vbna up && ip -n bnb link set vbnb up
    ip netns exec bna tc qdisc add dev vbna root tbf rate "$rate" burst 256kb latency 50ms
    ip netns exec bnb tc qdisc add dev vbnb root tbf rate "$rate" burst 256kb latency 50ms
    ;;
down)
    ip netns del bna 2>/dev/null || true
    ip netns del bnb 2>/dev/null || true
    ;;
run)
    shift
    # --bind-to none: each namespace would otherwise bind its rank to core 0, the same core.
    exec ip netns exec bna mpirun --host "$(hostname)",bnb -np 2 --bind-to none --mca plm_rsh_agent "$here/netns-agent.sh" \
        --mca btl tcp,self --mca btl_tcp_if_include 10.77.0.0/24 --mca oob_tcp_if_include 10.77.0.0/24 \
        -x OMPI_ALLOW_RUN_AS_ROOT -x OMPI_ALLOW_RUN_AS_ROOT_CONFIRM "$@"
    ;;
*)
    echo "usage: $0 up RATE | down | run MPIRUN_ARGS..." >&2
    exit 64
    ;;
esac
