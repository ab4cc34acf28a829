"""Hostile inputs of the bad-input catalogue (docs/security.md) that the
other files did not cover yet: SIZE values that overflow, control octets
headed for a header or a log line, NUL and endless lines inside message
data, the PROXY protocol, slowloris clients, connection floods, and long
pipelined batches."""

import os
import random
import select
import socket
import time

import pytest

from conftest import parse_stored

SCALE = float(os.environ.get("TARPITD_TIME_SCALE", "1") or 1)


def session(srv, ehlo="client.test", **kw):
    c = srv.client(**kw)
    c.expect(220)
    if ehlo:
        c.expect(250, line=f"EHLO {ehlo}")
    return c


def only_file(srv, mailbox):
    files = srv.new_files(mailbox)
    assert len(files) == 1, files
    return files[0]


# ---------------------------------------------------------------- SIZE

@pytest.mark.parametrize("size", [
    "4294967296",                       # 2^32
    "18446744073709551615",             # 2^64 - 1
    "18446744073709551616",             # 2^64
    "9" * 20,
], ids=["2^32", "2^64-1", "2^64", "20-digits"])
def test_size_overflow_is_over_limit(shared, size):
    """A SIZE that overflows any integer type is over the limit, never
    wrapped around to something small."""
    with session(shared) as c:
        c.expect(552, "5.3.4", f"MAIL FROM:<sender@origin.test> SIZE={size}")
        c.expect(250, "2.1.0", "MAIL FROM:<sender@origin.test>")


def test_size_over_20_digits_is_out_of_range(shared):
    """RFC 1870's size-value is 1*20DIGIT: more digits is out of range,
    `501 5.5.4` (SPEC §7), not a size (issue 13 item 5)."""
    with session(shared) as c:
        c.expect(501, "5.5.4", f"MAIL FROM:<sender@origin.test> SIZE={'9' * 40}")
        c.expect(250, "2.1.0", "MAIL FROM:<sender@origin.test>")


@pytest.mark.parametrize("size", ["-1", "abc", "", "1e9", "0x10", "+5", "12abc"])
def test_size_malformed_refused(shared, size):
    with session(shared) as c:
        r = c.cmd(f"MAIL FROM:<sender@origin.test> SIZE={size}")
        assert (r.code, r.enh) == (501, "5.5.4"), r.lines     # SPEC §7
        # No transaction was opened.
        c.expect(503, "5.5.1", "RCPT TO:<alice@example.org>")


# ---------------------------------------------------------------- header and log injection

CONTROL_HELO = b"EHLO a\x1bb\x7fc\td\x01e\x0bf\x0cg"


def assert_log_clean(srv):
    for p in srv.logs:
        data = p.read_bytes()
        bad = sorted({b for b in data if (b < 0x20 and b != 0x0A) or b >= 0x7F})
        assert not bad, f"{p.name}: raw client octets in the log: {[hex(b) for b in bad]}"


def test_helo_control_octets_neutered(server):
    """SPEC §7: every HELO octet other than letters, digits and .-_:[] is
    replaced by '?' in Received:, control octets included; the log shows
    none of them raw."""
    srv = server()
    c = srv.client()
    c.expect(220)
    c.expect(250, None, CONTROL_HELO)
    c.mail_rcpt()
    c.expect(354, None, "DATA")
    c.expect(250, "2.0.0", "\r\nx\r\n.")
    c.close()
    data = only_file(srv, "alice@example.org").read_bytes()
    _, recv, _ = parse_stored(data)
    assert recv.startswith("Received: from a?b?c?d?e?f?g ([127.0.0.1])"), recv
    head = data.split(b"\n\n", 1)[0]
    assert not any(b < 0x20 and b not in (0x09, 0x0A) for b in head), head
    srv.stop()
    assert_log_clean(srv)


