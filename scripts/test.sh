#!/usr/bin/env bash
# Quick start, step 2: install what is missing, build, and run every test
# (lit suites, GoogleTest unit tests, the runtime under ASan/UBSan) through
# ctest. Extra arguments go to ctest (e.g. -L unit, -R lit).
# Exhaustive sweeps are behind `ctest -C sweep` / `lit --param sweep=1`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/build.sh
BUILD_DIR=${KVOPT_BUILD_DIR:-build}
# The sweep label (exhaustive grids) runs only when asked: -L sweep.
if [ "$#" -eq 0 ]; then set -- -LE sweep; fi
ctest --test-dir "$BUILD_DIR" --output-on-failure -j "$(nproc)" "$@"
