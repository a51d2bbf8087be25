#!/usr/bin/env python3
"""Cycles per unit of one loop body, by llvm-mca over its dynamic trace.

mca-trace.py CALLGRIND_OUT OBJDUMP_TEXT FUNCTION TRIPS UNITS_PER_TRIP [MCPU]

CALLGRIND_OUT is a callgrind profile taken with --dump-instr=yes and
--collect-jumps=yes. The loop analysed is the widest one of FUNCTION whose
back edge ran TRIPS times (one KV head of one block of the attention task:
calls x blocks x KV heads). Its body is replayed from the disassembly,
conditional branches decided by their recorded counts (a backward branch
taken trips-1 times per entry, a forward one spread at its recorded rate),
which gives the exact instruction stream of one trip; llvm-mca
(-mcpu=MCPU, default native) then estimates its cycles with every load
hitting L1 and every branch predicted. The body is also cut into its
top-level pieces (the loops directly inside it and the straight code
between them), each estimated on its own.

A kernel measured well above the estimate loses the difference to what the
model leaves out: cache misses, branch misses, the front end.
"""
import collections
import re
import subprocess
import sys
import tempfile

from callgrind import parse_callgrind, parse_objdump


def branch(text):
    m = re.match(r'(j\w+)\s+([0-9a-f]+)$', text)
    return (m.group(1), int(m.group(2), 16)) if m else None


def mca(lines, mcpu, iterations=3):
    with tempfile.NamedTemporaryFile('w', suffix='.s') as f:
        f.write('\n'.join(lines) + '\n')
        f.flush()
        out = subprocess.run(['llvm-mca-22', '-mcpu=' + mcpu,
                              '-iterations=%d' % iterations, f.name],
                             capture_output=True, text=True, check=True).stdout
    return float(re.search(r'Total Cycles:\s+(\d+)', out).group(1)) / iterations


def main():
    out, dis, fn = sys.argv[1], sys.argv[2], sys.argv[3]
    trips, per_trip = int(sys.argv[4]), float(sys.argv[5])
    mcpu = sys.argv[6] if len(sys.argv) > 6 else 'native'
    ir, taken = parse_callgrind(out, fn)
    text, start = parse_objdump(dis, fn)
    if not ir or start is None:
        sys.exit('no counts for ' + fn)
    base = min(ir) - start  # run-time address of objdump's address 0
    ir = {a - base: v for a, v in ir.items()}
    taken = {a - base: v for a, v in taken.items()}
    addrs = sorted(a for a in text if a >= start)
    after = dict(zip(addrs, addrs[1:]))

    # Loops: backward conditional branches; the analysed one ran `trips`.
    loops = []
    for a in addrs:
        b = branch(text[a])
        if b and b[0] != 'jmp' and b[1] < a and a in ir:
            loops.append((b[1], a))
    body = [l for l in loops if ir[l[1]] == trips]
    if not body:
        sys.exit('no loop of %s ran %d times' % (fn, trips))
    lo, hi = max(body, key=lambda l: l[1] - l[0])

    # Replay one trip.
    count, rate = collections.Counter(), collections.defaultdict(float)
    pc, trace = lo, []
    for _ in range(10_000_000):
        t = text[pc]
        b = branch(t)
        if b:
            op, target = b
            if op == 'jmp':
                pc = target
                continue
            if pc == hi:
                break
            runs, jumps = ir.get(pc, 0), taken.get(pc, 0)
            if target < pc:  # a loop: trips-1 jumps back per entry
                n = round(runs / max(runs - jumps, 1))
                count[pc] += 1
                if count[pc] < n:
                    pc = target
                else:
                    count[pc] = 0
                    pc = after[pc]
            else:
                rate[pc] += jumps / runs if runs else 0
                if rate[pc] >= 1 - 1e-9:
                    rate[pc] -= 1
                    pc = target
                else:
                    pc = after[pc]
            continue
        if 'nop' not in t and not t.startswith('call'):
            trace.append((pc, t))
        pc = after[pc]
    else:
        sys.exit('the replay did not finish one trip')

    total = mca([t for _, t in trace], mcpu)
    print('loop %x-%x, one trip: %d instructions, llvm-mca -mcpu=%s: %.0f '
          'cycles, %.1f per unit' % (lo, hi, len(trace), mcpu, total,
                                     total / per_trip))
    # Top-level pieces: loops directly inside the body, and the code between.
    inner = [l for l in loops if lo <= l[0] and l[1] < hi and l != (lo, hi)]
    top = [l for l in inner
           if not any(o != l and o[0] <= l[0] and l[1] <= o[1] for o in inner)]
    cuts, at = [], lo
    for l in sorted(top):
        if l[0] > at:
            cuts.append((at, l[0] - 1, 'code'))
        cuts.append((l[0], l[1], 'loop'))
        at = l[1] + 1
    cuts.append((at, hi, 'code'))
    for a, b, kind in cuts:
        part = [t for p, t in trace if a <= p <= b]
        if not part:
            continue
        c = mca(part, mcpu)
        print('  %s %x-%x: %d instructions, %.1f cycles per unit' %
              (kind, a, b, len(part), c / per_trip))


if __name__ == '__main__':
    main()
