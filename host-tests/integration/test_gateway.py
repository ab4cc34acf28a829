"""The receiving side of the gateway role (SPEC §10, §2 `queue`): RCPT
routing by domain, the smarthost for authenticated sessions only, the
queue entry made durable before the 250, 452 4.3.1 when the queue is
full, recovery at start, and `tarpitd queue [flush|delete ID]`.

The next hop here is a port nobody listens on: these tests look at what
the receiving side does, so every forwarded message stays queued
(deferred). Delivery to real next hops is test_relay*.py's."""
import base64
import re

import pytest

from conftest import free_port
from gateway_util import add_user, full_queue_452, gateway_server, queue_files, relay_section, \
    send_message, tarpitd

RECIPIENTS = """\
alice@example.org
carol@office.test
dave@office.test
"""


def relay_ini(port, name="Office", domains="office.test", **keys):
    return relay_section(f"127.0.0.1:{port}", name, domains, retry_min="00:10:00",
                         retry_max="01:00:00", **keys)


def gateway(server, extra="", server_overrides=None, start=True, **connector):
    """tarpitd forwarding office.test to a port nobody listens on."""
    return gateway_server(server, relay_ini(free_port()) + extra, RECIPIENTS, server_overrides,
                          start, **connector)


def send(srv, rcpts, body=b"Subject: t\r\n\r\nhello\r\n", sender="s@origin.test"):
    return send_message(srv, rcpts, body, sender)


def test_mixed_recipients_local_and_queued(server):
    srv = gateway(server)
    qid = send(srv, ["alice@example.org", "carol@office.test", "dave@office.test"])
    # The local copy is in the Maildir, the forwarded one in the queue,
    # both before the 250 the client saw.
    assert len(srv.new_files("alice@example.org")) == 1
    assert queue_files(srv) == [f"{qid}.env", f"{qid}.msg"]
    env = (srv.spool / "queue" / f"{qid}.env").read_text()
    assert "carol@office.test" in env and "dave@office.test" in env
    assert "alice@example.org" not in env
    # One data file, linked: the queue's copy is the Maildir's.
    msg = srv.spool / "queue" / f"{qid}.msg"
    assert msg.stat().st_nlink == 2  # the Maildir's link and the queue's; the tmp name is gone
    assert msg.read_bytes() == srv.new_files("alice@example.org")[0].read_bytes()
    assert "forwarded=2" in srv.stderr()
    # Nothing of the forwarded recipients reached a Maildir.
    assert not (srv.spool / "carol@office.test").exists()
    p = tarpitd(srv, "queue")
    assert p.returncode == 0, p.stderr
    assert qid in p.stdout
    assert re.search(r'to=<carol@office\.test>  relay="Office"  state=pending', p.stdout), p.stdout
    assert "-- 1 message, 2 recipients pending" in p.stdout


def test_forwarded_only_message(server):
    srv = gateway(server)
    qid = send(srv, ["carol@office.test"])
    assert srv.all_new_files() == []
    assert queue_files(srv) == [f"{qid}.env", f"{qid}.msg"]
    assert srv.tmp_files() == []
    data = (srv.spool / "queue" / f"{qid}.msg").read_bytes()
    assert data.startswith(b"Return-Path: <s@origin.test>\n")
    assert b"for <carol@office.test>" in data


def test_unknown_in_relay_domain_is_refused(server):
    srv = gateway(server)
    with srv.client() as c:
        c.greet()
        c.expect(250, line="MAIL FROM:<s@origin.test>")
        c.expect(550, "5.1.1", "RCPT TO:<nobody@office.test>")
        c.expect(550, "5.7.1", "RCPT TO:<x@elsewhere.test>")


