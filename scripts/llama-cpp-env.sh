#!/usr/bin/env bash
# Prints the path of a Python that has llama.cpp (llama-cpp-python, which builds it from
# source) and the gguf reader, installing them from PyPI into a cached virtual
# environment on first use (a few minutes on 2 cores), for the GGUF parity tests. The
# cache is keyed by version and by the CPU's vector extensions, since the build is native.
set -euo pipefail
LLAMA_CPP_PYTHON=0.3.36
GGUF=0.19.0
flags=$(grep -o -w -E 'avx2|avx512[a-z_0-9]*|avx_vnni|f16c|fma' /proc/cpuinfo | sort -u | tr '\n' ' ')
key=$(printf '%s %s %s' "$LLAMA_CPP_PYTHON" "$GGUF" "$flags" | md5sum | cut -c1-12)
cache="${BITNET_CACHE:-$HOME/.cache/bitnet-train}/llama-cpp-$LLAMA_CPP_PYTHON-$key"
python="$cache/venv/bin/python"
mkdir -p "$(dirname "$cache")"
exec 9>"$cache.lock"
flock 9
if [ ! -f "$cache/ready" ]; then
    echo "llama-cpp-env: installing llama-cpp-python $LLAMA_CPP_PYTHON (builds llama.cpp; a few minutes) into $cache" >&2
    rm -rf "$cache"
    python3 -m venv "$cache/venv"
    "$python" -m pip install --quiet --disable-pip-version-check --no-cache-dir \
        "llama-cpp-python==$LLAMA_CPP_PYTHON" "gguf==$GGUF" numpy >&2
    touch "$cache/ready"
fi
echo "$python"
