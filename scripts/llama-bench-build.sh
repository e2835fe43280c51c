#!/usr/bin/env bash
# Prints the path of llama.cpp's llama-bench, building it on first use from the llama.cpp
# sources inside llama-cpp-python's source package on PyPI (the same version the GGUF
# parity tests run; checksum verified), with CMake from PyPI, for docs/BENCHMARKS.md's
# side-by-side speed table. Cached like scripts/llama-cpp-env.sh, keyed by CPU features.
set -euo pipefail
VERSION=0.3.36
URL=https://files.pythonhosted.org/packages/ec/e9/e7de2b0463ea3ffbf0ede6cb21b58c1258a8f6521aae45ca773a59fe7cf3/llama_cpp_python-$VERSION.tar.gz
SHA256=832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e
source "$(dirname "$0")/native-cache.sh"
native_cache "llama-bench-$VERSION" "$VERSION"
bench="$cache/build/bin/llama-bench"
if [ ! -x "$bench" ]; then
    echo "llama-bench-build: building llama-bench from llama-cpp-python $VERSION's llama.cpp into $cache" >&2
    rm -rf "$cache" && mkdir -p "$cache"
    curl -sSfL -o "$cache/src.tar.gz" "$URL"
    echo "$SHA256  $cache/src.tar.gz" | sha256sum -c --quiet
    tar -xzf "$cache/src.tar.gz" -C "$cache"
    python3 -m venv "$cache/venv"
    "$cache/venv/bin/pip" install --quiet cmake ninja >&2
    src="$cache/llama_cpp_python-$VERSION/vendor/llama.cpp"
    "$cache/venv/bin/cmake" -S "$src" -B "$cache/build" -G Ninja -DCMAKE_MAKE_PROGRAM="$cache/venv/bin/ninja" \
        -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF >&2
    "$cache/venv/bin/cmake" --build "$cache/build" --target llama-bench -j "$(nproc)" >&2
fi
echo "$bench"
