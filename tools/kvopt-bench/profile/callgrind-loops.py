#!/usr/bin/env python3
"""Instructions of one function per unit of work, and of its hot loops.

callgrind-loops.py CALLGRIND_OUT OBJDUMP_TEXT UNITS FUNCTION [UNIT_NAME]: reads the
per-instruction counts of FUNCTION (callgrind --dump-instr=yes), maps them
onto the objdump disassembly, and prints the total divided by UNITS and each
loop (a backward branch's range) that takes more than 2 per unit.
"""
import re
import sys

from callgrind import at_objdump_addresses, parse_callgrind, parse_objdump


def main():
    out, dis, units, fn = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    unit = sys.argv[5] if len(sys.argv) > 5 else 'unit'
    counts, _ = parse_callgrind(out, fn)
    text, start = parse_objdump(dis, fn)
    if not counts or start is None:
        sys.exit('no counts for ' + fn)
    counts = at_objdump_addresses(counts, start)
    lo, hi = min(counts), max(counts)
    print('%s: %.1f instructions per %s' % (fn, sum(counts.values()) / units,
                                             unit))
    for a, t in sorted(text.items()):
        m = re.match(r'j\w+\s+([0-9a-f]+)', t)
        if not m or not lo <= a <= hi:
            continue
        d = int(m.group(1), 16)
        if d >= a:
            continue
        w = sum(v for x, v in counts.items() if d <= x <= a) / units
        if w > 2:
            n = sum(1 for x in text if d <= x <= a)
            print('  loop %x-%x (%d instructions): %.1f per %s' % (d, a, n, w,
                                                                  unit))


if __name__ == '__main__':
    main()
