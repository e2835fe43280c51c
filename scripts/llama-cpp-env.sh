#!/usr/bin/env bash
# Prints the path of a Python that has llama.cpp (llama-cpp-python, which builds it from
# source) and the gguf reader, installing them from PyPI into a cached virtual
# environment on first use (a few minutes on 2 cores), for the GGUF parity tests. The
# cache is keyed by version and by the CPU's vector extensions, since the build is native.
set -euo pipefail
LLAMA_CPP_PYTHON=0.3.36
GGUF=0.19.0
# Only the library the binding loads: no multimodal (mtmd) library.
BUILD_OPTIONS="-DLLAVA_BUILD=OFF"
source "$(dirname "$0")/native-cache.sh"
native_cache "llama-cpp-$LLAMA_CPP_PYTHON" "$LLAMA_CPP_PYTHON $GGUF $BUILD_OPTIONS"
python="$cache/venv/bin/python"
if [ ! -f "$cache/ready" ]; then
    echo "llama-cpp-env: installing llama-cpp-python $LLAMA_CPP_PYTHON (builds llama.cpp; a few minutes) into $cache" >&2
    rm -rf "$cache"
    python3 -m venv "$cache/venv"
    CMAKE_ARGS="$BUILD_OPTIONS" "$python" -m pip install --quiet --disable-pip-version-check --no-cache-dir \
        "llama-cpp-python==$LLAMA_CPP_PYTHON" "gguf==$GGUF" numpy >&2
    touch "$cache/ready"
fi
echo "$python"
