"""Issue 12: every session state change passes one place in the session
module, which the server traces at log_level = debug (one line per change,
with the session id), and not at info."""

import re
import time

STATE = re.compile(r"^\d{4}-\d\d-\d\dT[\d:.]+Z debug: event=state id=(\d+) from=(\w+) to=(\w+)$")


def states(srv):
    """The traced transitions in srv's log, as (id, from, to)."""
    out = []
    for p in srv.logs:
        for ln in p.read_text(errors="replace").splitlines():
            m = STATE.match(ln)
            if m:
                out.append((int(m.group(1)), m.group(2), m.group(3)))
    return out


def deliver_and_quit(srv):
    with srv.client() as c:
        c.greet().mail_rcpt()
        c.expect(354, line="DATA")
        c.send(b"Subject: t\r\n\r\nbody\r\n.\r\n")
        c.expect(250, "2.0.0")
        c.expect(221, line="QUIT")
        assert c.closed()


def wait_disconnects(srv, n, timeout=5.0):
    # The readiness probe of the fixture is a session too (the first).
    n += 1
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        text = "".join(p.read_text(errors="replace") for p in srv.logs)
        if text.count("event=disconnect") >= n:
            return
        time.sleep(0.02)
    raise AssertionError("no disconnect logged:\n" + srv.stderr())


def test_transitions_traced_at_debug(server):
    srv = server()
    deliver_and_quit(srv)
    wait_disconnects(srv, 1)
    assert states(srv) == [
        (2, "cmd", "data_wait"),
        (2, "data_wait", "data"),
        (2, "data", "cmd"),
        (2, "cmd", "closing"),
    ], srv.stderr()


def test_offence_closing_goes_through_the_session(server):
    # Talking before the greeting: the transport's own reason to close,
    # through smtp_session_close().
    srv = server(greeting_delay="00:00:01")
    with srv.client() as c:
        c.send(b"EHLO early.test\r\n")
        r = c.reply(timeout=5)
        assert r.code == 554
        assert c.closed()
    wait_disconnects(srv, 1)
    assert states(srv) == [(2, "cmd", "closing")], srv.stderr()


def test_no_trace_at_info(server):
    srv = server(server_overrides={"log_level": "info"})
    deliver_and_quit(srv)
    wait_disconnects(srv, 1)
    assert states(srv) == []
