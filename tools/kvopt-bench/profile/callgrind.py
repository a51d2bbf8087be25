"""Readers shared by the profile scripts: callgrind's per-instruction counts
of one function (callgrind --dump-instr=yes, positions "instr line"; with
--collect-jumps=yes also its conditional jumps' taken counts) and objdump's
disassembly."""
import collections
import re


def parse_callgrind(path, fn):
    """Instructions executed at each address of `fn`, and how often each
    conditional jump there was taken (empty without --collect-jumps)."""
    names, cur, last, pending = {}, False, 0, None
    ir, taken = collections.Counter(), collections.Counter()

    def position(text):
        if text.startswith('0x'):
            return int(text, 16)
        if text.startswith('+'):
            return last + int(text[1:])
        if text.startswith('-'):
            return last - int(text[1:])
        if text == '*':
            return last
        return None

    for line in open(path):
        line = line.rstrip('\n')
        m = re.match(r'(c?fn)=\((\d+)\)(?: (.*))?', line)
        if m:
            if m.group(3):
                names[m.group(2)] = m.group(3)
            if m.group(1) == 'fn':
                cur = names.get(m.group(2), '') == fn
            pending = None
            continue
        if not cur or not line:
            continue
        m = re.match(r'jcnd=(\d+)/(\d+) ', line)
        if m:
            pending = int(m.group(1))
            continue
        if re.match(r'[a-z]+=', line):
            pending = None
            continue
        fields = line.split()
        at = position(fields[0])
        if at is None:
            continue
        last = at
        if len(fields) >= 3:
            ir[at] += int(fields[2])
        if pending is not None:
            taken[at] += pending
            pending = None
    return ir, taken


def parse_objdump(path, fn):
    """Instruction text by address (symbol annotations dropped), and the
    address where `fn` starts (None if absent)."""
    text, start = {}, None
    for line in open(path):
        m = re.match(r'([0-9a-f]+) <(.*)>:', line)
        if m and m.group(2) == fn:
            start = int(m.group(1), 16)
        m = re.match(r'\s*([0-9a-f]+):\s+(.*)', line)
        if m:
            text[int(m.group(1), 16)] = re.sub(r'\s*<.*>', '',
                                               m.group(2).strip())
    return text, start


def at_objdump_addresses(counts, start):
    """`counts` keyed by run-time address, moved to objdump's addresses
    (the function's first executed instruction is its start)."""
    base = min(counts) - start
    return {a - base: v for a, v in counts.items()}
