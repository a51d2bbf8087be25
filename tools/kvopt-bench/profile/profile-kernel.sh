#!/usr/bin/env bash
# Instructions per token and KV head of one kvopt-bench case's attention
# task, counted by callgrind (deterministic, unlike times on a shared
# machine), plus the busiest loops; then llvm-mca's cycles for the loop over
# one KV head of one block, replayed from the same profile (mca-trace.py),
# per token and KV head. Needs valgrind, llvm-mca-22 and a built
# kvopt-bench. CONTEXT must be whole blocks per task (a multiple of 1024
# with the bench's defaults).
#
#   tools/kvopt-bench/profile/profile-kernel.sh f16|int8|int4 [CONTEXT] [kvopt-bench options...]
#   e.g. profile-kernel.sh int4 32768 --bench-int-dots=0
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
type=$1; ctx=${2:-32768}; shift $(( $# >= 2 ? 2 : 1 ))
case $type in
  f16) bytes=4096 ;;  # K and V, 8 heads x 128 x 2 bytes
  int8) bytes=2080 ;; # + one f16 scale per head
  int4) bytes=1280 ;; # 4 groups of 32 per head, f16 scale and zero point
  *) echo "type must be f16, int8 or int4" >&2; exit 2 ;;
esac
bench=${KVOPT_BUILD_DIR:-$root/build}/bin/kvopt-bench
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$bench" --contexts="$ctx" --kv-types="$type" --dump-object="$work/k.o" \
  --bench-repeats=1 --touch-gib=0.01 "$@" > /dev/null
libdir=$(llvm-config-22 --libdir 2>/dev/null || echo /usr/lib/llvm-22/lib)
clang++-22 -O2 "$here/kernel-driver.cpp" "$work/k.o" -L"$libdir" \
  -lmlir_async_runtime -Wl,-rpath,"$libdir" -o "$work/driver" 2> /dev/null
calls=3
valgrind --tool=callgrind --dump-instr=yes --collect-jumps=yes \
  --callgrind-out-file="$work/cg.%p" \
  "$work/driver" "$ctx" "$bytes" 1 "$calls" > /dev/null 2>&1
objdump -d --no-show-raw-insn "$work/driver" > "$work/dis"
python3 "$here/callgrind-loops.py" "$work"/cg.* "$work/dis" \
  "$((calls * ctx * 8))" parallel_compute_fn_0 "token and KV head"
block=16
for a in "$@"; do
  case $a in --bench-block-tokens=*) block=${a#*=} ;; esac
done
for f in "$work"/cg.*; do
  python3 "$here/mca-trace.py" "$f" "$work/dis" parallel_compute_fn_0 \
    "$((calls * ctx / block * 8))" "$block" 2> /dev/null && break
done
