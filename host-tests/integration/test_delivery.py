"""SPEC §5 and the data rules of §7: what gets stored, where, and how.

The tarpit is off except in the swaks tarpit case.
"""

import email.utils
import os
import re
import shutil
import signal
import smtplib
import socket
import subprocess
import time
from datetime import datetime, timedelta, timezone

import pytest

from conftest import parse_stored

SENDER = "sender@origin.test"


def smtp(srv, helo="client.test"):
    s = smtplib.SMTP("127.0.0.1", srv.port, local_hostname=helo, timeout=10)
    return s


def send_message(srv, rcpts, msg, sender=SENDER, mail_options=()):
    """Delivers msg (bytes, CRLF, not dot-stuffed) with smtplib; returns
    the (code, text) of the reply to the data."""
    s = smtp(srv)
    try:
        code, _ = s.ehlo()
        assert code == 250
        code, resp = s.mail(sender, list(mail_options))
        assert code == 250, resp
        for r in rcpts:
            code, resp = s.rcpt(r)
            assert code == 250, (r, resp)
        code, resp = s.data(msg)
        s.quit()
        return code, resp.decode("latin-1")
    finally:
        s.close()


def only_file(srv, mailbox):
    files = srv.new_files(mailbox)
    assert len(files) == 1, f"{mailbox}/new holds {files}; all: {srv.all_new_files()}"
    return files[0]


def check_received(recv, helo, proto, qid=None, rcpt=None):
    m = re.match(r"^Received: from (\S+) \(\[127\.0\.0\.1\]\) by mx\.test with (\S+) id ([^\s;]+)(.*)$",
                 recv)
    assert m, recv
    assert m.group(1) == helo, recv
    assert m.group(2) == proto, recv
    if qid is not None:
        assert m.group(3) == qid, recv
    rest = m.group(4)
    if rcpt:
        assert re.match(r"^ for <%s>;" % re.escape(rcpt), rest), recv
    else:
        assert " for " not in rest and rest.startswith(";"), recv
    date = rest.split(";", 1)[1].strip()
    when = email.utils.parsedate_to_datetime(date)
    assert when.tzinfo is not None, date
    assert abs(when - datetime.now(timezone.utc)) < timedelta(minutes=5), date
    return m.group(3)


def queue_id_in(reply_text, qid):
    assert qid in reply_text.split() or qid in reply_text, (qid, reply_text)


# ---------------------------------------------------------------- basic delivery

BODY = (b"Subject: test\r\nFrom: <sender@origin.test>\r\n\r\n"
        b"line one\r\n"
        b".leading dot\r\n"
        b"..two dots\r\n"
        b".\r\n"              # smtplib stuffs this to "..": content "."
        b"tab\there  \r\n"
        b"last\r\n")
BODY_STORED = (b"Subject: test\nFrom: <sender@origin.test>\n\n"
               b"line one\n.leading dot\n..two dots\n.\ntab\there  \nlast\n")


def test_deliver_one_recipient(server):
    srv = server()
    code, text = send_message(srv, ["alice@example.org"], BODY)
    assert code == 250 and text.startswith("2.0.0"), text
    f = only_file(srv, "alice@example.org")
    data = f.read_bytes()
    rp, recv, body = parse_stored(data)
    assert rp == f"Return-Path: <{SENDER}>"
    qid = check_received(recv, "client.test", "ESMTP", rcpt="alice@example.org")
    queue_id_in(text, qid)
    assert body == BODY_STORED
    assert srv.tmp_files() == []
    assert srv.all_new_files() == [f]
    assert os.stat(f).st_nlink == 1


def test_deliver_three_recipients_hard_links(server):
    srv = server()
    code, text = send_message(srv, ["alice@example.org", "Bob@Example.org", "anyone@EXAMPLE.net"],
                              BODY)
    assert code == 250 and text.startswith("2.0.0"), text
    files = [only_file(srv, m) for m in ("alice@example.org", "robert", "catchall")]
    st = [os.stat(f) for f in files]
    assert len({s.st_ino for s in st}) == 1, "not one hard-linked file"
    assert st[0].st_nlink == 3
    assert len(srv.all_new_files()) == 3
    assert srv.tmp_files() == []
    rp, recv, body = parse_stored(files[0].read_bytes())
    assert rp == f"Return-Path: <{SENDER}>"
    qid = check_received(recv, "client.test", "ESMTP", rcpt=None)
    queue_id_in(text, qid)
    assert body == BODY_STORED


