"""An outbound session kept for the next message (relay_session.c's idle
session, src/limits.h RELAY_IDLE_MS = 2 s, like Postfix's connection
cache): when a message is done and nothing more is due for its next hop,
the session waits up to 2 s for the next one instead of QUIT at once, so
mail arriving one message at a time does not cost the next hop a
connect, EHLO and QUIT each (docs/benchmarks.md measured 0.9 sessions
per message before).

The next hop is a private Postfix: its smtpd logs each session as
`connect from` and, at its end, `disconnect from ... quit=1 ...` with the
commands counted, which is what the sessions are counted from. One
Postfix is shared by the module (each test sends to its own mailbox and
reads only the log written after it began); the test of a next hop that
closes the idle session itself starts one with smtpd_timeout = 1s.
Every wait polls for the state it needs; none sleeps a fixed time."""
import signal
import time

import pytest

import peers
from conftest import needs_tls
from peers import PostfixPeer, wait_until
from test_relay import LogMark, field, gateway, log, relay_ini, send, stats, tcp, wait_log

USERS = ("alice", "bob", "carol", "dave", "erin", "frank", "postmaster")
RECIPIENTS = "".join("%s@office.test\n" % u for u in USERS if u != "postmaster")
IDLE_S = 2.0  # RELAY_IDLE_MS


def start_postfix(main_extra="", tls=False):
    """A private Postfix (its start waits for the port probe's session to
    end, so a mark taken after it counts only tarpitd's sessions)."""
    peers.require("postfix")
    p = PostfixPeer(domains=("office.test",), users=USERS, tls=tls, main_extra=main_extra)
    try:
        p.start()
    except BaseException:
        p.stop()
        raise
    return p


@pytest.fixture(scope="module")
def postfix():
    p = start_postfix()
    yield p
    p.stop()


@pytest.fixture(scope="module")
def postfix_tls():
    p = start_postfix(tls=True)
    yield p
    p.stop()


def hop(pf, **keys):
    keys.setdefault("starttls", "no")
    return relay_ini(tcp(pf.port), **keys)


def relay_stat(srv, key):
    line = next(ln for ln in stats(srv).splitlines() if ln.startswith('scope=relay name="Office"'))
    return field(line, key)


def still_open(srv, mark):
    """The message is at the next hop and its session did not end: it idles."""
    assert mark.disconnects() == [], mark.disconnects()
    assert relay_stat(srv, "connections_current") == 1


def idle_after_one(server, pf, addr):
    """tarpitd forwarding to PF, one message to ADDR delivered, its
    session idle: (the mark of PF's log before it, tarpitd)."""
    mark = LogMark(pf.log_text)
    srv = gateway(server, hop(pf), recipients=RECIPIENTS)
    send(srv, [addr], subject="one")
    pf.wait_for_messages(1, addr=addr)
    still_open(srv, mark)
    return mark, srv


def session_end(mark):
    """The summary of the one session that ended since MARK, once it has."""
    (summary,) = wait_until(mark.disconnects, 10, "the session's end at Postfix")
    return summary


def no_failure(srv):
    """Nothing deferred, no hop down, no failed session in tarpitd's log."""
    text = log(srv)
    for what in ("status=deferred", "event=relay_down", "event=relay_session"):
        assert what not in text, what


@pytest.mark.parametrize("tls", [False, pytest.param(True, marks=needs_tls)], ids=["clear", "starttls"])
def test_messages_one_after_another_share_one_session(server, request, tls):
    pf = request.getfixturevalue("postfix_tls" if tls else "postfix")
    keys = {"starttls": "required", "ca_file": pf.ca_pem, "tls_name": pf.tls_name} if tls else {}
    mark = LogMark(pf.log_text)
    srv = gateway(server, hop(pf, **keys), recipients=RECIPIENTS)
    for k in range(5):  # each committed alone, each waited for: nothing else is due meanwhile
        send(srv, ["alice@office.test"], subject="reuse%d" % k)
        pf.wait_for_messages(k + 1, addr="alice@office.test")
    assert mark.connects() == 1, mark.text()
    summary = session_end(mark)
    assert "mail=5 rcpt=5 data=5 quit=1" in summary, summary
    assert ("starttls=1" in summary) == tls, summary
    assert mark.connects() == 1
    no_failure(srv)


def test_idle_session_quits_after_the_idle_time(server, postfix):
    t0 = time.monotonic()
    mark, srv = idle_after_one(server, postfix, "bob@office.test")
    summary = session_end(mark)
    waited = time.monotonic() - t0
    assert "quit=1" in summary, summary
    # It stayed for the idle time (from before tarpitd started: at most 3 s more).
    assert IDLE_S <= waited < IDLE_S + 3, waited
    wait_until(lambda: relay_stat(srv, "connections_current") == 0, 5, "connections_current=0")
    no_failure(srv)


def test_next_hop_closes_the_idle_session_next_message_on_a_new_one(server):
    # Postfix's own idle timeout shorter than tarpitd's: it answers 421
    # and closes the session while tarpitd waits for the next message.
    pf = start_postfix("smtpd_timeout = 1s\n")
    try:
        mark = LogMark(pf.log_text)
        # A deferral would wait 10 minutes: the second message must not.
        srv = gateway(server, hop(pf, retry_min="00:10:00", retry_max="01:00:00"), recipients=RECIPIENTS)
        send(srv, ["carol@office.test"], subject="closed1")
        pf.wait_for_messages(1, addr="carol@office.test")
        wait_until(lambda: "timeout after END-OF-MESSAGE" in mark.text(), 10, "Postfix's idle timeout")
        wait_log(srv, r'event=relay_idle relay="Office" end=(input|closed)')
        wait_until(lambda: relay_stat(srv, "connections_current") == 0, 5, "connections_current=0")
        t0 = time.monotonic()
        send(srv, ["carol@office.test"], subject="closed2")
        pf.wait_for_messages(2, addr="carol@office.test", timeout=5)
        assert time.monotonic() - t0 < 3
        assert mark.connects() == 2, mark.text()
        no_failure(srv)
        assert relay_stat(srv, "relay_delivered") == 2 and relay_stat(srv, "relay_deferred") == 0
    finally:
        pf.stop()


def test_sigterm_with_an_idle_session_quits_at_once(server, postfix):
    mark, srv = idle_after_one(server, postfix, "dave@office.test")
    t0 = time.monotonic()
    srv.proc.send_signal(signal.SIGTERM)
    assert srv.proc.wait(timeout=5) == 0
    # The idle session does not hold the stop for its idle time (IDLE_S):
    # it QUITs at once.
    took = time.monotonic() - t0
    assert took < IDLE_S * 0.75, took
    summary = session_end(mark)
    assert "quit=1" in summary, summary  # QUIT, not a dropped connection
    srv.stop()
    no_failure(srv)


def test_reload_while_idle_next_message_on_a_new_session(server, postfix):
    mark, srv = idle_after_one(server, postfix, "erin@office.test")
    t0 = time.monotonic()
    srv.proc.send_signal(signal.SIGHUP)
    wait_log(srv, r"event=reload connectors=")
    # The old configuration's session QUITs at the reload, not at the end of its idle time.
    summary = session_end(mark)
    assert "quit=1" in summary and time.monotonic() - t0 < IDLE_S / 2, summary
    send(srv, ["erin@office.test"], subject="reload2")
    postfix.wait_for_messages(2, addr="erin@office.test")
    assert mark.connects() == 2, mark.text()
    no_failure(srv)
