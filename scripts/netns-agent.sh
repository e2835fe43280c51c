#!/usr/bin/env bash
# Open MPI's plm_rsh_agent in place of ssh for scripts/simulated-machines.sh:
# "netns-agent.sh HOST COMMAND..." runs COMMAND in the network namespace named HOST.
host=$1
shift
exec ip netns exec "$host" /bin/sh -c "$*"