def test_deliver_duplicate_recipient_once(server):
    srv = server()
    code, _ = send_message(srv, ["alice@example.org", "ALICE@example.org"], b"\r\nhi\r\n")
    assert code == 250
    only_file(srv, "alice@example.org")
    assert len(srv.all_new_files()) == 1


@pytest.mark.parametrize("rcpt, mailbox", [
    ("postmaster@example.org", "postmaster"),
    ("postmaster", "postmaster"),
    ("ALICE@Example.ORG", "alice@example.org"),
    ("whoever@example.net", "catchall"),
])
def test_mailbox_names(server, rcpt, mailbox):
    srv = server()
    code, _ = send_message(srv, [rcpt], b"Subject: x\r\n\r\nhi\r\n")
    assert code == 250
    only_file(srv, mailbox)
    assert len(srv.all_new_files()) == 1


def test_null_sender_and_helo(server):
    srv = server()
    c = srv.client()
    c.expect(220)
    c.expect(250, None, "HELO old.client")
    c.expect(250, "2.1.0", "MAIL FROM:<>")
    c.expect(250, "2.1.5", "RCPT TO:<alice@example.org>")
    c.expect(354, None, "DATA")
    r = c.expect(250, "2.0.0", "Subject: bounce\r\n\r\nx\r\n.")
    c.close()
    rp, recv, body = parse_stored(only_file(srv, "alice@example.org").read_bytes())
    assert rp == "Return-Path: <>"
    qid = check_received(recv, "old.client", "SMTP", rcpt="alice@example.org")
    queue_id_in(r.text, qid)
    assert body == b"Subject: bounce\n\nx\n"


def test_helo_neutered_in_received(server):
    srv = server()
    c = srv.client()
    c.expect(220)
    c.expect(250, None, 'EHLO we"ird(na>me)%;[1.2]_x-y:z')
    c.mail_rcpt()
    c.expect(354, None, "DATA")
    c.expect(250, "2.0.0", "\r\nx\r\n.")
    c.close()
    _, recv, _ = parse_stored(only_file(srv, "alice@example.org").read_bytes())
    check_received(recv, "we?ird?na?me???[1.2]_x-y:z", "ESMTP", rcpt="alice@example.org")


def test_two_messages_one_session(server):
    srv = server()
    c = srv.client().greet()
    qids = []
    for i in range(2):
        c.mail_rcpt()
        c.expect(354, None, "DATA")
        r = c.expect(250, "2.0.0", f"Subject: m{i}\r\n\r\nbody {i}\r\n.")
        qids.append(r.text)
    c.expect(221, "2.0.0", "QUIT")
    files = srv.new_files("alice@example.org")
    assert len(files) == 2
    assert files[0].name != files[1].name
    ids = [check_received(parse_stored(f.read_bytes())[1], "client.test", "ESMTP",
                          rcpt="alice@example.org") for f in files]
    assert ids[0] != ids[1]
    bodies = sorted(parse_stored(f.read_bytes())[2] for f in files)
    assert bodies == [b"Subject: m0\n\nbody 0\n", b"Subject: m1\n\nbody 1\n"]


def test_empty_message(server):
    srv = server()
    c = srv.client().greet().mail_rcpt()
    c.expect(354, None, "DATA")
    c.expect(250, "2.0.0", ".")
    c.close()
    rp, recv, body = parse_stored(only_file(srv, "alice@example.org").read_bytes())
    assert rp == f"Return-Path: <{SENDER}>"
    assert body == b""


def test_8bitmime_body(server):
    srv = server()
    msg = b"Subject: x\r\n\r\n" + "Grüße aus Köln — ☃".encode() + b"\r\n\x80\xff\xfe raw\r\n"
    code, _ = send_message(srv, ["alice@example.org"], msg, mail_options=["BODY=8BITMIME"])
    assert code == 250
    _, _, body = parse_stored(only_file(srv, "alice@example.org").read_bytes())
    assert body == msg.replace(b"\r\n", b"\n")


def test_message_over_max_size(server):
    srv = server(max_message_size="2KB")
    c = srv.client().greet().mail_rcpt()
    c.expect(354, None, "DATA")
    c.send(b"Subject: big\r\n\r\n" + (b"y" * 98 + b"\r\n") * 100)
    c.no_reply(0.3)
    c.expect(552, "5.3.4", ".")
    # The session goes on and a smaller message gets through.
    c.mail_rcpt()
    c.expect(354, None, "DATA")
    c.expect(250, "2.0.0", "Subject: small\r\n\r\n" + "z" * 500 + "\r\n.")
    c.close()
    files = srv.all_new_files()
    assert len(files) == 1
    assert b"Subject: small" in files[0].read_bytes()
    assert srv.tmp_files() == []


