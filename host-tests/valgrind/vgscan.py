#!/usr/bin/env python3
"""Reads the valgrind logs that tarpitd-valgrind writes and says whether
any of them shows an error or a leak.

    vgscan.py DIR      prints a summary; exit 0 clean, 1 problems, 2 no logs

A log is *complete* when valgrind got to write its ERROR SUMMARY (the
process exited or died of a signal valgrind could report); a process
killed with SIGKILL (the kill -9 tests) leaves a log without one, and such
a log is still searched for the errors valgrind reports as they happen.
The plugin conftest_valgrind.py uses the same functions after each test.
"""

import re
import sys
from pathlib import Path

SUMMARY = re.compile(r"^==\d+== ERROR SUMMARY: (\d+) errors? from (\d+) contexts?")
COMMAND = re.compile(r"^==\d+== Command: (.*)$")
# The first line of every error valgrind reports while the process runs.
ERROR_HEAD = re.compile(
    r"^==\d+== (Invalid (read|write|free|alignment)|Mismatched free|"
    r"Conditional jump or move depends on uninitialised|"
    r"Use of uninitialised value|Syscall param .* (uninitialised|unaddressable)|"
    r"Source and destination overlap|Argument '.*' of function .* has a fishy|"
    r"Process terminating with default action of signal (4|6|7|8|11)\b|"
    r"\d[\d,]* (\(.*\) )?bytes in [\d,]+ blocks are (definitely|indirectly) lost)")


class Log:
    def __init__(self, path):
        self.path = Path(path)
        text = self.path.read_text(errors="replace")
        self.lines = text.splitlines()
        self.command = next((m.group(1) for m in map(COMMAND.match, self.lines) if m), "?")
        self.errors = None  # from the summary, when complete
        for ln in self.lines:
            m = SUMMARY.match(ln)
            if m:
                self.errors = int(m.group(1))
        self.heads = [ln for ln in self.lines if ERROR_HEAD.match(ln)]

    @property
    def complete(self):
        return self.errors is not None

    @property
    def bad(self):
        return bool(self.errors) or bool(self.heads)

    def excerpt(self, limit=80):
        """The error blocks (everything after the start-up banner and
        before the final summary), cut to limit lines."""
        body = []
        started = False
        for ln in self.lines:
            if COMMAND.match(ln):
                started = True
                continue
            if not started or re.match(r"^==\d+== (Parent PID|$)", ln):
                continue
            if re.match(r"^==\d+== (HEAP SUMMARY|LEAK SUMMARY|For lists of|ERROR SUMMARY|"
                        r"Rerun with|To see them|All heap blocks|For counts)", ln):
                continue
            body.append(ln)
        if len(body) > limit:
            body = body[:limit] + [f"... ({len(body) - limit} more lines in {self.path})"]
        return "\n".join(body)

    def report(self):
        state = (f"{self.errors} error(s)" if self.complete
                 else f"cut short (no summary), {len(self.heads)} error(s) reported before")
        return f"{self.path}: {state}\n  command: {self.command}\n{self.excerpt()}"


def logs_under(root):
    return sorted(Path(root).rglob("tarpitd.*.log"))


def main(argv):
    if len(argv) != 2:
        print("usage: vgscan.py LOGDIR", file=sys.stderr)
        return 2
    logs = [Log(p) for p in logs_under(argv[1])]
    if not logs:
        print(f"vgscan: no valgrind logs under {argv[1]} (was TARPITD_BIN the wrapper?)",
              file=sys.stderr)
        return 2
    bad = [lg for lg in logs if lg.bad]
    cut = [lg for lg in logs if not lg.complete]
    for lg in bad:
        print(lg.report())
    print(f"vgscan: {len(logs)} tarpitd runs under valgrind, {len(logs) - len(cut)} complete, "
          f"{len(cut)} cut short by SIGKILL, {len(bad)} with errors or leaks")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