def test_log_injection_attempts(server):
    """Commands carrying escape sequences, DEL, 8-bit octets and a fake
    log line after a bare CR: each is refused or neutered, and the log
    (at debug level) holds no raw client octet and no forged line."""
    srv = server(max_protocol_errors="0")
    lines = [
        b"EHLO \x1b]0;title\x07",
        b"HELO evil\x1b[0m",
        b"FOO \x1b[2J\x1b[31mred",
        b"NOOP\rinfo: event=accepted id=1 forged=yes",
        b"MAIL FROM:<a\x7f@origin.test>",
        b"MAIL FROM:<\"q\x1b\"@origin.test>",
        b"VRFY \xff\xfe",
        b"RCPT TO:<\"\x1b[2J\"@example.net>",
    ]
    with srv.client() as c:
        c.expect(220)
        for ln in lines:
            r = c.cmd(ln)
            assert r.code in (250, 252, 500, 501, 503), (ln, r.lines)
        c.expect(221, None, "QUIT")
    srv.stop()
    assert_log_clean(srv)
    for p in srv.logs:
        assert b"forged=yes" not in p.read_bytes().replace(b"?", b""), \
            "a client-supplied line reached the log"


@pytest.mark.parametrize("line, code, enh", [
    (b'MAIL FROM:<"ev\x01il"@origin.test>', 501, "5.1.7"),
    (b'MAIL FROM:<"ev\x1bil"@origin.test>', 501, "5.1.7"),
    (b'MAIL FROM:<a\x7f@origin.test>', 501, "5.1.7"),
], ids=["soh", "esc", "del"])
def test_sender_control_octets_refused(shared, line, code, enh):
    """A sender that would put a control octet into Return-Path: is a
    syntax error at MAIL, not a storage failure at DATA."""
    with session(shared) as c:
        c.expect(code, enh, line)
        c.expect(250, "2.1.0", "MAIL FROM:<sender@origin.test>")


@pytest.mark.parametrize("line", [
    b'RCPT TO:<"ev\x01il"@example.net>',
    b'RCPT TO:<"a\tb"@example.net>',
    b'RCPT TO:<"a\x1bb"@example.net>',
], ids=["soh", "tab", "esc"])
def test_recipient_control_octets_refused(shared, line):
    """The `for <rcpt>` clause of Received: carries the recipient as
    given: one with a control octet is refused at RCPT."""
    with session(shared) as c:
        c.expect(250, "2.1.0", "MAIL FROM:<sender@origin.test>")
        c.expect(501, "5.1.3", line)
        c.expect(250, "2.1.5", "RCPT TO:<alice@example.org>")


# ---------------------------------------------------------------- message data

def test_nul_and_8bit_in_data_stored_verbatim(server):
    """Message content is the sender's business: NUL, DEL and 8-bit
    octets inside DATA are stored as sent (only tarpitd's own header
    lines are built from neutered values)."""
    srv = server()
    body = b"Subject: octets\r\n\r\na\x00b\r\n\x00\r\n\x7f\xff\xfe\x80\r\n\x1b[31m\r\n"
    c = srv.client().greet().mail_rcpt()
    c.expect(354, None, "DATA")
    c.send(body + b".\r\n")
    c.expect(250, "2.0.0")
    c.close()
    _, _, stored = parse_stored(only_file(srv, "alice@example.org").read_bytes())
    assert stored == body.replace(b"\r\n", b"\n")


def test_endless_data_line_streams_to_disk(server):
    """A 512 KiB line without any CRLF inside DATA is neither split nor
    buffered in memory: it is stored whole."""
    srv = server()
    line = bytes(random.Random(6).choice(b"abcdefghij") for _ in range(512 * 1024))
    c = srv.client().greet().mail_rcpt()
    c.expect(354, None, "DATA")
    c.send(b"Subject: long\r\n\r\n" + line + b"\r\n.\r\n")
    c.expect(250, "2.0.0", timeout=20 * SCALE)
    c.close()
    _, _, stored = parse_stored(only_file(srv, "alice@example.org").read_bytes())
    assert stored == b"Subject: long\n\n" + line + b"\n"


def test_endless_data_line_over_max_size(server):
    srv = server(max_message_size="256KB")
    c = srv.client().greet().mail_rcpt()
    c.expect(354, None, "DATA")
    c.send(b"Subject: long\r\n\r\n" + b"z" * (1024 * 1024))
    c.no_reply(0.3)
    c.send(b"\r\n.\r\n")
    c.expect(552, "5.3.4", timeout=20 * SCALE)
    c.expect(250, "2.0.0", "NOOP")
    c.close()
    assert srv.all_new_files() == []


# ---------------------------------------------------------------- proxies

@pytest.mark.parametrize("line", [
    "PROXY TCP4 192.0.2.1 198.51.100.1 12345 25",
    "PROXY UNKNOWN",
])
def test_proxy_protocol_header_not_trusted(shared, line):
    """A HAProxy PROXY header is an unknown command, never a way to claim
    another source address."""
    with shared.client() as c:
        c.expect(220)
        c.expect(500, "5.5.1", line)
        c.expect(250, line="EHLO client.test")
        c.expect(250, "2.0.0", "NOOP")


