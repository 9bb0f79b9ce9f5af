#!/usr/bin/env python3
"""gen_trace.py OUT_TRACE OUT_MAPS [SIZE_MB]

Builds a large ftrace text for the rewrite benchmark from the real captures in
fixtures/ftrace/*/raw.txt (never committed: write it under bench/data/, which git ignores):
the five captures one after the other, repeated until SIZE_MB (default 1100) is reached,
each repetition shifted 10 s later so time keeps increasing (the timestamp column is
rewritten in place, same width rules as the kernel's " %5lu.%06lu"). Everything else is the
kernel's text byte for byte: event lines, <user stack trace> blocks, raw frames.

OUT_MAPS gets every capture's maps/SEQ-TGID-PID-REASON.maps in the --maps format, untimed
(they count as taken at the end of the trace), so the rewrite resolves frames against real
address spaces."""
import os, re, sys

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..')
fixtures = os.path.join(root, 'fixtures', 'ftrace')
captures = ['bash_loop', 'python_script', 'dlopen', 'path_with_space', 'forkexec']
out_trace, out_maps = sys.argv[1], sys.argv[2]
size = int(sys.argv[3]) if len(sys.argv) > 3 else 1100
target = size * 1024 * 1024

# An event line's timestamp: "] FLAGS  SECS.USECS: " -- the first " SECS.USECS: " after the cpu column.
ts_re = re.compile(rb'^(.*?\[\d{3}\] \S* +)(\d+)\.(\d{6})(: .*)$', re.S)
pieces = []   # per line: bytes (unchanged) or (prefix, usecs, suffix)
for c in captures:
    with open(os.path.join(fixtures, c, 'raw.txt'), 'rb') as f:
        for line in f:
            m = ts_re.match(line)
            if m:
                # The prefix up to the flags column, then the kernel's " %5lu.%06lu" re-made per repetition.
                pieces.append((m.group(1).rstrip(b' ') + b' ', int(m.group(2)) * 1_000_000 + int(m.group(3)), m.group(4)))
            else:
                pieces.append(line)
one = sum(len(p) if isinstance(p, bytes) else len(p[0]) + 12 + len(p[2]) for p in pieces)   # approximate: seconds widths vary

written = 0
rep = 0
with open(out_trace, 'wb', buffering=1 << 22) as out:
    while written < target:
        shift = rep * 10_000_000
        buf = []
        for p in pieces:
            if isinstance(p, bytes):
                buf.append(p)
            else:
                us = p[1] + shift
                buf.append(b'%s%5d.%06d%s' % (p[0], us // 1_000_000, us % 1_000_000, p[2]))
        chunk = b''.join(buf)
        out.write(chunk)
        written += len(chunk)
        rep += 1

name_re = re.compile(r'^(\d{5})-(\d+)-(\d+)-([a-z-]+)\.maps$')
with open(out_maps, 'w') as out:
    for c in captures:
        d = os.path.join(fixtures, c, 'maps')
        for n in sorted(os.listdir(d)):
            m = name_re.match(n)
            if not m:
                continue
            tgid, pid = m.group(2), m.group(3)
            out.write(f'==> /proc/{tgid}/maps <==\n' if tgid == pid else f'==> /proc/{tgid}/task/{pid}/maps <==\n')
            with open(os.path.join(d, n)) as f:
                out.write(f.read())
            out.write('\n')
print(f'{out_trace}: {written} bytes, {rep} repetitions of {one} bytes; {out_maps}')
