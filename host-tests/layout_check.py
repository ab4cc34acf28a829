#!/usr/bin/env python3
"""Issue 12's structural promises, checked on every `make test`: no include
circle among src/'s own headers, and no file in src/ over 1,000 lines (a
file past that is holding more than one concern). Prints one summary line;
exits 1 with each cycle or long file named.

usage: layout_check.py SRC_DIR"""
import os
import re
import sys

MAX_LINES = 1000

def main(d):
    graph, lines = {}, {}
    for f in sorted(os.listdir(d)):
        if not f.endswith((".c", ".h")):
            continue
        text = open(os.path.join(d, f), encoding="utf-8", errors="replace").read()
        lines[f] = text.count("\n")
        graph[f] = [m for m in re.findall(r'^\s*#\s*include\s+"([^"]+)"', text, re.M)
                    if os.path.exists(os.path.join(d, m))]
    cycles, state = [], {}

    def visit(n, path):
        state[n] = 1  # on the current path
        for m in graph.get(n, []):
            if state.get(m) == 1:
                cycles.append(path[path.index(m):] + [m])
            elif not state.get(m):
                visit(m, path + [m])
        state[n] = 2  # done

    for n in graph:
        if not state.get(n):
            visit(n, [n])
    longest = max(lines, key=lines.get)
    long_files = [f for f in lines if lines[f] > MAX_LINES]
    print("layout: %d files, %d include edges, %d cycles; longest %s (%d lines, limit %d)"
          % (len(graph), sum(map(len, graph.values())), len(cycles), longest, lines[longest], MAX_LINES))
    for c in cycles:
        print("layout: include circle: " + " -> ".join(c))
    for f in long_files:
        print("layout: %s has %d lines (over %d): cut it by concern" % (f, lines[f], MAX_LINES))
    return 1 if cycles or long_files else 0

if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "src"))
