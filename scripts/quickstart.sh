#!/usr/bin/env bash
# Quick start, step 1: install what is missing, build, and run the main job:
# kvopt-opt applies a technique pipeline (int4 keys and values, 16-token
# pages) to the shipped Llama-3 decode example, prints the transformed IR
# and the memory report, ending with a one-line summary.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/build.sh
BUILD_DIR=${KVOPT_BUILD_DIR:-build}
"$BUILD_DIR/bin/kvopt-opt" examples/llama3-decode.mlir \
  --kv-optimize="page-size=16 key=int4 value=int4 budget-gib=16 batch=8" \
  -o "$BUILD_DIR/llama3-decode.optimized.mlir" > "$BUILD_DIR/llama3-decode.report.txt"
cat "$BUILD_DIR/llama3-decode.optimized.mlir"
echo
head -n -1 "$BUILD_DIR/llama3-decode.report.txt"
tail -n 1 "$BUILD_DIR/llama3-decode.report.txt"