@pytest.mark.parametrize("bad", [b"a\nb", b"a\rb", b"trailing cr\r", b"\n", b"x\r\r\n"],
                         ids=["LF", "CR", "CR-end", "lone-LF", "CRCRLF"])
def test_bare_eol_in_body_rejected(server, bad):
    srv = server()
    c = srv.client().greet().mail_rcpt()
    c.expect(354, None, "DATA")
    c.send(b"Subject: x\r\n\r\n" + bad + b"\r\nrest\r\n")
    c.no_reply(0.3)
    c.expect(550, "5.5.2", ".")
    c.expect(250, "2.0.0", "NOOP")
    c.close()
    assert srv.all_new_files() == []
    assert srv.tmp_files() == []


# ---------------------------------------------------------------- smuggling

SMUGGLED = (b"MAIL FROM:<evil@attacker.test>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n"
            b"Subject: smuggled\r\n\r\nsmuggled body\r\n")

BARE_SEPS = [b"\n.\n", b"\r.\r", b"\n.\r\n", b"\r\n.\n", b"\r\r\n.\r\r\n", b"\r\n.\r",
             b"\n.\r", b"\r.\n", b"\r.\r\n", b"\r\n.\r\r\n"]


@pytest.mark.parametrize("sep", BARE_SEPS, ids=[repr(s)[2:-1] for s in BARE_SEPS])
def test_smuggling_bare_eol_rejected(server, sep):
    srv = server()
    c = srv.client().greet().mail_rcpt()
    c.expect(354, None, "DATA")
    c.send(b"Subject: s\r\n\r\nhello" + sep + SMUGGLED + b".\r\n")
    r = c.reply(5)
    assert (r.code, r.enh) == (550, "5.5.2"), r.lines
    # Exactly one reply to the data: the next one answers the NOOP.
    c.no_reply(0.3)
    c.expect(250, "2.0.0", "NOOP")
    c.close()
    assert srv.all_new_files() == []


CLEAN_SEPS = [(b"\r\n..\r\n", b"\n.\n"), (b"\r\n.. \r\n", b"\n. \n"), (b"\r\n...\r\n", b"\n..\n")]


@pytest.mark.parametrize("sep, stored", CLEAN_SEPS, ids=["dotdot", "dotdot-space", "dotdotdot"])
def test_smuggling_stays_content(server, sep, stored):
    srv = server()
    c = srv.client().greet().mail_rcpt()
    c.expect(354, None, "DATA")
    c.send(b"Subject: s\r\n\r\nhello" + sep + SMUGGLED + b".\r\n")
    c.expect(250, "2.0.0")
    c.no_reply(0.3)
    c.expect(250, "2.0.0", "NOOP")
    c.close()
    f = only_file(srv, "alice@example.org")
    assert len(srv.all_new_files()) == 1
    _, _, body = parse_stored(f.read_bytes())
    assert body == b"Subject: s\n\nhello" + stored + SMUGGLED.replace(b"\r\n", b"\n")


def test_dot_space_line_is_content(server):
    srv = server()
    c = srv.client().greet().mail_rcpt()
    c.expect(354, None, "DATA")
    c.send(b"\r\nhello\r\n. \r\n" + SMUGGLED + b".\r\n")
    c.expect(250, "2.0.0")
    c.no_reply(0.3)
    c.close()
    assert len(srv.all_new_files()) == 1
    body = only_file(srv, "alice@example.org").read_bytes()
    assert b"MAIL FROM:<evil@attacker.test>\nRCPT TO:<bob@example.org>\nDATA\n" in body
    assert srv.new_files("robert") == []


# ---------------------------------------------------------------- end of data in pieces

