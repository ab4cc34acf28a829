"""SPEC §3 [tls]/[auth] and the connector keys starttls, require_tls, auth,
auth_requires_tls, max_auth_failures; §5 (Received: ESMTPS/ESMTPA/ESMTPSA);
§6 (users file); the STARTTLS and AUTH rows of §7; §8 (authenticated
sessions are never delayed).

A throwaway self-signed EC certificate and a users file (written by
`tarpitd passwd`) are made once per module. The clients are Python's ssl
module (smtplib and raw sockets wrapped after the 220), `openssl s_client
-starttls smtp` and swaks.
"""

import base64
import os
import random
import re
import select
import shutil
import signal
import smtplib
import socket
import ssl
import stat
import struct
import subprocess
import time

import pytest

from conftest import (BIN, WITH_TLS, DEFAULT_RECIPIENTS, DELAYED, IMMEDIATE, SANITIZER_MARK, T,
                      Client, Closed, Server, free_port, parse_stored, render_ini, stop_all)

TP = "00:00:02"
USERS = {"alice": "s3cret pass", "carol": "hunter2!"}
SENDER = "sender@origin.test"
SWAKS = shutil.which("swaks")
OPENSSL = shutil.which("openssl")

needs_swaks = pytest.mark.skipif(not SWAKS, reason="swaks not installed")
needs_openssl = pytest.mark.skipif(not OPENSSL, reason="openssl not installed")


