#!/usr/bin/env bash
# Runs the whole test suite at release speed (numeric code is 10-100x slower in debug).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
swift test -c release -Xswiftc -enable-testing "$@"