@pytest.mark.parametrize("pieces", [
    [b"Subject: s\r\n\r\nbody\r", b"\n", b".", b"\r", b"\n"],
    [b"Subject: s\r\n\r\nbody\r\n.", b"\r\n"],
    [b"Subject: s\r\n\r\nbody\r\n", b".\r\n"],
    [b"Subject: s\r\n\r\nbody\r\n.\r", b"\n"],
    [b"Subject: s\r\n\r\nbody", b"\r\n.\r\n"],
], ids=["5", "2a", "2b", "2c", "2d"])
def test_end_of_data_split(server, pieces):
    srv = server()
    c = srv.client().greet().mail_rcpt()
    c.expect(354, None, "DATA")
    for p in pieces[:-1]:
        c.send(p)
        c.no_reply(0.1)
    c.send(pieces[-1])
    c.expect(250, "2.0.0")
    c.close()
    _, _, body = parse_stored(only_file(srv, "alice@example.org").read_bytes())
    assert body == b"Subject: s\n\nbody\n"


def test_data_byte_by_byte(server):
    srv = server()
    c = srv.client().greet().mail_rcpt()
    c.expect(354, None, "DATA")
    msg = b"Subject: s\r\n\r\nab\r\n..x\r\n.y\r\n\r\n.\r\n"
    for i in range(len(msg) - 1):
        c.send(msg[i:i + 1])
        time.sleep(0.004)
    c.no_reply(0.1)
    c.send(msg[-1:])
    c.expect(250, "2.0.0")
    c.close()
    _, _, body = parse_stored(only_file(srv, "alice@example.org").read_bytes())
    assert body == b"Subject: s\n\nab\n.x\ny\n\n"


def test_pipelined_after_end_of_data(server):
    srv = server()
    c = srv.client().greet().mail_rcpt()
    c.expect(354, None, "DATA")
    c.send(b"Subject: first\r\n\r\none\r\n.\r\n"
           b"MAIL FROM:<second@origin.test>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n")
    c.expect(250, "2.0.0")
    c.expect(250, "2.1.0")
    c.expect(250, "2.1.5")
    c.expect(354)
    c.send(b"Subject: second\r\n\r\ntwo\r\n.\r\nQUIT\r\n")
    c.expect(250, "2.0.0")
    c.expect(221, "2.0.0")
    assert c.closed(2)
    a = parse_stored(only_file(srv, "alice@example.org").read_bytes())
    b = parse_stored(only_file(srv, "robert").read_bytes())
    assert a[2] == b"Subject: first\n\none\n"
    assert b[0] == "Return-Path: <second@origin.test>"
    assert b[2] == b"Subject: second\n\ntwo\n"


def test_pipelined_whole_transaction(server):
    """A PIPELINING client sends the envelope in one write (RFC 2920)."""
    srv = server()
    c = srv.client().greet()
    c.send(b"MAIL FROM:<p@origin.test>\r\nRCPT TO:<alice@example.org>\r\n"
           b"RCPT TO:<nobody@example.org>\r\nRCPT TO:<x@example.net>\r\nDATA\r\n")
    c.expect(250, "2.1.0")
    c.expect(250, "2.1.5")
    c.expect(550, "5.1.1")
    c.expect(250, "2.1.5")
    c.expect(354)
    c.send(b"\r\nbody\r\n.\r\n")
    c.expect(250, "2.0.0")
    c.close()
    assert len(srv.new_files("alice@example.org")) == 1
    assert len(srv.new_files("catchall")) == 1


# ---------------------------------------------------------------- swaks

SWAKS = shutil.which("swaks")


