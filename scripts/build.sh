#!/usr/bin/env bash
# Configures (once) and builds kvopt in $KVOPT_BUILD_DIR (default: build/)
# against Debian's LLVM/MLIR 22, with clang-22, ninja and ccache.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${KVOPT_BUILD_DIR:-build}
JOBS=${KVOPT_JOBS:-$(nproc)}

if [ ! -f "$BUILD_DIR/build.ninja" ]; then
  cmake -G Ninja -S . -B "$BUILD_DIR" \
    -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_C_COMPILER=clang-22 -DCMAKE_CXX_COMPILER=clang++-22 \
    -DMLIR_DIR=/usr/lib/llvm-22/lib/cmake/mlir \
    -DLLVM_EXTERNAL_LIT=/usr/lib/llvm-22/bin/lit >/dev/null
fi
ninja -C "$BUILD_DIR" -j "$JOBS"
