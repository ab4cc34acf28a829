"""pytest plugin for `make test-valgrind` (loaded with -p conftest_valgrind,
host-tests/valgrind on PYTHONPATH).

Gives each test its own valgrind log directory (the wrapper reads
TARPITD_VALGRIND_LOGS from the environment the test's subprocesses
inherit) and, after each test's teardown, reads every log that has become
complete since: a valgrind error or leak turns that teardown into an
error naming the log, so the failure lands on the test that caused it (or,
for a module-scoped server that lives across tests, on the test whose
teardown stopped it). At the end of the session every log is read once
more, including the ones cut short by SIGKILL, and any problem fails the
run.
"""

import os
import re
from pathlib import Path

import pytest

from vgscan import Log, logs_under

ROOT = Path(os.environ.get("TARPITD_VALGRIND_LOGS", "/tmp/tarpitd-valgrind"))
_seen = set()      # logs already judged (complete ones)
_bad = []          # (log path, report) of every problem found
_count = [0]


def _safe(nodeid):
    name = nodeid.split("::", 1)[-1]
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:80]


def pytest_configure(config):
    ROOT.mkdir(parents=True, exist_ok=True)
    os.environ["TARPITD_VALGRIND_LOGS"] = str(ROOT)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    _count[0] += 1
    d = ROOT / f"{_count[0]:04d}-{_safe(item.nodeid)}"
    os.environ["TARPITD_VALGRIND_LOGS"] = str(d)


def _newly_complete_problems():
    out = []
    for p in logs_under(ROOT):
        if p in _seen:
            continue
        lg = Log(p)
        if lg.complete or lg.heads:
            _seen.add(p)
            if lg.bad:
                out.append(lg.report())
                _bad.append((p, lg.report()))
    return out


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.when != "teardown":
        return
    problems = _newly_complete_problems()
    if problems and rep.outcome != "failed":
        rep.outcome = "failed"
        rep.longrepr = "valgrind reported errors or leaks:\n" + "\n\n".join(problems)


def pytest_sessionfinish(session, exitstatus):
    _newly_complete_problems()
    logs = [Log(p) for p in logs_under(ROOT)]
    # Logs cut short by SIGKILL were skipped above unless they showed an
    # error already; their error lines are final now.
    for lg in logs:
        if lg.path not in _seen and lg.bad:
            _bad.append((lg.path, lg.report()))
    session.config._vg_summary = (len(logs), sum(1 for lg in logs if not lg.complete))
    if _bad and session.exitstatus == 0:
        session.exitstatus = 1


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    total, cut = getattr(config, "_vg_summary", (0, 0))
    tr = terminalreporter
    tr.section("valgrind")
    tr.write_line(f"{total} tarpitd runs under valgrind, {total - cut} complete, "
                  f"{cut} cut short (SIGKILL), {len(_bad)} with errors or leaks; logs in {ROOT}")
    for path, text in _bad:
        tr.write_line(text)
    if total == 0:
        tr.write_line("no valgrind log at all: TARPITD_BIN is not the valgrind wrapper")