# ---------------------------------------------------------------- slowloris

@pytest.mark.parametrize("where", ["command-line", "data"])
def test_slowloris_cut_by_session_timeout(server, where):
    """A client that dribbles one octet every 0.3 s is never inactive,
    so only connection_timeout can end it: 421 4.4.2 at about 3 s,
    connection closed, nothing stored."""
    srv = server(connection_timeout="00:00:03", connection_inactivity_timeout="00:05:00")
    c = srv.client().greet()
    if where == "data":
        c.mail_rcpt()
        c.expect(354, None, "DATA")
        drip = b"Subject: slow\r\n\r\n" + b"s" * 100
    else:
        drip = b"MAIL FROM:<" + b"s" * 100
    t0 = c.t_connect
    got = None
    for i in range(len(drip)):
        try:
            c.send(drip[i:i + 1])
        except OSError:
            break
        r, _, _ = select.select([c.sock], [], [], 0.3)
        if r:
            got = c.reply(2)
            break
        assert time.monotonic() - t0 < 8 * SCALE, "the slow client was never cut"
    if got is None:
        got = c.reply(3)
    assert (got.code, got.enh) == (421, "4.4.2"), got.lines
    assert got.t - t0 >= 2.8
    assert c.closed(2.0)
    c.close()
    assert srv.all_new_files() == []
    deadline = time.monotonic() + 3
    while srv.tmp_files():
        assert time.monotonic() < deadline, srv.tmp_files()
        time.sleep(0.05)


# ---------------------------------------------------------------- floods

def test_connection_flood_beyond_the_table(server):
    """400 connections at once from 400 sources against a 32-slot table:
    32 are greeted, every other one hears 421 4.3.2 at once (none is left
    hanging), and when the flood goes the table serves again."""
    srv = server(server_overrides={"max_connections": "32"},
                 max_inbound_connections_per_source="1000")
    rnd = random.Random(400)
    socks = []
    for _ in range(400):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind((f"127.{rnd.randint(1, 254)}.{rnd.randint(0, 255)}.{rnd.randint(1, 254)}", 0))
        s.settimeout(5)
        s.connect(("127.0.0.1", srv.port))
        socks.append(s)
    try:
        first = {}
        t0 = time.monotonic()
        while len(first) < len(socks) and time.monotonic() - t0 < 5 * SCALE:
            waiting = [s for s in socks if s not in first]
            ready, _, _ = select.select(waiting, [], [], 0.2)
            for s in ready:
                try:
                    first[s] = s.recv(512)
                except ConnectionResetError:
                    first[s] = b""
        assert len(first) == len(socks), f"{len(socks) - len(first)} connections got nothing"
        greeted = sum(1 for d in first.values() if d.startswith(b"220"))
        refused = sum(1 for d in first.values() if d.startswith(b"421 4.3.2"))
        assert greeted == 32 and refused == 400 - 32, (greeted, refused)
    finally:
        for s in socks:
            s.close()
    deadline = time.monotonic() + 5 * SCALE
    while True:
        c = srv.client(source="127.0.0.77")
        r = c.reply(3)
        if r.code == 220:
            break
        c.close()
        assert time.monotonic() < deadline, r.lines
        time.sleep(0.05)
    c.expect(250, line="EHLO after.test")
    c.mail_rcpt()
    c.expect(354, None, "DATA")
    c.expect(250, "2.0.0", "\r\nafter the flood\r\n.")
    c.close()


# ---------------------------------------------------------------- pipelining

@pytest.mark.parametrize("n", [20, 30])
def test_pipelined_short_batch_answered(shared, n):
    with session(shared) as c:
        c.send(b"NOOP\r\n" * n)
        for _ in range(n):
            c.expect(250, "2.0.0", timeout=5 * SCALE)


@pytest.mark.parametrize("n", [40, 80])
def test_pipelined_long_batch_answered(shared, n):
    """RFC 2920: a client may pipeline any number of commands and then
    wait; every one of them must be answered without more input."""
    with session(shared) as c:
        c.send(b"NOOP\r\n" * n)
        for _ in range(n):
            c.expect(250, "2.0.0", timeout=3 * SCALE)
