#!/usr/bin/env bash
# Runs the whole test suite at release speed (numeric code is 10-100x slower in debug),
# after checking that the runtime does not depend on the training library.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
swift package dump-package | python3 scripts/check-layering.py
swift test -c release -Xswiftc -enable-testing "$@"
