#!/usr/bin/env bash
# Installs the system libraries the project links against (Debian/Ubuntu), and what the
# tests build llama.cpp with, when missing.
set -euo pipefail
missing=()
# python3-venv and g++: the GGUF parity tests build llama.cpp from PyPI into a virtual environment.
for pkg in libopenblas-dev libsentencepiece-dev libopenmpi-dev openmpi-bin pkg-config python3-venv g++; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}" >&2
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
