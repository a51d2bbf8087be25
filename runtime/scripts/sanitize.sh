#!/usr/bin/env bash
# sanitize.sh - builds only the kvopt runtime with AddressSanitizer and
# UndefinedBehaviorSanitizer in a separate build folder and runs its ctest
# suite (label "runtime"). Exits non-zero on any build error, test failure,
# sanitizer report or leak.
#
# Usage: runtime/scripts/sanitize.sh [build-dir]   (default: <repo>/build-rt-san)
# Environment: JOBS (default 2), CC/CXX (default clang/clang++ when present).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
build="${1:-$root/build-rt-san}"
jobs="${JOBS:-2}"

cc="${CC:-}"
cxx="${CXX:-}"
if [[ -z "$cxx" ]] && command -v clang++ >/dev/null; then
  cc=clang
  cxx=clang++
fi

san="-fsanitize=address,undefined -fno-sanitize-recover=all"
flags="$san -fno-omit-frame-pointer -g -O1"

cmake -G Ninja -S "$root/runtime" -B "$build" \
  ${cc:+-DCMAKE_C_COMPILER="$cc"} ${cxx:+-DCMAKE_CXX_COMPILER="$cxx"} \
  -DCMAKE_BUILD_TYPE=Debug \
  -DCMAKE_C_FLAGS="$flags" -DCMAKE_CXX_FLAGS="$flags" \
  -DCMAKE_EXE_LINKER_FLAGS="$san" \
  -DCMAKE_SHARED_LINKER_FLAGS="$san" \
  -DCMAKE_MODULE_LINKER_FLAGS="$san" \
  -DKVOPT_RT_BUILD_BENCH=OFF
ninja -C "$build" -j"$jobs"

export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
ctest --test-dir "$build" -L runtime --output-on-failure -j"$jobs"
echo "sanitize.sh: runtime tests passed under ASan+UBSan ($build)"