# ---------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """cert.pem, key.pem and a users file (alice, carol), absolute paths."""
    if not OPENSSL:
        pytest.skip("openssl not installed")
    d = tmp_path_factory.mktemp("pki")
    p = subprocess.run([OPENSSL, "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "key.pem",
                        "-out", "cert.pem", "-days", "2", "-subj", "/CN=localhost"],
                       cwd=str(d), capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    users = d / "users"
    (d / "recipients").write_text(DEFAULT_RECIPIENTS)
    ini = d / "passwd.ini"
    ini.write_text(render_ini(free_port(), server={"spool": str(d / "spool")},
                              extra=f"\n[auth]\nusers = {users}\n"))
    for user, pw in USERS.items():
        p = subprocess.run([str(BIN), "-c", str(ini), "passwd", user], input=pw + "\n",
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, (user, p.stdout, p.stderr)
    assert stat.S_IMODE(users.stat().st_mode) == 0o600
    lines = users.read_text().splitlines()
    assert [ln.split(":", 1)[0] for ln in lines] == list(USERS)
    for ln in lines:
        assert re.match(r"^\w+:\$pbkdf2-sha256\$\d+\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+$", ln), ln
        assert USERS[ln.split(":")[0]] not in ln
    return {"cert": d / "cert.pem", "key": d / "key.pem", "users": users}


class TServer(Server):
    """conftest's Server with raw INI text ([tls], [auth]) appended."""

    def __init__(self, *a, extra="", **kw):
        self.extra = extra
        super().__init__(*a, **kw)

    def write_ini(self):
        self.ini.write_text(render_ini(self.port, self.connector, self.server_overrides,
                                       extra=self.extra))

    def client(self, **kw):
        return TClient(self.port, **kw)

    def log_text(self):
        return "\n".join(p.read_text(errors="replace") for p in self.logs)


@pytest.fixture
def tserver(tmp_path, pki):
    """Factory: tserver(with_tls=True, with_auth=True, max_sessions=4, **connector_keys,
    recipients=..., server_overrides=...)."""
    started = []

    def make(with_tls=True, with_auth=True, max_sessions=4, recipients=DEFAULT_RECIPIENTS,
             server_overrides=None, start=True, users=None, key=None, **connector):
        port = free_port()
        connector.setdefault("bindings", f"127.0.0.1:{port}")
        extra = ""
        if with_tls and not WITH_TLS:
            pytest.skip("built without TLS (TLS=0)")
        if with_tls:
            extra += (f"\n[tls]\ncertificate = {pki['cert']}\nkey = {key or pki['key']}\n"
                      f"max_sessions = {max_sessions}\n")
        if with_auth:
            extra += f"\n[auth]\nusers = {users or pki['users']}\n"
        srv = TServer(tmp_path / f"srv{len(started)}", port, connector, server_overrides,
                      recipients, extra=extra)
        started.append(srv)
        if start:
            srv.start()
        return srv

    yield make
    stop_all(started)


def client_ctx():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class TClient(Client):
    """conftest's Client that can switch to TLS after STARTTLS's 220."""

    def _fill(self, deadline):
        pending = isinstance(self.sock, ssl.SSLSocket) and self.sock.pending()
        if not pending:
            remain = deadline - time.monotonic()
            if remain <= 0:
                raise TimeoutError("no complete reply in time; buffered: %r" % self.buf[:300])
            r, _, _ = select.select([self.sock], [], [], remain)
            if not r:
                raise TimeoutError("no complete reply in time; buffered: %r" % self.buf[:300])
        try:
            data = self.sock.recv(65536)
        except (ConnectionResetError, ssl.SSLError):
            data = b""
        now = time.monotonic()
        if not data:
            self.eof = True
        self.buf += data
        self.marks.append((len(self.buf), now))
        return now

    def starttls(self):
        """STARTTLS, its 220 2.0.0, then the handshake; returns the 220."""
        r = self.expect(220, "2.0.0", "STARTTLS")
        assert not self.buf, f"octets after the 220: {self.buf!r}"
        self.sock = client_ctx().wrap_socket(self.sock)
        return r

    def tls_info(self):
        return self.sock.version(), self.sock.cipher()

    def auth_plain(self, user="alice", pw=None, code=235, enh="2.7.0", timeout=None):
        pw = USERS[user] if pw is None else pw
        return self.expect(code, enh, "AUTH PLAIN " + b64(f"\0{user}\0{pw}"), timeout=timeout)


def b64(s):
    if isinstance(s, str):
        s = s.encode()
    return base64.b64encode(s).decode()


def ehlo_keywords(r):
    return [t.split(" ")[0].upper() for t in r.texts[1:]], r.texts


def tls_session(srv, ehlo="client.test", **kw):
    """A client in TLS that has said EHLO again."""
    c = srv.client(**kw)
    c.greet(ehlo)
    c.starttls()
    if ehlo:
        c.expect(250, None, f"EHLO {ehlo}")
    return c


def delay(c, r):
    return r.t - c.t_sent


def wait_eof(sock, timeout=5.0):
    """Reads until EOF/reset; returns (closed, octets received)."""
    end = time.monotonic() + timeout
    got = b""
    while True:
        remain = end - time.monotonic()
        if remain <= 0:
            return False, got
        r, _, _ = select.select([sock], [], [], remain)
        if not r:
            return False, got
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            return True, got
        if not data:
            return True, got
        got += data


def assert_tls_close(sock, timeout=5.0):
    """The server closes the connection; anything it sent first is a TLS
    alert record, never an SMTP reply."""
    closed, got = wait_eof(sock, timeout)
    assert closed, f"connection still open after {timeout}s; received {got!r}"
    assert got == b"" or got[:1] == b"\x15", f"non-alert octets before close: {got!r}"


def client_hello():
    """The octets of a real TLS ClientHello."""
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = client_ctx().wrap_bio(inc, out)
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    hello = out.read()
    assert hello[:1] == b"\x16" and len(hello) > 100
    return hello


def starttls_works(srv, within=3.0):
    """A new session gets STARTTLS's 220 and completes the handshake
    (within `within` s, for the server to notice an earlier hang-up);
    proves a pool slot is free."""
    end = time.monotonic() + within
    while True:
        c = srv.client()
        c.greet()
        r = c.cmd("STARTTLS")
        if r.code == 220:
            assert r.enh == "2.0.0", r
            c.sock = client_ctx().wrap_socket(c.sock)
            r = c.expect(250, None, "EHLO after.test")
            assert "STARTTLS" not in ehlo_keywords(r)[0]
            c.expect(221, "2.0.0", "QUIT")
            c.close()
            return
        assert (r.code, r.enh) == (454, "4.7.0"), r
        c.close()
        assert time.monotonic() < end, "STARTTLS still 454 4.7.0: the pool slot was not freed"
        time.sleep(0.1)


def only_file(srv, mailbox):
    files = srv.new_files(mailbox)
    assert len(files) == 1, f"{mailbox}/new holds {files}; all: {srv.all_new_files()}"
    return files[0]


def received_proto(srv, mailbox="alice@example.org"):
    _, recv, body = parse_stored(only_file(srv, mailbox).read_bytes())
    m = re.match(r"^Received: from \S+ \(\[127\.0\.0\.1\]\) by mx\.test with (\S+) id ", recv)
    assert m, recv
    return m.group(1), body


def deliver(c, rcpt="alice@example.org", body="Subject: t\r\n\r\nhello over tls\r\n"):
    c.expect(250, "2.1.0", f"MAIL FROM:<{SENDER}>")
    c.expect(250, "2.1.5", f"RCPT TO:<{rcpt}>")
    c.expect(354, None, "DATA")
    return c.expect(250, "2.0.0", body + ".")


def swaks(srv, *args, to="alice@example.org", timeout=30):
    return subprocess.run([SWAKS, "--server", f"127.0.0.1:{srv.port}", "--to", to,
                           "--from", SENDER, "--helo", "swaks.test", "--timeout", "10", *args],
                          capture_output=True, text=True, timeout=timeout)


# ---------------------------------------------------------------- EHLO lists

def test_ehlo_lists_before_and_after_tls(tserver):
    srv = tserver()
    with srv.client() as c:
        c.expect(220)
        kw, texts = ehlo_keywords(c.expect(250, None, "EHLO client.test"))
        assert "STARTTLS" in kw, texts
        assert "AUTH" not in kw, texts           # auth_requires_tls = yes by default
        c.starttls()
        kw, texts = ehlo_keywords(c.expect(250, None, "EHLO client.test"))
        assert "STARTTLS" not in kw, texts
        assert "AUTH PLAIN LOGIN" in texts, texts
        for k in ("SIZE", "PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES"):
            assert k in kw, texts


def test_ehlo_auth_in_clear_when_not_required(tserver):
    srv = tserver(auth_requires_tls="no")
    with srv.client() as c:
        c.expect(220)
        kw, texts = ehlo_keywords(c.expect(250, None, "EHLO client.test"))
        assert "STARTTLS" in kw and "AUTH PLAIN LOGIN" in texts, texts


def test_ehlo_without_tls_and_auth_sections(tserver):
    srv = tserver(with_tls=False, with_auth=False, auth_requires_tls="no")
    with srv.client() as c:
        c.expect(220)
        kw, texts = ehlo_keywords(c.expect(250, None, "EHLO client.test"))
        assert "STARTTLS" not in kw and "AUTH" not in kw, texts
        c.expect(454, "4.7.0", "STARTTLS")
        c.expect(502, "5.5.1", "AUTH PLAIN " + b64("\0alice\0x"))
        c.expect(250, "2.0.0", "NOOP")


def test_connector_starttls_no_and_auth_no(tserver):
    srv = tserver(starttls="no", auth="no", auth_requires_tls="no")
    with srv.client() as c:
        c.expect(220)
        kw, texts = ehlo_keywords(c.expect(250, None, "EHLO client.test"))
        assert "STARTTLS" not in kw and "AUTH" not in kw, texts
        c.expect(454, "4.7.0", "STARTTLS")
        c.expect(502, "5.5.1", "AUTH PLAIN " + b64("\0alice\0" + USERS["alice"]))


# ---------------------------------------------------------------- STARTTLS

def test_starttls_python_handshake(tserver):
    srv = tserver()
    with tls_session(srv) as c:
        version, cipher = c.tls_info()
        assert version in ("TLSv1.2", "TLSv1.3"), version
        name = cipher[0]
        # Forward secrecy and AEAD only.
        assert version == "TLSv1.3" or name.startswith("ECDHE"), cipher
        assert "GCM" in name or "CHACHA20" in name or "CCM" in name, cipher
        c.expect(250, "2.0.0", "NOOP")
        c.expect(221, "2.0.0", "QUIT")
        assert c.closed()


def test_tls12_only_client(tserver):
    srv = tserver()
    with srv.client() as c:
        c.greet()
        c.expect(220, "2.0.0", "STARTTLS")
        ctx = client_ctx()
        ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        c.sock = ctx.wrap_socket(c.sock)
        assert c.sock.version() == "TLSv1.2"
        c.expect(250, None, "EHLO client.test")


def test_starttls_resets_state(tserver):
    srv = tserver()
    with srv.client() as c:
        c.greet()
        c.starttls()
        # HELO/EHLO is forgotten.
        c.expect(503, "5.5.1", f"MAIL FROM:<{SENDER}>")
        c.expect(503, "5.5.1", "AUTH PLAIN " + b64("\0alice\0" + USERS["alice"]))
        kw, texts = ehlo_keywords(c.expect(250, None, "EHLO client.test"))
        assert "STARTTLS" not in kw, texts
        c.expect(503, "5.5.1", "STARTTLS")
        c.expect(503, "5.5.1", "STARTTLS")
        deliver(c)
    assert received_proto(srv)[0] == "ESMTPS"


def test_starttls_forgets_auth(tserver):
    """Authenticated in the clear, then STARTTLS: AUTH is forgotten and
    may (must) be done again."""
    srv = tserver(auth_requires_tls="no")
    with srv.client() as c:
        c.greet()
        c.auth_plain()
        c.expect(503, "5.5.1", "AUTH PLAIN " + b64("\0alice\0" + USERS["alice"]))
        c.starttls()
        c.expect(250, None, "EHLO client.test")
        c.auth_plain("carol")
        deliver(c)
    assert received_proto(srv)[0] == "ESMTPSA"


def test_starttls_syntax_and_sequence(tserver):
    srv = tserver()
    with srv.client() as c:
        c.greet()
        c.expect(501, "5.5.4", "STARTTLS now")
        c.expect(250, "2.1.0", f"MAIL FROM:<{SENDER}>")
        c.expect(503, "5.5.1", "STARTTLS")
        c.expect(250, "2.0.0", "RSET")
        c.starttls()
        c.expect(250, None, "EHLO client.test")
        # Both rows apply (already in TLS, with argument): either code.
        r = c.cmd("STARTTLS now")
        assert (r.code, r.enh) in ((503, "5.5.1"), (501, "5.5.4")), r
        c.expect(250, "2.0.0", "NOOP")


def test_starttls_injection_rejected(tserver):
    """Commands pipelined behind STARTTLS (RFC 3207 §6, CVE-2011-0411
    class) are never executed: 554 5.5.0 and close, no 220."""
    srv = tserver()
    with srv.client() as c:
        c.greet()
        c.send(b"STARTTLS\r\nMAIL FROM:<x@y>\r\n")
        r = c.reply()
        assert (r.code, r.enh) == (554, "5.5.0"), r
        assert c.closed(), "connection not closed after 554"
    # The pool slot taken for the refused STARTTLS is back.
    starttls_works(srv)


def test_starttls_injection_rejected_max_sessions_1(tserver):
    srv = tserver(max_sessions=1)
    for _ in range(3):
        with srv.client() as c:
            c.greet()
            c.send(b"STARTTLS\r\nRSET\r\n")
            r = c.reply()
            assert (r.code, r.enh) == (554, "5.5.0"), r
            assert c.closed()
    starttls_works(srv)


def test_require_tls(tserver):
    srv = tserver(require_tls="yes")
    with srv.client() as c:
        c.greet()
        c.expect(530, "5.7.0", f"MAIL FROM:<{SENDER}>")
        c.expect(530, "5.7.0", "MAIL FROM:<>")
        c.starttls()
        c.expect(250, None, "EHLO client.test")
        deliver(c)
    assert received_proto(srv)[0] == "ESMTPS"


def test_pool_exhaustion(tserver):
    srv = tserver(max_sessions=1)
    first = tls_session(srv)
    first.expect(250, "2.0.0", "NOOP")
    with srv.client() as second:
        second.greet()
        second.expect(250, None, "EHLO again.test")
        second.expect(454, "4.7.0", "STARTTLS")
        second.expect(454, "4.7.0", "STARTTLS")
        # The session goes on in the clear.
        deliver(second)
        # The TLS session is unaffected.
        first.expect(250, "2.0.0", "NOOP")
        first.expect(221, "2.0.0", "QUIT")
        assert first.closed()
        first.close()
        second.starttls()
        second.expect(250, None, "EHLO again.test")
        second.expect(250, "2.0.0", "NOOP")
        # Now the pool is full again.
        with srv.client() as third:
            third.greet()
            third.expect(454, "4.7.0", "STARTTLS")
    assert len(srv.new_files("alice@example.org")) == 1


def test_pool_slot_freed_on_abrupt_close_in_tls(tserver):
    srv = tserver(max_sessions=1)
    for _ in range(2):
        c = tls_session(srv)
        c.expect(250, "2.0.0", "NOOP")
        c.abort()
        starttls_works(srv)
    c = tls_session(srv)
    c.expect(250, "2.1.0", f"MAIL FROM:<{SENDER}>")
    c.close()
    starttls_works(srv)


# ---------------------------------------------------------------- bad handshakes

def _bad_handshake(srv, action):
    """A plain session is open alongside; `action(sock)` misbehaves after
    STARTTLS's 220; then the plain session still works and a later
    STARTTLS (max_sessions = 1) succeeds."""
    with srv.client() as bystander:
        bystander.greet("bystander.test")
        c = srv.client()
        c.greet()
        c.expect(220, "2.0.0", "STARTTLS")
        t0 = time.monotonic()
        action(c.sock)
        c.close()
        r = bystander.expect(250, "2.0.0", "NOOP")
        assert delay(bystander, r) < IMMEDIATE
        starttls_works(srv)
        deliver(bystander)
    assert len(srv.new_files("alice@example.org")) == 1
    assert srv.alive()
    return t0


def test_handshake_http_garbage(tserver):
    srv = tserver(max_sessions=1)

    def action(sock):
        sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
        assert_tls_close(sock)

    _bad_handshake(srv, action)


def test_handshake_random_bytes(tserver):
    srv = tserver(max_sessions=1)
    junk = random.Random(20240521).randbytes(600)

    def action(sock):
        try:
            sock.sendall(junk)
        except (BrokenPipeError, ConnectionResetError):
            return
        assert_tls_close(sock)

    _bad_handshake(srv, action)


def test_handshake_bad_record_after_valid_header(tserver):
    """A handshake record header with a body that is not a ClientHello."""
    srv = tserver(max_sessions=1)

    def action(sock):
        sock.sendall(b"\x16\x03\x01\x00\x40" + b"\xff" * 0x40)
        # 2.28 refuses it at once. 3.6 (3.6.4 and later) reassembles
        # handshake messages from several records and waits for the rest
        # of the one declared here, until the handshake deadline or the
        # client's close; either way nothing but an alert comes back, and
        # _bad_handshake checks the context returns to the pool.
        closed, got = wait_eof(sock, 2.0)
        assert got == b"" or got[:1] == b"\x15", f"non-alert octets: {got!r}"

    _bad_handshake(srv, action)


def test_handshake_truncated_hello_then_close(tserver):
    srv = tserver(max_sessions=1)
    hello = client_hello()

    def action(sock):
        sock.sendall(hello[:len(hello) // 2])
        time.sleep(0.2)

    _bad_handshake(srv, action)


def test_handshake_truncated_hello_then_half_close(tserver):
    """EOF in the middle of the ClientHello: the server closes too."""
    srv = tserver(max_sessions=1)
    hello = client_hello()

    def action(sock):
        sock.sendall(hello[:len(hello) // 2])
        sock.shutdown(socket.SHUT_WR)
        assert_tls_close(sock)

    _bad_handshake(srv, action)


def test_handshake_reset_midway(tserver):
    """ClientHello sent, the server's first flight read, then a RST."""
    srv = tserver(max_sessions=1)
    hello = client_hello()

    def action(sock):
        sock.sendall(hello)
        r, _, _ = select.select([sock], [], [], 5.0)
        assert r, "no ServerHello"
        first = sock.recv(65536)
        assert first[:1] == b"\x16", first[:20]
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    _bad_handshake(srv, action)


def test_handshake_reset_right_after_220(tserver):
    srv = tserver(max_sessions=1)

    def action(sock):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    _bad_handshake(srv, action)


def test_handshake_plaintext_smtp_after_220(tserver):
    """A client that ignores the 220 and goes on in the clear."""
    srv = tserver(max_sessions=1)

    def action(sock):
        sock.sendall(b"MAIL FROM:<x@y.test>\r\n")
        assert_tls_close(sock)

    _bad_handshake(srv, action)


def test_handshake_timeout(tserver):
    """A client that says nothing after the 220 is cut after 30 s and its
    pool slot freed."""
    srv = tserver(max_sessions=1)
    with srv.client() as c:
        c.greet()
        c.expect(220, "2.0.0", "STARTTLS")
        t0 = time.monotonic()
        with srv.client() as other:
            other.greet()
            other.expect(454, "4.7.0", "STARTTLS")
        closed, got = wait_eof(c.sock, 40.0)
        elapsed = time.monotonic() - t0
        assert closed, "handshake never timed out"
        assert got == b"" or got[:1] == b"\x15", got
        assert 28.0 <= elapsed < 35.0, elapsed
    starttls_works(srv)


# ---------------------------------------------------------------- delivery

def test_smtplib_starttls_delivery(tserver):
    srv = tserver()
    s = smtplib.SMTP("127.0.0.1", srv.port, local_hostname="py.test", timeout=10)
    try:
        s.ehlo()
        assert s.has_extn("starttls")
        code, _ = s.starttls(context=client_ctx())
        assert code == 220
        s.ehlo()
        assert not s.has_extn("starttls")
        assert s.has_extn("auth")
        refused = s.sendmail(SENDER, ["alice@example.org"], b"Subject: py\r\n\r\nvia smtplib\r\n")
        assert refused == {}
        s.quit()
    finally:
        s.close()
    proto, body = received_proto(srv)
    assert proto == "ESMTPS"
    assert b"via smtplib" in body


def test_smtplib_login_delivery(tserver):
    srv = tserver()
    s = smtplib.SMTP("127.0.0.1", srv.port, local_hostname="py.test", timeout=10)
    try:
        s.starttls(context=client_ctx())
        code, _ = s.login("carol", USERS["carol"])
        assert code == 235
        s.sendmail(SENDER, ["bob@example.org"], b"Subject: py\r\n\r\nauthenticated\r\n")
        s.quit()
    finally:
        s.close()
    proto, _ = received_proto(srv, "robert")
    assert proto == "ESMTPSA"


def test_smtplib_login_wrong_password(tserver):
    srv = tserver()
    s = smtplib.SMTP("127.0.0.1", srv.port, local_hostname="py.test", timeout=10)
    try:
        s.starttls(context=client_ctx())
        with pytest.raises(smtplib.SMTPAuthenticationError) as ei:
            s.login("alice", "wrong")
        assert ei.value.smtp_code == 535
    finally:
        s.close()


def test_plain_session_received_esmtp(tserver):
    srv = tserver()
    with srv.client() as c:
        c.greet()
        deliver(c)
    assert received_proto(srv)[0] == "ESMTP"


def test_auth_in_clear_received_esmtpa(tserver):
    srv = tserver(auth_requires_tls="no")
    with srv.client() as c:
        c.greet()
        c.auth_plain()
        deliver(c)
    assert received_proto(srv)[0] == "ESMTPA"


def test_auth_in_tls_received_esmtpsa(tserver):
    srv = tserver()
    with tls_session(srv) as c:
        c.auth_plain()
        deliver(c)
    assert received_proto(srv)[0] == "ESMTPSA"


def test_auth_without_tls_section_esmtpa(tserver):
    srv = tserver(with_tls=False, auth_requires_tls="no")
    with srv.client() as c:
        c.greet()
        c.auth_plain("carol")
        deliver(c)
    assert received_proto(srv)[0] == "ESMTPA"


# ---------------------------------------------------------------- swaks

@needs_swaks
def test_swaks_tls_delivery(tserver):
    srv = tserver()
    p = swaks(srv, "--tls")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "TLS started" in p.stdout, p.stdout
    assert received_proto(srv)[0] == "ESMTPS"


@needs_swaks
@pytest.mark.parametrize("mech", ["PLAIN", "LOGIN"])
def test_swaks_tls_auth_delivery(tserver, mech):
    srv = tserver()
    p = swaks(srv, "--tls", "--auth", mech, "--auth-user", "alice",
              "--auth-password", USERS["alice"])
    assert p.returncode == 0, p.stdout + p.stderr
    assert re.search(r"<~ +235 2\.7\.0", p.stdout), p.stdout
    assert received_proto(srv)[0] == "ESMTPSA"


@needs_swaks
def test_swaks_auth_login_in_clear(tserver):
    srv = tserver(auth_requires_tls="no")
    p = swaks(srv, "--auth", "LOGIN", "--auth-user", "carol", "--auth-password", USERS["carol"])
    assert p.returncode == 0, p.stdout + p.stderr
    assert re.search(r"<- +334 VXNlcm5hbWU6", p.stdout), p.stdout
    assert re.search(r"<- +334 UGFzc3dvcmQ6", p.stdout), p.stdout
    assert re.search(r"<- +235 2\.7\.0", p.stdout), p.stdout
    assert received_proto(srv)[0] == "ESMTPA"


@needs_swaks
@pytest.mark.parametrize("mech", ["PLAIN", "LOGIN"])
def test_swaks_tls_auth_wrong_password(tserver, mech):
    srv = tserver()
    p = swaks(srv, "--tls", "--auth", mech, "--auth-user", "alice",
              "--auth-password", "not the password")
    assert p.returncode != 0, p.stdout
    assert re.search(r"<~\* +535 5\.7\.8", p.stdout), p.stdout
    assert srv.all_new_files() == []


@needs_swaks
def test_swaks_auth_not_offered_before_tls(tserver):
    srv = tserver()
    p = swaks(srv, "--auth", "PLAIN", "--auth-user", "alice", "--auth-password", USERS["alice"])
    assert p.returncode != 0, p.stdout
    assert "AUTH" not in "".join(ln for ln in p.stdout.splitlines() if ln.startswith("<-")), p.stdout
    assert srv.all_new_files() == []


@needs_swaks
def test_swaks_tls_tarpitted_unknown_vs_authenticated(tserver):
    srv = tserver(tarpit_interval=TP)
    t0 = time.monotonic()
    p = swaks(srv, "--tls", to="nobody@example.org")
    slow = time.monotonic() - t0
    assert p.returncode != 0
    assert re.search(r"<~\* +550 5\.1\.1", p.stdout), p.stdout
    assert slow >= DELAYED, slow
    t0 = time.monotonic()
    p = swaks(srv, "--tls", "--auth", "PLAIN", "--auth-user", "alice",
              "--auth-password", USERS["alice"], to="nobody@example.org")
    fast = time.monotonic() - t0
    assert re.search(r"<~\* +550 5\.1\.1", p.stdout), p.stdout
    assert fast < slow - 1.0, (fast, slow)


# ---------------------------------------------------------------- openssl s_client

class SClient:
    """openssl s_client -starttls smtp -quiet, driven line by line."""

    def __init__(self, port):
        self.p = subprocess.Popen([OPENSSL, "s_client", "-starttls", "smtp", "-connect",
                                   f"127.0.0.1:{port}", "-quiet"],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE)
        self.buf = b""
        self.first = True

    def _line(self, deadline):
        while b"\n" not in self.buf:
            remain = deadline - time.monotonic()
            assert remain > 0, f"s_client: no reply line; buffered {self.buf!r}"
            r, _, _ = select.select([self.p.stdout], [], [], remain)
            assert r, f"s_client: no reply line; buffered {self.buf!r}"
            data = os.read(self.p.stdout.fileno(), 65536)
            if not data:
                raise Closed(f"s_client output ended; buffered {self.buf!r}")
            self.buf += data
        line, _, self.buf = self.buf.partition(b"\n")
        return line.rstrip(b"\r").decode("latin-1")

    def reply(self, timeout=10.0):
        deadline = time.monotonic() + timeout
        lines = []
        while True:
            ln = self._line(deadline)
            # Some s_client versions echo the last line of the pre-TLS EHLO.
            if self.first and not lines and ln == "250 ENHANCEDSTATUSCODES":
                continue
            self.first = False
            assert re.match(r"^\d{3}[ -]", ln), ln
            lines.append(ln)
            if ln[3] == " ":
                return lines

    def cmd(self, line, code, enh=None):
        self.p.stdin.write(line.encode() + b"\r\n")
        self.p.stdin.flush()
        lines = self.reply()
        assert lines[-1][:3] == str(code), (line, lines)
        if enh:
            assert lines[0][4:].startswith(enh + " ") or lines[0][4:] == enh, (line, lines)
        return lines

    def finish(self, timeout=10):
        try:
            self.p.stdin.close()
        except BrokenPipeError:
            pass
        try:
            self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
            raise
        finally:
            self.p.stdout.close()
            self.p.stderr.close()


@needs_openssl
def test_openssl_s_client_authenticated_delivery(tserver):
    srv = tserver()
    sc = SClient(srv.port)
    try:
        sc.cmd(f"MAIL FROM:<{SENDER}>", 503, "5.5.1")      # EHLO forgotten
        lines = sc.cmd("EHLO sclient.test", 250)
        assert not any("STARTTLS" in ln for ln in lines), lines
        assert any(ln[4:] == "AUTH PLAIN LOGIN" for ln in lines), lines
        sc.cmd("STARTTLS", 503, "5.5.1")
        sc.cmd("AUTH LOGIN", 334)
        sc.cmd(b64("alice"), 334)
        sc.cmd(b64(USERS["alice"]), 235, "2.7.0")
        sc.cmd(f"MAIL FROM:<{SENDER}>", 250, "2.1.0")
        sc.cmd("RCPT TO:<alice@example.org>", 250, "2.1.5")
        sc.cmd("DATA", 354)
        sc.cmd("Subject: s_client\r\n\r\nfrom openssl\r\n.", 250, "2.0.0")
        sc.cmd("QUIT", 221, "2.0.0")
    finally:
        sc.finish()
    proto, body = received_proto(srv)
    assert proto == "ESMTPSA"
    assert b"from openssl" in body
    assert "sclient.test" in only_file(srv, "alice@example.org").read_text()


@needs_openssl
def test_openssl_s_client_auth_failures(tserver):
    srv = tserver(max_auth_failures="1")
    sc = SClient(srv.port)
    try:
        sc.cmd("EHLO sclient.test", 250)
        sc.cmd("AUTH PLAIN " + b64("\0alice\0nope"), 535, "5.7.8")
        sc.cmd("AUTH CRAM-MD5", 504, "5.5.4")
        sc.cmd("AUTH PLAIN", 334)
        lines = sc.cmd(b64("\0carol\0nope"), 535, "5.7.8")
        lines = sc.reply()
        assert lines[0].startswith("421 4.7.0"), lines
    finally:
        sc.finish()


# ---------------------------------------------------------------- AUTH replies

def test_auth_plain_with_challenge(tserver):
    srv = tserver()
    with tls_session(srv) as c:
        r = c.expect(334, None, "AUTH PLAIN")
        assert r.lines == ["334 "], r.lines
        c.expect(235, "2.7.0", b64("\0alice\0" + USERS["alice"]))
        c.expect(250, "2.1.0", f"MAIL FROM:<{SENDER}>")


def test_auth_plain_authzid_equal_to_authcid(tserver):
    srv = tserver()
    with tls_session(srv) as c:
        c.expect(235, "2.7.0", "AUTH PLAIN " + b64("carol\0carol\0" + USERS["carol"]))


def test_auth_mechanism_case_insensitive(tserver):
    srv = tserver()
    with tls_session(srv) as c:
        c.expect(235, "2.7.0", "auth plain " + b64("\0alice\0" + USERS["alice"]))


def test_auth_login(tserver):
    srv = tserver()
    with tls_session(srv) as c:
        r = c.expect(334, None, "AUTH LOGIN")
        assert r.lines == ["334 VXNlcm5hbWU6"], r.lines
        r = c.expect(334, None, b64("carol"))
        assert r.lines == ["334 UGFzc3dvcmQ6"], r.lines
        c.expect(235, "2.7.0", b64(USERS["carol"]))


def test_auth_login_initial_user(tserver):
    srv = tserver()
    with tls_session(srv) as c:
        r = c.expect(334, None, "AUTH LOGIN " + b64("alice"))
        assert r.lines == ["334 UGFzc3dvcmQ6"], r.lines
        c.expect(235, "2.7.0", b64(USERS["alice"]))


@pytest.mark.parametrize("lines", [
    ["AUTH PLAIN " + b64("\0alice\0wrong")],
    ["AUTH PLAIN " + b64("\0nosuchuser\0" + USERS["alice"])],
    ["AUTH PLAIN " + b64("\0alice\0" + USERS["carol"])],          # another user's password
    ["AUTH PLAIN " + b64("\0alice\0" + USERS["alice"] + "x")],
    ["AUTH PLAIN " + b64("\0alice\0" + USERS["alice"][:-1])],
    ["AUTH PLAIN", b64("\0alice\0bad")],
    ["AUTH LOGIN", b64("alice"), b64("bad")],
    ["AUTH LOGIN " + b64("ghost"), b64(USERS["alice"])],
], ids=["wrong-pw", "unknown-user", "other-pw", "pw-plus", "pw-minus",
        "plain-challenge", "login", "login-unknown"])
def test_auth_bad_credentials_535(tserver, lines):
    srv = tserver()
    with tls_session(srv) as c:
        for ln in lines[:-1]:
            c.expect(334, None, ln)
        c.expect(535, "5.7.8", lines[-1])
        # Not authenticated: a second AUTH is allowed and works.
        c.auth_plain()


def test_auth_needs_tls_538(tserver):
    srv = tserver()
    with srv.client() as c:
        c.greet()
        c.expect(538, "5.7.11", "AUTH PLAIN " + b64("\0alice\0" + USERS["alice"]))
        c.expect(538, "5.7.11", "AUTH LOGIN")
        c.expect(250, "2.1.0", f"MAIL FROM:<{SENDER}>")


def test_auth_unknown_mechanism_504(tserver):
    srv = tserver()
    with tls_session(srv) as c:
        c.expect(504, "5.5.4", "AUTH CRAM-MD5")
        c.expect(504, "5.5.4", "AUTH XOAUTH2 " + b64("user=alice"))
        c.expect(504, "5.5.4", "AUTH PLAINX " + b64("\0alice\0" + USERS["alice"]))
        c.auth_plain()


def test_auth_twice_503(tserver):
    srv = tserver()
    with tls_session(srv) as c:
        c.auth_plain()
        c.expect(503, "5.5.1", "AUTH PLAIN " + b64("\0carol\0" + USERS["carol"]))
        c.expect(503, "5.5.1", "AUTH LOGIN")
        deliver(c)


def test_auth_in_transaction_503(tserver):
    srv = tserver()
    with tls_session(srv) as c:
        c.expect(250, "2.1.0", f"MAIL FROM:<{SENDER}>")
        c.expect(503, "5.5.1", "AUTH PLAIN " + b64("\0alice\0" + USERS["alice"]))
        c.expect(250, "2.0.0", "RSET")
        c.auth_plain()


def test_auth_before_ehlo_503(tserver):
    srv = tserver(auth_requires_tls="no")
    with srv.client() as c:
        c.expect(220)
        c.expect(503, "5.5.1", "AUTH PLAIN " + b64("\0alice\0" + USERS["alice"]))
        c.expect(250, None, "EHLO client.test")
        c.auth_plain()


def test_auth_before_ehlo_in_tls_503(tserver):
    srv = tserver()
    with srv.client() as c:
        c.greet()
        c.starttls()
        c.expect(503, "5.5.1", "AUTH PLAIN " + b64("\0alice\0" + USERS["alice"]))


@pytest.mark.parametrize("lines", [
    ["AUTH PLAIN not*base64"],
    ["AUTH PLAIN AGFsaWNl"[:-1]],                       # bad length
    ["AUTH PLAIN " + b64("\0alice\0pw")[:-1] + "!"],
    ["AUTH PLAIN", "%%%%"],
    ["AUTH LOGIN", "@@@@"],
    ["AUTH LOGIN", b64("alice"), "a=b="],
    ["AUTH LOGIN ####"],
], ids=["plain-initial", "plain-len", "plain-char", "plain-resp",
        "login-user", "login-pass", "login-initial"])
def test_auth_undecodable_501(tserver, lines):
    srv = tserver()
    with tls_session(srv) as c:
        for ln in lines[:-1]:
            c.expect(334, None, ln)
        c.expect(501, "5.5.2", lines[-1])
        # The exchange is over: the next line is a command again.
        c.expect(250, "2.0.0", "NOOP")
        c.auth_plain()


@pytest.mark.parametrize("lines", [
    ["AUTH PLAIN", "*"],
    ["AUTH LOGIN", "*"],
    ["AUTH LOGIN", b64("alice"), "*"],
    ["AUTH LOGIN " + b64("alice"), "*"],
], ids=["plain", "login-user", "login-pass", "login-initial"])
def test_auth_cancel_501(tserver, lines):
    srv = tserver()
    with tls_session(srv) as c:
        for ln in lines[:-1]:
            c.expect(334, None, ln)
        c.expect(501, "5.7.0", lines[-1])
        c.expect(250, "2.0.0", "NOOP")
        c.auth_plain()


def test_auth_without_auth_section_502(tserver):
    srv = tserver(with_auth=False)
    with tls_session(srv) as c:
        c.expect(502, "5.5.1", "AUTH PLAIN " + b64("\0alice\0" + USERS["alice"]))
        c.expect(502, "5.5.1", "AUTH LOGIN")
        c.expect(250, "2.0.0", "NOOP")


# ---------------------------------------------------------------- AUTH line length

def test_auth_line_of_1024_octets_processed(tserver):
    srv = tserver()
    with tls_session(srv) as c:
        payload = b"\0alice\0" + b"p" * 749
        blob = b64(payload)
        assert len(blob) == 1008
        line = "AUTH PLAIN    " + blob
        assert len(line) + 2 == 1024
        r = c.cmd(line)
        assert r.code in (535, 501), r
        # One reply only; the session goes on.
        c.expect(250, "2.0.0", "NOOP")
        c.auth_plain()


def test_auth_line_of_1024_octets_single_space(tserver):
    srv = tserver()
    with tls_session(srv) as c:
        line = "AUTH PLAIN " + "Q" * 1011
        assert len(line) + 2 == 1024
        r = c.cmd(line)
        assert r.code in (535, 501), r
        c.expect(250, "2.0.0", "NOOP")


def test_auth_response_of_1024_octets_processed(tserver):
    srv = tserver()
    with tls_session(srv) as c:
        c.expect(334, None, "AUTH LOGIN")
        c.expect(334, None, b64("alice"))
        resp = b64(b"q" * 765)          # 1020 octets
        line = resp + "  "
        assert len(line) + 2 == 1024
        r = c.cmd(line)
        assert r.code in (535, 501), r
        c.expect(250, "2.0.0", "NOOP")


def test_auth_line_of_1100_octets_500(tserver):
    srv = tserver()
    with tls_session(srv) as c:
        line = "AUTH PLAIN " + "A" * 1087
        assert len(line) + 2 == 1100
        c.expect(500, "5.5.6", line)
        c.expect(250, "2.0.0", "NOOP")
        c.auth_plain()
        deliver(c)
    assert received_proto(srv)[0] == "ESMTPSA"


def test_auth_response_of_1100_octets_500(tserver):
    srv = tserver()
    with tls_session(srv) as c:
        c.expect(334, None, "AUTH LOGIN")
        c.expect(334, None, b64("alice"))
        c.expect(500, "5.5.6", "B" * 1098)
        # The exchange was abandoned; the next line is a command.
        c.expect(250, "2.0.0", "NOOP")
        c.expect(334, None, "AUTH PLAIN")
        c.expect(500, "5.5.6", "C" * 5000)
        c.expect(250, "2.0.0", "NOOP")
        c.auth_plain()


def test_long_non_auth_line_is_ordinary_500(tserver):
    """The 1024-octet allowance is for AUTH lines only."""
    srv = tserver()
    with tls_session(srv) as c:
        c.expect(500, "5.5.2", "NOOP " + "x" * 1017)
        c.expect(250, "2.0.0", "NOOP")


def test_auth_long_line_split_across_writes(tserver):
    srv = tserver()
    with tls_session(srv) as c:
        line = ("AUTH PLAIN " + "A" * 1200 + "\r\n").encode()
        for i in range(0, len(line), 97):
            c.send(line[i:i + 97])
            time.sleep(0.005)
        r = c.reply()
        assert (r.code, r.enh) == (500, "5.5.6"), r
        c.expect(250, "2.0.0", "NOOP")


# ---------------------------------------------------------------- failures and the tarpit

def test_max_auth_failures_default_3(tserver):
    srv = tserver()
    with tls_session(srv) as c:
        for i in range(3):
            c.expect(535, "5.7.8", "AUTH PLAIN " + b64(f"\0alice\0wrong{i}"))
        c.expect(535, "5.7.8", "AUTH PLAIN " + b64("\0alice\0wrong3"))
        r = c.reply()
        assert (r.code, r.enh) == (421, "4.7.0"), r
        assert c.closed()


def test_max_auth_failures_counts_login_and_plain(tserver):
    srv = tserver(max_auth_failures="2")
    with tls_session(srv) as c:
        c.expect(535, "5.7.8", "AUTH PLAIN " + b64("\0alice\0x"))
        c.expect(334, None, "AUTH LOGIN")
        c.expect(334, None, b64("alice"))
        c.expect(535, "5.7.8", b64("y"))
        c.expect(334, None, "AUTH LOGIN " + b64("carol"))
        c.expect(535, "5.7.8", b64("z"))
        r = c.reply()
        assert (r.code, r.enh) == (421, "4.7.0"), r
        assert c.closed()


def test_auth_success_after_failures_below_limit(tserver):
    srv = tserver()
    with tls_session(srv) as c:
        for i in range(3):
            c.expect(535, "5.7.8", "AUTH PLAIN " + b64(f"\0alice\0wrong{i}"))
        c.auth_plain()
        deliver(c)


def test_auth_failures_not_reset_by_starttls(tserver):
    """SPEC is silent on whether failures in the clear still count after
    STARTTLS; what must hold is that the limit closes the session at the
    latest after max_auth_failures + 1 failures in TLS."""
    srv = tserver(auth_requires_tls="no", max_auth_failures="1")
    with srv.client() as c:
        c.greet()
        c.expect(535, "5.7.8", "AUTH PLAIN " + b64("\0alice\0x"))
        c.starttls()
        c.expect(250, None, "EHLO client.test")
        c.expect(535, "5.7.8", "AUTH PLAIN " + b64("\0alice\0y"))
        try:
            r = c.reply(timeout=1.0)
            assert (r.code, r.enh) == (421, "4.7.0"), r
            return
        except TimeoutError:
            pass
        c.expect(535, "5.7.8", "AUTH PLAIN " + b64("\0alice\0z"))
        r = c.reply()
        assert (r.code, r.enh) == (421, "4.7.0"), r


def test_535_is_tarpitted(tserver):
    srv = tserver(tarpit_interval=TP)
    with tls_session(srv) as c:
        r = c.expect(535, "5.7.8", "AUTH PLAIN " + b64("\0alice\0wrong"))
        assert DELAYED <= delay(c, r) < T + 1.5, delay(c, r)
        c.expect(334, None, "AUTH LOGIN")
        c.expect(334, None, b64("alice"))
        r = c.expect(535, "5.7.8", b64("wrong"))
        assert DELAYED <= delay(c, r) < T + 1.5, delay(c, r)
        # The 334 challenges and the 235 are not delayed.
        r = c.expect(334, None, "AUTH PLAIN")
        assert delay(c, r) < IMMEDIATE
        r = c.expect(235, "2.7.0", b64("\0alice\0" + USERS["alice"]))
        assert delay(c, r) < IMMEDIATE, delay(c, r)


def test_other_auth_5xx_tarpitted_unauthenticated(tserver):
    srv = tserver(tarpit_interval=TP)
    with srv.client() as c:
        c.greet()
        r = c.expect(538, "5.7.11", "AUTH LOGIN")
        assert delay(c, r) >= DELAYED, delay(c, r)
        c.starttls()
        r = c.expect(250, None, "EHLO client.test")
        assert delay(c, r) < IMMEDIATE
        r = c.expect(504, "5.5.4", "AUTH CRAM-MD5")
        assert delay(c, r) >= DELAYED, delay(c, r)


def test_max_auth_failures_421_tarpitted(tserver):
    srv = tserver(tarpit_interval=TP, max_auth_failures="1")
    with tls_session(srv) as c:
        r = c.expect(535, "5.7.8", "AUTH PLAIN " + b64("\0alice\0a"))
        assert delay(c, r) >= DELAYED
        r1 = c.expect(535, "5.7.8", "AUTH PLAIN " + b64("\0alice\0b"))
        assert delay(c, r1) >= DELAYED
        r2 = c.reply(timeout=T + 5)
        assert (r2.code, r2.enh) == (421, "4.7.0"), r2
        assert r2.t - r1.t >= DELAYED, r2.t - r1.t
        assert c.closed()


def test_authenticated_session_never_delayed(tserver):
    srv = tserver(tarpit_interval=TP, tarpit_all_after_unknown="yes")
    # Unauthenticated in TLS: the unknown RCPT waits T.
    with tls_session(srv) as c:
        c.expect(250, "2.1.0", f"MAIL FROM:<{SENDER}>")
        r = c.expect(550, "5.1.1", "RCPT TO:<nobody@example.org>")
        assert DELAYED <= delay(c, r) < T + 1.5, delay(c, r)
    # Authenticated: every reply at once, 5xx included.
    with tls_session(srv) as c:
        c.auth_plain()
        c.expect(250, "2.1.0", f"MAIL FROM:<{SENDER}>")
        for line, code, enh in [("RCPT TO:<nobody@example.org>", 550, "5.1.1"),
                                ("RCPT TO:<alice@example.org>", 250, "2.1.5"),
                                ("RCPT TO:<x@foreign.test>", 550, "5.7.1"),
                                ("RCPT TO:<nobody2@example.org>", 550, "5.1.1"),
                                ("FOO", 500, "5.5.1"),
                                ("MAIL FROM:<a@b.test>", 503, "5.5.1"),
                                ("AUTH LOGIN", 503, "5.5.1"),
                                ("STARTTLS", 503, "5.5.1")]:
            r = c.expect(code, enh, line)
            assert delay(c, r) < IMMEDIATE, (line, delay(c, r))
        c.expect(354, None, "DATA")
        r = c.expect(250, "2.0.0", "Subject: x\r\n\r\nbody\r\n.")
        assert delay(c, r) < IMMEDIATE
    assert received_proto(srv)[0] == "ESMTPSA"


def test_authenticated_in_clear_never_delayed(tserver):
    srv = tserver(tarpit_interval=TP, auth_requires_tls="no")
    with srv.client() as c:
        c.greet()
        c.auth_plain()
        c.expect(250, "2.1.0", f"MAIL FROM:<{SENDER}>")
        r = c.expect(550, "5.1.1", "RCPT TO:<nobody@example.org>")
        assert delay(c, r) < IMMEDIATE, delay(c, r)


def test_pipelined_5xx_after_auth_not_delayed(tserver):
    srv = tserver(tarpit_interval=TP)
    with tls_session(srv) as c:
        c.auth_plain()
        c.send(f"MAIL FROM:<{SENDER}>\r\nRCPT TO:<n1@example.org>\r\nRCPT TO:<n2@example.org>\r\n"
               "RCPT TO:<alice@example.org>\r\n")
        t0 = c.t_sent
        codes = [c.reply().code for _ in range(4)]
        assert codes == [250, 550, 550, 250], codes
        assert time.monotonic() - t0 < IMMEDIATE


# ---------------------------------------------------------------- logs

def test_no_secrets_in_logs(tserver):
    srv = tserver(auth_requires_tls="no")
    secrets = []
    with tls_session(srv) as c:
        blob = b64("\0alice\0" + USERS["alice"])
        secrets.append(blob)
        c.expect(235, "2.7.0", "AUTH PLAIN " + blob)
    with tls_session(srv) as c:
        c.expect(334, None, "AUTH LOGIN")
        secrets.append(b64("carol"))
        c.expect(334, None, b64("carol"))
        secrets.append(b64(USERS["carol"]))
        c.expect(235, "2.7.0", b64(USERS["carol"]))
    wrong = "Wr0ng-Passw0rd-Marker"
    with srv.client() as c:
        c.greet()
        blob = b64("\0alice\0" + wrong)
        secrets.append(blob)
        c.expect(535, "5.7.8", "AUTH PLAIN " + blob)
        c.expect(334, None, "AUTH LOGIN")
        c.expect(334, None, b64("alice"))
        secrets.append(b64(wrong + "2"))
        c.expect(535, "5.7.8", b64(wrong + "2"))
        secrets.append("QUJDRA==")
        c.expect(334, None, "AUTH PLAIN")
        c.expect(501, "5.5.2", "QUJDRA=")            # undecodable response
        c.expect(500, "5.5.6", "AUTH PLAIN " + "Zm9v" * 300)
    # Let the server log the disconnects.
    time.sleep(0.3)
    srv.stop()
    log = srv.log_text()
    assert "event=" in log, log
    for s in [USERS["alice"], USERS["carol"], wrong, "Zm9vZm9v"] + secrets:
        assert s not in log, f"{s!r} found in the log:\n{log}"
    # Not even bits of the password.
    for s in ["s3cret", "hunter2", "Wr0ng"]:
        assert s not in log, f"{s!r} found in the log:\n{log}"


def test_tls_session_logged(tserver):
    srv = tserver()
    with tls_session(srv) as c:
        c.auth_plain()
    time.sleep(0.3)
    srv.stop()
    log = srv.log_text()
    assert "event=tls" in log, log
    assert not [ln for ln in log.splitlines() if SANITIZER_MARK.search(ln)]


# ---------------------------------------------------------------- TLS data path

def test_sequential_sessions_reuse_the_pool(tserver):
    """One context, reset and reused by ten sessions in a row."""
    srv = tserver(max_sessions=1)
    for i in range(10):
        s = smtplib.SMTP("127.0.0.1", srv.port, local_hostname="seq.test", timeout=10)
        try:
            s.starttls(context=client_ctx())
            if i % 2:
                s.login("alice", USERS["alice"])
            s.sendmail(SENDER, ["alice@example.org"], f"Subject: {i}\r\n\r\nmessage {i}\r\n".encode())
            s.quit()
        finally:
            s.close()
    files = srv.new_files("alice@example.org")
    assert len(files) == 10
    protos = sorted(received_proto_of(f)[0] for f in files)
    assert protos == ["ESMTPS"] * 5 + ["ESMTPSA"] * 5, protos


def received_proto_of(path):
    _, recv, body = parse_stored(path.read_bytes())
    return re.search(r" with (\S+) id ", recv).group(1), body


def test_interleaved_tls_sessions(tserver):
    srv = tserver(max_sessions=2)
    a = tls_session(srv, "a.test")
    b = tls_session(srv, "b.test")
    with a, b:
        b.auth_plain("carol")
        a.expect(250, "2.1.0", "MAIL FROM:<a@origin.test>")
        b.expect(250, "2.1.0", "MAIL FROM:<b@origin.test>")
        a.expect(250, "2.1.5", "RCPT TO:<alice@example.org>")
        b.expect(250, "2.1.5", "RCPT TO:<bob@example.org>")
        a.expect(354, None, "DATA")
        b.expect(354, None, "DATA")
        a.send("Subject: a\r\n\r\nfrom a\r\n")
        b.send("Subject: b\r\n\r\nfrom b\r\n")
        a.expect(250, "2.0.0", ".")
        b.expect(250, "2.0.0", ".")
    pa, body_a = received_proto(srv, "alice@example.org")
    pb, body_b = received_proto(srv, "robert")
    assert (pa, pb) == ("ESMTPS", "ESMTPSA")
    assert b"from a" in body_a and b"from b" not in body_a
    assert b"from b" in body_b and b"from a" not in body_b


def test_large_message_over_tls(tserver):
    srv = tserver(max_message_size="4MB")
    rnd = random.Random(7)
    lines = []
    for i in range(12000):
        ln = "".join(rnd.choice("abcdefghij .:-") for _ in range(rnd.randrange(0, 78)))
        if i % 97 == 0:
            ln = "." + ln                      # dot-stuffed by smtplib
        lines.append(ln)
    body = "\r\n".join(lines) + "\r\n"
    msg = ("Subject: big\r\n\r\n" + body).encode()
    assert len(msg) > 400_000
    s = smtplib.SMTP("127.0.0.1", srv.port, local_hostname="big.test", timeout=20)
    try:
        s.starttls(context=client_ctx())
        s.sendmail(SENDER, ["alice@example.org"], msg)
        s.quit()
    finally:
        s.close()
    proto, stored = received_proto(srv)
    assert proto == "ESMTPS"
    assert stored == msg.replace(b"\r\n", b"\n")


def test_end_of_data_one_octet_per_record(tserver):
    srv = tserver()
    with tls_session(srv) as c:
        c.expect(250, "2.1.0", f"MAIL FROM:<{SENDER}>")
        c.expect(250, "2.1.5", "RCPT TO:<alice@example.org>")
        c.expect(354, None, "DATA")
        for ch in b"Subject: x\r\n\r\none\r\n..two\r\n.\r\n":
            c.send(bytes([ch]))          # one TLS record each
        r = c.reply()
        assert (r.code, r.enh) == (250, "2.0.0"), r
        c.expect(250, "2.0.0", "NOOP")
    _, body = received_proto(srv)
    assert body == b"Subject: x\n\none\n.two\n"


def test_pipelined_batch_in_tls(tserver):
    srv = tserver()
    with tls_session(srv) as c:
        c.send(f"MAIL FROM:<{SENDER}>\r\nRCPT TO:<alice@example.org>\r\n"
               "RCPT TO:<nobody@example.org>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n")
        got = [(r.code, r.enh) for r in (c.reply() for _ in range(5))]
        assert got == [(250, "2.1.0"), (250, "2.1.5"), (550, "5.1.1"), (250, "2.1.5"),
                       (354, None)], got
        c.expect(250, "2.0.0", "Subject: p\r\n\r\npipelined\r\n.")
    assert len(srv.all_new_files()) == 2


def test_data_before_354_in_tls(tserver):
    srv = tserver()
    with tls_session(srv) as c:
        c.expect(250, "2.1.0", f"MAIL FROM:<{SENDER}>")
        c.expect(250, "2.1.5", "RCPT TO:<alice@example.org>")
        c.send("DATA\r\nSubject: early\r\n\r\nbody\r\n.\r\n")
        r = c.reply()
        assert (r.code, r.enh) == (554, "5.5.0"), r
        assert c.closed()
    assert srv.all_new_files() == []


def test_inactivity_timeout_in_tls_frees_slot(tserver):
    srv = tserver(max_sessions=1, connection_inactivity_timeout="00:00:02")
    with tls_session(srv) as c:
        t0 = time.monotonic()
        r = c.reply(timeout=6)
        assert (r.code, r.enh) == (421, "4.4.2"), r
        assert time.monotonic() - t0 >= 1.5
        assert c.closed()
    starttls_works(srv)


def test_sigterm_answers_tls_session(tserver):
    srv = tserver()
    c = tls_session(srv)
    c.expect(250, "2.0.0", "NOOP")
    srv.proc.send_signal(signal.SIGTERM)
    r = c.reply(timeout=5)
    assert (r.code, r.enh) == (421, "4.3.2"), r
    assert c.closed()
    c.close()
    assert srv.proc.wait(timeout=5) == 0


# ---------------------------------------------------------------- users file, config, stats

def tarpitd(srv, *args, stdin=None):
    return subprocess.run([str(BIN), "-c", str(srv.ini), *args], input=stdin,
                          capture_output=True, text=True, timeout=60)


def test_passwd_and_reload_users(tserver, tmp_path, pki):
    users = tmp_path / "users.local"
    shutil.copy2(pki["users"], users)
    srv = tserver(users=users)
    with tls_session(srv) as c:
        c.expect(535, "5.7.8", "AUTH PLAIN " + b64("\0dave\0dave's pw"))
    p = tarpitd(srv, "passwd", "dave", stdin="dave's pw\n")
    assert p.returncode == 0, p.stderr
    assert stat.S_IMODE(users.stat().st_mode) == 0o600
    assert "dave's pw" not in users.read_text()
    srv.proc.send_signal(signal.SIGHUP)
    end = time.monotonic() + 5
    while True:
        with tls_session(srv) as c:
            r = c.cmd("AUTH PLAIN " + b64("\0dave\0dave's pw"))
            if r.code == 235:
                break
            assert r.code == 535, r
        assert time.monotonic() < end, "dave cannot log in after SIGHUP:\n" + srv.stderr()
        time.sleep(0.2)
    # The others are still there.
    with tls_session(srv) as c:
        c.auth_plain("carol")
    # Replacing a password: the old one stops working after the reload.
    p = tarpitd(srv, "passwd", "dave", stdin="new pw\n")
    assert p.returncode == 0, p.stderr
    srv.proc.send_signal(signal.SIGHUP)
    end = time.monotonic() + 5
    while True:
        with tls_session(srv) as c:
            r = c.cmd("AUTH PLAIN " + b64("\0dave\0new pw"))
            if r.code == 235:
                break
        assert time.monotonic() < end, "new password refused after SIGHUP"
        time.sleep(0.2)
    with tls_session(srv) as c:
        c.expect(535, "5.7.8", "AUTH PLAIN " + b64("\0dave\0dave's pw"))


def test_users_file_readable_by_others_refused(tserver, tmp_path, pki):
    users = tmp_path / "users.open"
    shutil.copy2(pki["users"], users)
    users.chmod(0o644)
    srv = tserver(users=users, start=False)
    p = tarpitd(srv, "check")
    assert p.returncode == 1, (p.stdout, p.stderr)
    assert "users.open" in p.stderr, p.stderr
    p = subprocess.run([str(BIN), "-c", str(srv.ini), "run"], capture_output=True, text=True,
                       timeout=10)
    assert p.returncode == 1, (p.stdout, p.stderr)


def test_key_not_matching_certificate_refused(tserver, tmp_path):
    p = subprocess.run([OPENSSL, "ecparam", "-name", "prime256v1", "-genkey", "-noout",
                        "-out", str(tmp_path / "other.pem")], capture_output=True, timeout=30)
    assert p.returncode == 0, p.stderr
    srv = tserver(key=tmp_path / "other.pem", start=False)
    p = tarpitd(srv, "check")
    assert p.returncode == 1, (p.stdout, p.stderr)
    assert p.stderr.strip(), "no error message"


def test_require_tls_without_tls_section_refused(tserver):
    srv = tserver(with_tls=False, require_tls="yes", start=False)
    p = tarpitd(srv, "check")
    assert p.returncode == 1, (p.stdout, p.stderr)
    assert re.search(r"tarpitd\.ini:\d+:", p.stderr), p.stderr


def test_stats_tls_and_auth_counters(tserver):
    srv = tserver(server_overrides={"control": "control.sock"})
    with tls_session(srv) as c:
        c.expect(535, "5.7.8", "AUTH PLAIN " + b64("\0alice\0x"))
        c.expect(535, "5.7.8", "AUTH PLAIN " + b64("\0alice\0y"))
        c.auth_plain()
    with tls_session(srv) as c:
        c.expect(250, "2.0.0", "NOOP")
    with srv.client() as c:
        c.greet()
        c.expect(221, "2.0.0", "QUIT")
    end = time.monotonic() + 5
    while True:
        p = tarpitd(srv, "stats")
        assert p.returncode == 0, p.stderr
        rows = [dict(re.findall(r'(\w+)=("[^"]*"|\S+)', ln)) for ln in p.stdout.splitlines()]
        server_row = [r for r in rows if r.get("scope") == "server"][0]
        if server_row.get("connections_current") == "0" or time.monotonic() > end:
            break
        time.sleep(0.1)
    conn_row = [r for r in rows if r.get("scope") == "connector"][0]
    for row in (server_row, conn_row):
        assert row["tls_sessions"] == "2", row
        assert row["auth_success"] == "1", row
        assert row["auth_failure"] == "2", row
