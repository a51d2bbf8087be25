#!/usr/bin/env python3
"""Instructions of one function per unit of work, and of its hot loops.

callgrind-loops.py CALLGRIND_OUT OBJDUMP_TEXT UNITS FUNCTION [UNIT_NAME]: reads the
per-instruction counts of FUNCTION (callgrind --dump-instr=yes), maps them
onto the objdump disassembly, and prints the total divided by UNITS and each
loop (a backward branch's range) that takes more than 2 per unit.
"""
import collections
import re
import sys


def main():
    out, dis, units, fn = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    unit = sys.argv[5] if len(sys.argv) > 5 else 'unit'
    names, counts, cur, last = {}, collections.Counter(), False, 0
    for line in open(out):
        line = line.rstrip('\n')
        m = re.match(r'(c?fn)=\((\d+)\)(?: (.*))?', line)
        if m:
            if m.group(3):
                names[m.group(2)] = m.group(3)
            if m.group(1) == 'fn':
                cur = names.get(m.group(2), '') == fn
            continue
        if not cur or not line or re.match(r'[a-z]+=', line):
            continue
        p = line.split()
        a = p[0]
        if a.startswith('0x'):
            addr = int(a, 16)
        elif a.startswith('+'):
            addr = last + int(a[1:])
        elif a.startswith('-'):
            addr = last - int(a[1:])
        elif a == '*':
            addr = last
        else:
            continue
        last = addr
        if len(p) >= 3:
            counts[addr] += int(p[2])
    text, start = {}, None
    for line in open(dis):
        m = re.match(r'([0-9a-f]+) <(.*)>:', line)
        if m and m.group(2) == fn:
            start = int(m.group(1), 16)
        m = re.match(r'\s*([0-9a-f]+):\s+(.*)', line)
        if m:
            text[int(m.group(1), 16)] = m.group(2)
    if not counts or start is None:
        sys.exit('no counts for ' + fn)
    base = min(counts) - start
    counts = {a - base: v for a, v in counts.items()}
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
