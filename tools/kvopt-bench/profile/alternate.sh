#!/usr/bin/env bash
# Compares kvopt-bench builds on a noisy machine: runs each binary once per
# round, ROUNDS rounds, alternating, and prints the best and the median
# microseconds per layer of every kv type and binary.
#
#   tools/kvopt-bench/profile/alternate.sh ROUNDS "BENCH OPTIONS" BIN...
#   e.g. alternate.sh 5 "--contexts=32768 --bench-repeats=3" old/kvopt-bench build/bin/kvopt-bench
#
# A binary may be a wrapper script that adds options (to compare options).
set -euo pipefail
rounds=$1; opts=$2; shift 2
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for _ in $(seq "$rounds"); do
  for bin in "$@"; do
    # shellcheck disable=SC2086
    "$bin" $opts 2>&1 | awk -v bin="$bin" \
      '/^(f16|int8|int4) /{print bin, $1, $2, $4}' >> "$out"
  done
done
python3 - "$out" <<'PY'
import collections, statistics, sys
runs = collections.defaultdict(list)
for line in open(sys.argv[1]):
    binary, kv, ctx, us = line.split()
    runs[(kv, int(ctx), binary)].append(float(us))
print(f"{'kv':5} {'context':>8}  {'best us':>9} {'median us':>10}  runs  binary")
for (kv, ctx, binary), us in sorted(runs.items()):
    print(f"{kv:5} {ctx:8}  {min(us):9.1f} {statistics.median(us):10.1f}  {len(us):4}  {binary}")
PY