def test_smarthost_only_for_authenticated(server, tmp_path):
    users = tmp_path / "users"
    srv = gateway(server, extra=relay_ini(free_port(), name="ISP", domains="*", starttls="no")
                  + f"\n[auth]\nusers = {users}\n", start=False, auth_requires_tls="no")
    add_user(srv, users, "joe", "joe's pw")
    srv.start()
    with srv.client() as c:
        c.greet()
        c.expect(250, line="MAIL FROM:<s@origin.test>")
        c.expect(550, "5.7.1", "RCPT TO:<x@elsewhere.test>")
        c.expect(250, line="RSET")
        c.expect(235, "2.7.0", "AUTH PLAIN " + base64.b64encode(b"\0joe\0joe's pw").decode())
        c.expect(250, line="MAIL FROM:<joe@example.org>")
        c.expect(250, "2.1.5", "RCPT TO:<x@elsewhere.test>")
        c.expect(250, "2.1.5", "RCPT TO:<alice@example.org>")
        c.expect(354, line="DATA")
        c.send(b"Subject: out\r\n\r\nbye\r\n.\r\n")
        r = c.reply()
        assert r.code == 250, r
    qid = r.text.split()[-1]
    env = (srv.spool / "queue" / f"{qid}.env").read_text()
    assert "x@elsewhere.test" in env and "ISP" in env
    assert len(srv.new_files("alice@example.org")) == 1


def test_queue_full_is_452_for_forwarded_only(server):
    srv = gateway(server, server_overrides={"max_queued": "1"})
    send(srv, ["carol@office.test"])
    full_queue_452(srv, "dave@office.test", "alice@example.org", b"Subject: t\r\n\r\nx\r\n")
    assert len(srv.new_files("alice@example.org")) == 1
    assert len([n for n in queue_files(srv) if n.endswith(".env")]) == 1


def test_queue_survives_restart_and_delete(server):
    srv = gateway(server)
    q1 = send(srv, ["carol@office.test"])
    q2 = send(srv, ["dave@office.test"])
    srv.restart(new_port=False)
    assert "event=queue_recovered queued=2" in srv.stderr()
    p = tarpitd(srv, "queue")
    assert p.returncode == 0 and q1 in p.stdout and q2 in p.stdout, p
    # Oldest first, like mailq.
    assert p.stdout.index(q1) < p.stdout.index(q2)
    p = tarpitd(srv, "queue", "delete", q1)
    assert p.returncode == 0, p.stderr
    assert f"deleted {q1}" in p.stdout
    assert f"{q1}.env" not in queue_files(srv) and f"{q1}.msg" not in queue_files(srv)
    assert f"event=queue_delete id={q1}" in srv.stderr()
    p = tarpitd(srv, "queue", "delete", q1)
    assert p.returncode == 1 and "not in the queue" in p.stderr
    p = tarpitd(srv, "queue", "delete", "../etc")
    assert p.returncode == 2
    p = tarpitd(srv, "queue", "flush")
    assert p.returncode == 0 and "1 message due now" in p.stdout, p
    # The listing reads the spool: it works with the server stopped.
    srv.stop()
    p = tarpitd(srv, "queue")
    assert p.returncode == 0 and q2 in p.stdout and q1 not in p.stdout
    p = tarpitd(srv, "queue", "flush")
    assert p.returncode == 1 and "not running" in p.stderr


def test_queue_listing_empty_and_usage(server):
    srv = gateway(server)
    p = tarpitd(srv, "queue")
    assert p.returncode == 0 and "the queue is empty" in p.stdout
    p = tarpitd(srv, "queue", "bogus")
    assert p.returncode == 2 and "usage" in p.stderr


def test_no_relay_keeps_everything_local(server):
    srv = server(recipients=RECIPIENTS, server_overrides={"control": "ctl.sock"})
    send(srv, ["carol@office.test"])
    assert len(srv.new_files("carol@office.test")) == 1
    assert not (srv.spool / "queue").exists()
    p = tarpitd(srv, "queue", "flush")
    assert p.returncode == 1 and "no forwarding queue" in p.stderr