@pytest.mark.skipif(not SWAKS, reason="swaks not installed")
def test_swaks_delivery(server):
    srv = server()
    p = subprocess.run([SWAKS, "--server", f"127.0.0.1:{srv.port}", "--to", "alice@example.org",
                        "--from", "x@y.org", "--timeout", "10"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stdout + p.stderr
    rp, _, body = parse_stored(only_file(srv, "alice@example.org").read_bytes())
    assert rp == "Return-Path: <x@y.org>"
    assert b"This is a test mailing" in body


@pytest.mark.skipif(not SWAKS, reason="swaks not installed")
def test_swaks_unknown_user_tarpitted(server):
    srv = server(tarpit_interval="00:00:02")
    t0 = time.monotonic()
    p = subprocess.run([SWAKS, "--server", f"127.0.0.1:{srv.port}", "--to", "nobody@example.org",
                        "--from", "x@y.org", "--timeout", "10"],
                       capture_output=True, text=True, timeout=30)
    elapsed = time.monotonic() - t0
    assert p.returncode != 0, p.stdout
    assert re.search(r"<\*\* +550 5\.1\.1", p.stdout), p.stdout
    assert elapsed >= 1.9, elapsed
    assert srv.all_new_files() == []


# ---------------------------------------------------------------- crashes

def test_kill9_during_data(server):
    srv = server()
    c = srv.client().greet().mail_rcpt(rcpts=("alice@example.org", "bob@example.org"))
    c.expect(354, None, "DATA")
    chunk = b"Subject: big\r\n\r\n" + (b"z" * 998 + b"\r\n") * 300
    c.send(chunk)
    # The data streams to disk: a file shows up in tmp/.
    end = time.monotonic() + 3
    while not srv.tmp_files():
        assert time.monotonic() < end, "no file in tmp/ while data is streamed"
        time.sleep(0.02)
    srv.kill9()
    c.close()
    assert srv.all_new_files() == []
    srv.restart()
    assert srv.tmp_files() == [], "leftovers in tmp/ not removed at start"
    assert srv.all_new_files() == []
    code, _ = send_message(srv, ["alice@example.org"], b"\r\nafter restart\r\n")
    assert code == 250
    assert len(srv.all_new_files()) == 1


def test_kill9_after_250_keeps_message(server):
    srv = server()
    code, _ = send_message(srv, ["alice@example.org", "bob@example.org"], b"\r\nkeep me\r\n")
    assert code == 250
    srv.kill9()
    files = srv.all_new_files()
    assert len(files) == 2
    srv.restart()
    assert len(srv.all_new_files()) == 2
    for f in files:
        assert parse_stored(f.read_bytes())[2] == b"\nkeep me\n"


def test_hangup_during_data_stores_nothing(server):
    srv = server()
    c = srv.client().greet().mail_rcpt()
    c.expect(354, None, "DATA")
    c.send(b"Subject: partial\r\n\r\n" + b"p" * 5000 + b"\r\n")
    time.sleep(0.2)
    c.close()
    end = time.monotonic() + 3
    while srv.tmp_files():
        assert time.monotonic() < end, f"tmp/ not cleaned after a hang-up: {srv.tmp_files()}"
        time.sleep(0.05)
    assert srv.all_new_files() == []
    # The server goes on.
    code, _ = send_message(srv, ["alice@example.org"], b"\r\nnext\r\n")
    assert code == 250


def test_inactivity_timeout_during_data(server):
    srv = server(connection_inactivity_timeout="00:00:02")
    c = srv.client().greet().mail_rcpt()
    c.expect(354, None, "DATA")
    c.send(b"Subject: stalled\r\n\r\nhalf a line")
    r = c.reply(6)
    assert (r.code, r.enh) == (421, "4.4.2"), r.lines
    assert c.closed(2)
    c.close()
    assert srv.all_new_files() == []
    end = time.monotonic() + 2
    while srv.tmp_files():
        assert time.monotonic() < end, f"tmp/ not cleaned after a timeout: {srv.tmp_files()}"
        time.sleep(0.05)


def test_sigterm_421_between_commands(server):
    """SPEC §3: SIGTERM answers 421 4.3.2 to sessions between commands."""
    srv = server()
    idle = srv.client().greet()
    srv.proc.send_signal(signal.SIGTERM)
    r = idle.reply(5)
    assert (r.code, r.enh) == (421, "4.3.2"), r.lines
    assert idle.closed(2)
    assert srv.proc.wait(timeout=5) == 0


def test_sigterm_lets_data_finish(server):
    """SPEC §3: SIGTERM stops listening, lets a DATA transfer in progress
    finish (and store its message), then exits 0."""
    srv = server()
    busy = srv.client().greet().mail_rcpt()
    busy.expect(354, None, "DATA")
    busy.send(b"Subject: in flight\r\n\r\nfirst half\r\n")
    time.sleep(0.2)
    srv.proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    assert srv.alive(), "the server exited with a DATA transfer in progress"
    # No longer listening.
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", srv.port), timeout=1).close()
    busy.send(b"second half\r\n.\r\n")
    busy.expect(250, "2.0.0", timeout=5)
    try:
        srv.proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        raise AssertionError("tarpitd did not exit after the DATA transfer finished")
    assert srv.proc.returncode == 0
    busy.close()
    _, _, body = parse_stored(only_file(srv, "alice@example.org").read_bytes())
    assert body == b"Subject: in flight\n\nfirst half\nsecond half\n"
    assert srv.tmp_files() == []


def test_sigterm_idle_server_exits_0(server):
    srv = server()
    srv.proc.send_signal(signal.SIGTERM)
    assert srv.proc.wait(timeout=5) == 0
