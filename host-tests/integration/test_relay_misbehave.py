"""A next hop that misbehaves is bad input like any other (issue 15,
SPEC §10): whatever it does, the recipient is deferred with a clear
reason in the log and in `tarpitd queue`, the queue entry stays intact,
the daemon neither crashes nor hangs, and with `starttls = required`
nothing but EHLO and STARTTLS is ever written in the clear.

The real build/host/tarpitd forwards to a next hop that is, where it can
be, Postfix's smtp-sink (stalls before a reply with -W/-w, disconnects
with -q), and otherwise FakeHop below: a listener we script per
connection, since no real server half-answers, dribbles or sends garbage
on demand. FakeHop can also stand in front of smtp-sink as a proxy that
injects one fault (one octet per write, a cut mid-DATA) into a session
with the real thing, so "then delivered" is checked at smtp-sink.
test_relay.py already covers soft and hard rejects, a wrong certificate
name, STARTTLS not offered, a failed AUTH and the connect deadline.

The reply deadlines are RFC 5321's (src/limits.h: greeting and commands
5 min, DATA's 354 2 min, the end of data 10 min): those tests run the
daemon under libfaketime with its clock RATE times as fast (monotonic
clock and epoll/poll timeouts alike), so 5 min take 5 s. They are skipped
where libfaketime is missing or cannot reach the daemon (a wrapper
script as TARPITD_BIN: the firmware under qemu-user, valgrind; a static
binary).
"""
import glob
import os
import re
import select
import socket
import struct
import threading
import time

import pytest

from conftest import BIN, free_port, needs_tls
from peers import wait_until
from test_relay import (body_with_dots, env_shows, gateway, log, queue_files, queue_shows, relay_ini,  # noqa: F401
                        send, sink_without, tcp, wait_empty, wait_log)

RATE = 60  # the daemon's clock under libfaketime: 5 min are 5 s
EHLO_NAME = b"mx.test"  # conftest's [server] hostname: tarpitd's EHLO
TIMED_OUT = "timed out waiting for the reply to EHLO"  # the deadline names the wait it cut


# ------------------------------------------------------- a faster clock

def _dynamic_elf(path):
    """True for a dynamically linked ELF (it has a PT_INTERP): the only
    kind LD_PRELOAD reaches."""
    try:
        with open(path, "rb") as f:
            h = f.read(64)
            if len(h) < 64 or h[:4] != b"\x7fELF":
                return False
            e = "<" if h[5] == 1 else ">"
            if h[4] == 2:
                (phoff,) = struct.unpack_from(e + "Q", h, 32)
                phentsize, phnum = struct.unpack_from(e + "HH", h, 54)
            else:
                (phoff,) = struct.unpack_from(e + "I", h, 28)
                phentsize, phnum = struct.unpack_from(e + "HH", h, 42)
            f.seek(phoff)
            for _ in range(phnum):
                if struct.unpack_from(e + "I", f.read(phentsize))[0] == 3:  # PT_INTERP
                    return True
    except OSError:
        pass
    return False


def _libfaketime():
    for p in sorted(glob.glob("/usr/lib/*/faketime/libfaketime.so.1")) + ["/usr/lib/faketime/libfaketime.so.1"]:
        if os.path.exists(p):
            return p
    return None


def _asan_build(path):
    """True for a binary with AddressSanitizer's runtime linked in (make
    test SAN=1): its allocator reads the monotonic clock while it holds
    its lock, and libfaketime's first clock call looks its real one up
    with dlsym, which allocates: the daemon can hang at start (seen with
    clang 14's runtime, for some binaries and not others)."""
    try:
        with open(path, "rb") as f:
            return b"__asan_init" in f.read()
    except OSError:
        return False


def fast_clock_env():
    """The environment that runs the daemon's clock RATE times as fast,
    or pytest.skip with the reason it cannot."""
    lib = _libfaketime()
    if not lib:
        pytest.skip("libfaketime not installed (Debian package faketime)")
    if not _dynamic_elf(BIN):
        pytest.skip(f"{BIN} is not a dynamically linked program (a wrapper script: the firmware under "
                    "qemu-user or valgrind; or a static build): libfaketime cannot reach the daemon")
    if _asan_build(BIN):
        pytest.skip(f"{BIN} is an AddressSanitizer build: its allocator and libfaketime can deadlock at start "
                    "(the other make test variants run these tests)")
    preload = os.environ.get("LD_PRELOAD")
    return {"LD_PRELOAD": lib + (":" + preload if preload else ""), "FAKETIME": "+0 x%d" % RATE,
            "FAKETIME_NO_CACHE": "1"}


@pytest.fixture
def fast_clock():
    """The fast clock's environment; the test is skipped before it starts
    anything when there is none."""
    return fast_clock_env()


def fast_gateway(server, relays, env):
    srv = gateway(server, relays, start=False)
    srv.env = env
    return srv.start()


def within(elapsed, minutes, what):
    """ELAPSED real seconds are the daemon's MINUTES deadline at RATE:
    never early, and late by no more than the machine's noise (tight
    enough to tell 2, 5 and 10 minutes apart)."""
    expect = minutes * 60 / RATE
    assert 0.8 * expect <= elapsed <= 1.25 * expect + 2, \
        "%s after %.1f s: the %d-minute deadline is %.1f s at x%d" % (what, elapsed, minutes, expect, RATE)


# ------------------------------------------------------------- FakeHop

class Gone(Exception):
    """tarpitd closed the connection."""


class HopConn:
    """One connection from tarpitd to a FakeHop: everything tarpitd sent is
    kept in rx; eof_at says when it closed."""

    def __init__(self, hop, sock, n):
        self.hop, self.sock, self.n = hop, sock, n
        self.rx = b""
        self.pos = 0          # what the script has read of rx
        self.eof_at = None    # time.monotonic() of tarpitd's close
        self.fault_at = None  # len(rx) when the fault was injected
        self.chunks = []      # rx as the reads got it (proxy_to)
        self.over = threading.Event()  # the script ended, the socket is closed

    def _fill(self, deadline):
        while True:
            if self.eof_at is not None:
                raise Gone()
            remain = deadline - time.monotonic()
            if remain <= 0:
                raise TimeoutError("tarpitd sent nothing in time; got %r" % self.rx[-300:])
            r, _, _ = select.select([self.sock], [], [], min(remain, 0.1))
            if self.hop.stopping.is_set():
                raise Gone()
            if not r:
                continue
            try:
                data = self.sock.recv(65536)
            except OSError:
                data = b""
            if not data:
                self.eof_at = time.monotonic()
                raise Gone()
            self.rx += data
            return

    def line(self, timeout=10):
        deadline = time.monotonic() + timeout
        while True:
            i = self.rx.find(b"\n", self.pos)
            if i >= 0:
                ln, self.pos = self.rx[self.pos:i + 1], i + 1
                return ln.rstrip(b"\r\n")
            self._fill(deadline)

    def until(self, marker, timeout=30):
        deadline = time.monotonic() + timeout
        while True:
            i = self.rx.find(marker, self.pos)
            if i >= 0:
                got, self.pos = self.rx[self.pos:i + len(marker)], i + len(marker)
                return got
            self._fill(deadline)

    def send(self, data):
        try:
            self.sock.sendall(data)
        except OSError:
            if self.eof_at is None:  # a reset: tarpitd closed with our octets unread
                self.eof_at = time.monotonic()
            raise Gone()

    def dribble(self, data, gap):
        """One octet per write (TCP_NODELAY: one segment each), GAP s apart."""
        for i in range(len(data)):
            self.send(data[i:i + 1])
            time.sleep(gap)

    def hold(self, timeout=120):
        """Stay connected, saying nothing, until tarpitd closes."""
        try:
            while True:
                self._fill(time.monotonic() + timeout)
        except Gone:
            pass

    def wait_closed(self, timeout=10):
        """tarpitd hung up (not the script)."""
        wait_until(lambda: self.eof_at is not None, timeout, "tarpitd to close connection %d" % self.n)
        return self.eof_at

    def wait_over(self, timeout=10):
        """The connection is closed, by either side."""
        assert self.over.wait(timeout), "connection %d still open" % self.n


class FakeHop:
    """A next hop on 127.0.0.1 whose every connection runs SCRIPT(conn) in
    a thread of its own; the connection is closed when the script ends."""

    def __init__(self, script):
        self.script = script
        self.conns = []
        self.errors = []
        self.messages = []  # bodies received through the end of data
        self.stopping = threading.Event()
        self.threads = []

    def start(self):
        self.lst = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.port = free_port()
        self.lst.bind(("127.0.0.1", self.port))
        self.lst.listen(16)
        t = threading.Thread(target=self._accept, daemon=True)
        t.start()
        self.threads.append(t)
        return self

    def _accept(self):
        while not self.stopping.is_set():
            r, _, _ = select.select([self.lst], [], [], 0.1)
            if not r:
                continue
            try:
                sock, _ = self.lst.accept()
            except OSError:
                continue
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            c = HopConn(self, sock, len(self.conns))
            self.conns.append(c)
            t = threading.Thread(target=self._run, args=(c,), daemon=True)
            t.start()
            self.threads.append(t)

    def _run(self, c):
        try:
            self.script(c)
        except Gone:
            pass
        except Exception as e:  # noqa: BLE001 (reported by the test)
            self.errors.append("connection %d: %r" % (c.n, e))
        finally:
            try:
                c.sock.close()
            except OSError:
                pass
            c.over.set()

    def wait_conns(self, n, timeout=15):
        wait_until(lambda: len(self.conns) >= n, timeout, "%d connection(s) at the fake next hop" % n)
        return self.conns

    def stop(self):
        self.stopping.set()
        for t in self.threads:  # the accept thread first: then no select() on a closed listener
            t.join(timeout=5)
        self.lst.close()


@pytest.fixture
def fake_hop():
    started = []

    def make(script):
        h = FakeHop(script).start()
        started.append(h)
        return h
    yield make
    for h in started:
        h.stop()
    errors = [e for h in started for e in h.errors]
    assert not errors, "the fake next hop's script failed: %s" % errors


# ------------------------------------------- a server, faults per stage

EHLO_EXT = (b"8BITMIME", b"SIZE 10240000")


def serve(c, faults=None, ext=EHLO_EXT):
    """A plain SMTP server (no PIPELINING: one reply per command, so a
    fault lands on the command it names). FAULTS: stage -> octets sent
    instead of the normal reply (then the hop waits for tarpitd to
    close), or a callable(conn) that takes the session over. Stages:
    greeting, EHLO, STARTTLS, MAIL, RCPT, DATA, body (after the 354), "."
    (the reply to the end of data)."""
    faults = faults or {}

    def answer(stage, normal):
        act = faults.get(stage)
        if act is None:
            c.send(normal)
            return True
        c.fault_at = len(c.rx)
        if callable(act):
            act(c)
        else:
            c.send(act)
            c.hold()
        return False

    if not answer("greeting", b"220 hop.test ESMTP fake\r\n"):
        return
    while True:
        ln = c.line()
        verb = re.split(rb"[ :]", ln, maxsplit=1)[0].upper()
        if verb in (b"EHLO", b"HELO"):
            lines = [b"hop.test"] + list(ext)
            normal = b"".join(b"250-%s\r\n" % x for x in lines[:-1]) + b"250 %s\r\n" % lines[-1]
            ok = answer("EHLO", normal)
        elif verb == b"STARTTLS":
            ok = answer("STARTTLS", b"454 4.7.0 TLS not available\r\n")
        elif verb == b"MAIL":
            ok = answer("MAIL", b"250 2.1.0 Ok\r\n")
        elif verb == b"RCPT":
            ok = answer("RCPT", b"250 2.1.5 Ok\r\n")
        elif verb == b"DATA":
            ok = answer("DATA", b"354 End data with <CR><LF>.<CR><LF>\r\n")
            if ok:
                if "body" in faults:
                    c.fault_at = len(c.rx)
                    faults["body"](c)
                    return
                c.hop.messages.append(c.until(b"\r\n.\r\n"))
                ok = answer(".", b"250 2.0.0 Ok: queued as FAKE\r\n")
        elif verb in (b"RSET", b"NOOP"):
            c.send(b"250 2.0.0 Ok\r\n")
            ok = True
        elif verb == b"QUIT":
            c.send(b"221 2.0.0 Bye\r\n")
            return
        else:
            c.send(b"502 5.5.1 unknown\r\n")
            ok = True
        if not ok:
            return


def script(**faults):
    return lambda c: serve(c, faults)


def then_stall(octets):
    """Send OCTETS (the start of a reply), then nothing."""
    def act(c):
        c.send(octets)
        c.hold()
    return act


# ------------------------------------------ a proxy in front of smtp-sink

def proxy_to(port, gap=0.0, cut_body_after=None):
    """The connection relayed to smtp-sink on PORT, with one fault: its
    replies one octet per write GAP s apart, or the connection cut (both
    sides) once CUT_BODY_AFTER octets of the message passed after the
    354."""
    def run(c):
        up = socket.create_connection(("127.0.0.1", port), timeout=10)
        up.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        body = None  # octets of the message forwarded, once the 354 came
        replies = b""
        try:
            while not c.hop.stopping.is_set():
                r, _, _ = select.select([c.sock, up], [], [], 0.1)
                if up in r:
                    d = up.recv(65536)
                    if not d:
                        return
                    if gap:
                        c.dribble(d, gap)
                    else:
                        c.send(d)
                    replies += d
                    if body is None and re.search(rb"(?m)^354 ", replies):
                        body = 0
                if c.sock in r:
                    try:
                        d = c.sock.recv(65536)
                    except OSError:
                        d = b""
                    if not d:
                        c.eof_at = time.monotonic()
                        return
                    c.rx += d
                    c.chunks.append(d)
                    if body is not None and cut_body_after is not None:
                        if body + len(d) >= cut_body_after:
                            up.sendall(d[:cut_body_after - body])
                            c.fault_at = len(c.rx)
                            return  # both closed: mid-DATA for both sides
                        body += len(d)
                    up.sendall(d)
        finally:
            up.close()
    return run


# ----------------------------------------------------------- assertions

def listed(srv, addr="bob@office.test"):
    """(attempts, reply) of ADDR in `tarpitd queue`, pending, once an
    attempt is recorded."""
    m = queue_shows(srv, r'to=<%s>  relay="Office"  state=pending  attempts=([1-9]\d*).*reply="([^"]*)"'
                    % re.escape(addr))
    return int(m.group(1)), m.group(2)


def deferred(srv, qid, reason, timeout=15, addr="bob@office.test"):
    """Waits for the deferral of ADDR whose reply matches the regex
    REASON; the reply."""
    (reply,) = wait_log(srv, r'event=relay id=%s relay="Office" to="%s" status=deferred reply="(%s)"'
                        % (qid, re.escape(addr), reason), timeout=timeout)[:1]
    return reply


def intact(srv, qid):
    """The entry is on disk as it was accepted, and the daemon serves."""
    assert queue_files(srv) == [f"{qid}.env", f"{qid}.msg"]
    assert srv.alive(), srv.stderr()
    send(srv, ["dave@local.test"], subject="local")
    assert srv.new_files("dave@local.test"), "a local delivery after the fault"


def only_clear(c, prefix):
    """Everything tarpitd wrote in the clear on C is PREFIX, then TLS
    records (a handshake begins with 0x16) or nothing."""
    assert c.rx.startswith(prefix), c.rx[:300]
    rest = c.rx[len(prefix):]
    assert rest == b"" or rest[:1] == b"\x16", "after STARTTLS, in the clear: %r" % rest[:300]
    assert b"MAIL FROM" not in c.rx and b"RCPT TO" not in c.rx and b"AUTH" not in c.rx, c.rx[:300]


# No retry while a test looks (under the fast clock an hour is a minute).
HOP = dict(starttls="no", retry_min="00:10:00", retry_max="01:00:00")
FAST_HOP = dict(starttls="no", retry_min="01:00:00", retry_max="02:00:00")


# ------------------------------------------------- stalls (fast clock)

def test_stall_mid_ehlo_reply_deferred_others_not_blocked(server, fake_hop, fast_clock):
    """The first line of a multi-line EHLO reply, then nothing: after the
    5-minute command deadline the recipient is deferred and the hop is
    marked down; meanwhile the inbound side serves a local delivery at
    once; the entry stays; tarpitd hangs up."""
    hop = fake_hop(script(EHLO=then_stall(b"250-first line\r\n")))
    srv = fast_gateway(server, relay_ini(tcp(hop.port), **FAST_HOP), fast_clock)
    t0 = time.monotonic()
    qid = send(srv, ["bob@office.test"], subject="stall")
    took = time.monotonic() - t0
    (c,) = hop.wait_conns(1)
    wait_until(lambda: c.fault_at is not None, 10, "tarpitd's EHLO")
    t_stall = time.monotonic()
    # The session waits on its deadline, not on the loop: the client's
    # QUIT above and a local delivery now are answered at once.
    t0 = time.monotonic()
    send(srv, ["dave@local.test"], subject="meanwhile")
    took = max(took, time.monotonic() - t0)
    assert took < 1.0, "the inbound side waited %.1f s for the stalled next hop" % took
    assert srv.new_files("dave@local.test")
    assert c.eof_at is None and queue_files(srv) == [f"{qid}.env", f"{qid}.msg"]
    reply = deferred(srv, qid, TIMED_OUT, timeout=60)
    within(time.monotonic() - t_stall, 5, "deferred")
    assert reply == TIMED_OUT
    wait_log(srv, r'event=relay_down id=%s relay="Office" .*error="%s"' % (qid, TIMED_OUT))
    c.wait_closed(5)
    assert c.rx == b"EHLO mx.test\r\n"  # nothing more was sent, not even QUIT
    assert listed(srv) == (1, TIMED_OUT)
    intact(srv, qid)


def test_reply_dribbled_without_end_cut_by_its_deadline(server, fake_hop, fast_clock):
    """A reply that keeps coming, one octet every 0.2 s and never a line
    end: the deadline is the reply's, not each octet's, so it ends the
    session after 5 minutes (long before the 512-octet line limit, which
    the dribble would reach after 100 s of real time)."""
    def dribble_forever(c):
        c.send(b"250-")
        while c.eof_at is None and not c.hop.stopping.is_set():
            c.send(b"x")
            try:
                c._fill(time.monotonic() + 0.2)
            except TimeoutError:
                pass
    hop = fake_hop(script(EHLO=dribble_forever))
    srv = fast_gateway(server, relay_ini(tcp(hop.port), **FAST_HOP), fast_clock)
    qid = send(srv, ["bob@office.test"], subject="dribble")
    (c,) = hop.wait_conns(1)
    wait_until(lambda: c.fault_at is not None, 10, "tarpitd's EHLO")
    t_stall = time.monotonic()
    deferred(srv, qid, TIMED_OUT, timeout=60)
    within(time.monotonic() - t_stall, 5, "deferred")
    c.wait_closed(5)
    assert listed(srv) == (1, TIMED_OUT)
    intact(srv, qid)


@pytest.mark.parametrize("flag,minutes,sent,why", [
    (["-W", "CONNECT:120"], 5, 0, "the greeting"),  # no greeting: CLIENT_GREETING_MS
    (["-p", "-w", "120"], 2, 0,                     # no 354 to DATA: CLIENT_DATA_INIT_MS (-p: no PIPELINING, or
     "the replies to MAIL, RCPT and DATA"),         # smtp-sink holds back the replies to MAIL and RCPT too)
    (["-W", ".:120"], 10, 1,                        # no reply to the end of data: CLIENT_DATA_TERM_MS
     "the reply to the end of data (the next hop may have the message: it may arrive twice)"),
], ids=["greeting", "data", "end-of-data"])
def test_smtp_sink_stalls_deferred_at_each_deadline(server, smtp_sink, fast_clock, flag, minutes, sent, why):
    """smtp-sink waits 120 s before a reply: tarpitd's deadline for that
    reply ends the session first (at x60 it is 2 to 10 s); deferred, the
    entry intact. After the end of data the hop has the message (it may
    arrive twice: SPEC §10's duplicate window); the 10-minute deadline
    is that long because a hop may take that long to accept it."""
    sink = smtp_sink(extra=flag)
    srv = fast_gateway(server, relay_ini(tcp(sink.port), **FAST_HOP), fast_clock)
    qid = send(srv, ["bob@office.test"], subject="sink-stall")
    t0 = time.monotonic()
    # The reason names the wait, so the operator knows a duplicate may come.
    reply = deferred(srv, qid, re.escape("timed out waiting for " + why), timeout=60)
    within(time.monotonic() - t0, minutes, "deferred")
    assert sink.count() == sent
    assert listed(srv) == (1, reply)
    intact(srv, qid)


# ---------------------------------------------------- split and garbage

def test_reply_one_octet_at_a_time_delivered(server, smtp_sink, fake_hop):
    """Every reply of a real session with smtp-sink arrives one octet per
    write, 4 ms apart: delivered as usual, the message whole, and the
    EHLO keywords understood (PIPELINING: the transaction in one write)."""
    sink = smtp_sink()
    hop = fake_hop(proxy_to(sink.port, gap=0.004))
    srv = gateway(server, relay_ini(tcp(hop.port), starttls="no"))
    qid = send(srv, ["bob@office.test", "carol@office.test"], subject="octets", body=body_with_dots(1, 300))
    (m,) = sink.wait_for_messages(1, timeout=30)
    wait_empty(srv, timeout=30)
    sent = wait_log(srv, r'event=relay id=%s relay="Office" to="(\w+)@office.test" status=sent reply="250 '
                    % qid, count=2)
    assert sorted(sent) == ["bob", "carol"]
    text = open(m, errors="replace").read()
    # smtp-sink's dribbled EHLO reply said PIPELINING: the transaction
    # went in one write.
    (c,) = hop.conns
    assert (b"MAIL FROM:<sender@origin.test>\r\nRCPT TO:<bob@office.test>\r\nRCPT TO:<carol@office.test>\r\n"
            b"DATA\r\n") in c.chunks, c.chunks[:6]
    assert "Subject: octets" in text and "\n.%067d" % 100294 in text.replace("\r\n", "\n")
    assert len(hop.conns) == 1


LONG = b"x" * 600
MALFORMED = [
    # id, stage, the reply, the reason logged (after "malformed reply
    # from the next hop" unless it says more)
    ("greeting-no-code", "greeting", b"hello, I am no SMTP server\r\n", "(no reply code)"),
    ("greeting-binary", "greeting", b"\x00\xff\x16\x03\x01\x02garbage\r\n", "(no reply code)"),
    ("greeting-100k-no-lf", "greeting", b"220 " + b"x" * 100000, "(line too long)"),
    ("ehlo-long-line", "EHLO", b"250-hop.test\r\n250-" + LONG + b"\r\n250 SIZE\r\n", "(line too long)"),
    ("ehlo-mixed-codes", "EHLO", b"250-a\r\n550 b\r\n", "(mixed codes in one reply)"),
    ("ehlo-71-lines", "EHLO", b"250-x\r\n" * 70 + b"250 y\r\n", "(too many lines)"),
    ("mail-mixed-codes", "MAIL", b"250-a\r\n450 b\r\n", "(mixed codes in one reply)"),
    ("mail-354", "MAIL", b"354 go ahead\r\n", "protocol failure: unexpected reply to MAIL"),
    ("rcpt-no-space", "RCPT", b"2500 Ok\r\n", "(no space after the code)"),
    ("rcpt-1xx", "RCPT", b"199 Ok\r\n", "(no reply code)"),
    ("rcpt-long-line", "RCPT", b"250 " + LONG + b"\r\n", "(line too long)"),
    ("data-binary", "DATA", b"\xff\xfe\xfd\r\n", "(no reply code)"),
    ("dot-mixed-codes", ".", b"250-queued\r\n451 but lost\r\n", "(mixed codes in one reply)"),
    ("dot-no-code", ".", b"OK\r\n", "(no reply code)"),
]


@pytest.mark.parametrize("stage,octets,why", [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED])
def test_malformed_reply_deferred(server, fake_hop, stage, octets, why):
    """A malformed, over-long, mixed-code or unexpected reply at any step:
    the recipient deferred with the parser's reason, tarpitd hangs up at
    once and sends nothing more, the entry intact, the daemon serves."""
    reason = re.escape(why if why.startswith("protocol") else "malformed reply from the next hop " + why)
    hop = fake_hop(script(**{stage: octets}))
    srv = gateway(server, relay_ini(tcp(hop.port), **HOP))
    qid = send(srv, ["bob@office.test"], subject="malformed")
    reply = deferred(srv, qid, reason)
    (c,) = hop.conns
    c.wait_closed(5)
    assert c.rx[c.fault_at:] == b"", "sent after the bad reply: %r" % c.rx[c.fault_at:][:200]
    if stage in ("greeting", "EHLO"):  # the session could not take the message
        wait_log(srv, r'event=relay_down id=%s relay="Office" .*error="%s"' % (qid, reason))
    else:
        wait_log(srv, r'event=relay_session relay="Office" code=\d+ error="%s"' % reason)
    assert listed(srv) == (1, reply)
    intact(srv, qid)
    assert len(hop.messages) == (1 if stage == "." else 0)


# ---------------------------------------------------- closes mid-session

def test_closes_mid_data_then_delivered(server, smtp_sink, fake_hop):
    """The hop reads 3000 octets of a 210 KB message and closes: deferred,
    the entry intact; the retry (retry_min 2 s) delivers it whole to the
    same smtp-sink, which never got the first, cut copy as a message."""
    sink = smtp_sink()
    hop = fake_hop(lambda c: proxy_to(sink.port, cut_body_after=3000 if c.n == 0 else None)(c))
    srv = gateway(server, relay_ini(tcp(hop.port), starttls="no", retry_min="00:00:02", retry_max="00:00:04"))
    qid = send(srv, ["bob@office.test"], subject="cut", body=body_with_dots(2))
    reason = r'(?:write to|read from) the next hop failed: [^"]+|the next hop closed the connection'
    deferred(srv, qid, reason)
    assert hop.conns[0].fault_at is not None
    env_shows(srv, qid, r"rcpt P 1 \d+ Office bob@office.test \S")
    assert queue_files(srv) == [f"{qid}.env", f"{qid}.msg"]
    assert sink.count() == 0
    sink.wait_for_messages(1, timeout=20)
    texts = [open(f, errors="replace").read().replace("\r\n", "\n") for f in sink.messages()]
    # The cut copy's dump file stays (smtp-sink keeps what came); the
    # whole one ends with the body's last lines.
    assert any("Subject: cut" in t and "\n.%067d\n" % 202996 in t and "xx%067d\n" % 202999 in t for t in texts), \
        [t[-300:] for t in texts]
    wait_empty(srv)
    wait_log(srv, r'event=relay id=%s relay="Office" to="bob@office.test" status=sent' % qid)
    assert len(hop.conns) == 2 and sink.count() == 1


def one_message_then_gone(c):
    """Connection 0 takes one message, then hangs up at the next one's
    MAIL without a reply; later connections serve normally."""
    if c.n:
        return serve(c)
    c.send(b"220 hop.test ESMTP fake\r\n")
    assert c.line().upper().startswith(b"EHLO")
    c.send(b"250-hop.test\r\n250 8BITMIME\r\n")
    for reply in (b"250 2.1.0 Ok\r\n", b"250 2.1.5 Ok\r\n", b"354 go\r\n"):
        c.line()
        c.send(reply)
    c.hop.messages.append(c.until(b"\r\n.\r\n"))
    c.send(b"250 2.0.0 Ok: queued as FAKE\r\n")
    c.line()  # the next message's MAIL (or a QUIT): gone without a word


def test_idle_session_closed_at_mail_retried_at_once(server, fake_hop):
    """The race an idle session cannot see (relay_session.c): the next
    hop closes it as the next message's MAIL arrives. Not a failure of
    the message: it is retried on a new session at once, not after
    retry_min (10 minutes here), and the hop is not marked down. FakeHop,
    since no real server hangs up at exactly that MAIL."""
    hop = fake_hop(one_message_then_gone)
    srv = gateway(server, relay_ini(tcp(hop.port), starttls="no", retry_min="00:10:00", retry_max="01:00:00"))
    send(srv, ["bob@office.test"], subject="first")
    wait_until(lambda: len(hop.messages) == 1, 10, "the first message at the hop")
    t0 = time.monotonic()
    qid = send(srv, ["bob@office.test"], subject="second")  # within the idle session's 2 s
    deferred(srv, qid, r"the next hop closed the connection \(a reused session; retried at once\)")
    wait_until(lambda: len(hop.messages) == 2, 5, "the second message, on a new session")
    assert time.monotonic() - t0 < 3
    assert len(hop.conns) == 2 and b"Subject: second" in hop.messages[1]
    wait_log(srv, r'event=relay id=%s relay="Office" to="bob@office.test" status=sent' % qid)
    assert "event=relay_down" not in log(srv)


def test_octets_after_the_last_reply_end_the_idle_session(server, fake_hop):
    """A next hop that says more than it was asked, after the reply to the
    end of data (in the same write: read with that reply): the session
    does not idle with those octets waiting to be read as the next
    MAIL's reply. It is closed at once; the message was sent, nothing is
    deferred. FakeHop: no real server does this."""
    hop = fake_hop(script(**{".": then_stall(b"250 2.0.0 Ok: queued as FAKE\r\n250 2.0.0 and this, unasked\r\n")}))
    srv = gateway(server, relay_ini(tcp(hop.port), starttls="no"))
    qid = send(srv, ["bob@office.test"], subject="unasked")
    wait_log(srv, r'event=relay id=%s relay="Office" to="bob@office.test" status=sent' % qid)
    wait_log(srv, r'event=relay_idle relay="Office" end=input', timeout=1)  # not after the idle time
    hop.conns[0].wait_closed(timeout=1)
    assert "status=deferred" not in log(srv) and "event=relay_down" not in log(srv)


@pytest.mark.parametrize("cmd,handed", [("EHLO", False), ("DATA", True), (".", True)],
                         ids=["EHLO", "DATA", "end-of-data"])
def test_closes_without_reply_then_delivered(server, smtp_sink, cmd, handed):
    """smtp-sink hangs up instead of answering (-q): deferred, then
    delivered once it behaves. After the end of data the message is
    there twice: SPEC §10's one duplicate window."""
    sink = smtp_sink(disconnect=(cmd,))
    srv = gateway(server, relay_ini(tcp(sink.port), starttls="no", retry_min="00:00:02", retry_max="00:00:04"))
    qid = send(srv, ["bob@office.test"], subject="hangup")
    reply = deferred(srv, qid, "the next hop closed the connection")
    if not handed:
        wait_log(srv, r'event=relay_down id=%s relay="Office" .*error="the next hop closed the connection"' % qid)
    assert queue_files(srv) == [f"{qid}.env", f"{qid}.msg"]
    assert listed(srv)[1] == reply
    first = sink.count()
    assert first == (1 if cmd == "." else 0)
    sink_without(sink, "-q")
    sink.wait_for_messages(first + 1, timeout=20)
    wait_empty(srv)
    wait_log(srv, r'event=relay id=%s relay="Office" to="bob@office.test" status=sent' % qid)


# -------------------------------------------- TLS failure after STARTTLS

def tls_then(after):
    """STARTTLS answered 220, then AFTER(conn)."""
    def act(c):
        c.send(b"220 2.0.0 Ready to start TLS\r\n")
        after(c)
    return act


def client_hello(c):
    """Waits for tarpitd's first TLS record. (Octets sent together with
    the 220 would never reach the handshake: tarpitd drops what came
    before it, RFC 3207 §4.2.)"""
    while len(c.rx) < c.fault_at + 5:
        c._fill(time.monotonic() + 10)


def garbage(c):
    client_hello(c)
    c.send(b"this is not TLS, it is plain text\r\n" * 8)
    c.hold()


def alert(c):
    client_hello(c)  # then a fatal handshake_failure alert
    c.send(b"\x15\x03\x03\x00\x02\x02\x28")


TLS_FAULTS = {
    "garbage": (tls_then(garbage), r"TLS handshake with the next hop failed: [^\"]+"),
    "close": (tls_then(lambda c: None), r"TLS handshake with the next hop failed: [^\"]+"),
    "alert": (tls_then(alert), r"TLS handshake with the next hop failed: [^\"]+"),
    "refused": (b"454 4.7.0 TLS not available due to local problem\r\n",
                r"STARTTLS is required and the next hop refused it"),
    "stall": (tls_then(lambda c: c.hold()), "timed out waiting for the TLS handshake"),
}


@needs_tls
@pytest.mark.parametrize("fault", list(TLS_FAULTS))
def test_tls_failure_after_starttls_deferred_never_in_clear(server, fake_hop, fault):
    """starttls = required, and the hop offers STARTTLS, then fails it:
    plain text for a ServerHello, a close after the 220, a TLS alert, a
    454 refusal, a handshake that stalls (the 5-minute deadline, fast
    clock). Deferred with the reason,
    the entry intact, and on no connection, the retry included, did
    anything but EHLO and STARTTLS go in the clear."""
    act, reason = TLS_FAULTS[fault]
    env = fast_clock_env() if fault == "stall" else None
    hop = fake_hop(lambda c: serve(c, {"STARTTLS": act}, ext=EHLO_EXT + (b"STARTTLS",)))
    relays = relay_ini(tcp(hop.port),
                       **(dict(starttls="required", retry_min="00:00:01", retry_max="00:00:02") if fault != "stall" else
                          dict(FAST_HOP, starttls="required")))
    srv = fast_gateway(server, relays, env) if env else gateway(server, relays)
    t0 = time.monotonic()
    qid = send(srv, ["bob@office.test"], subject="tls-" + fault)
    reply = deferred(srv, qid, reason, timeout=60)
    if fault == "stall":
        within(time.monotonic() - t0, 5, "deferred")
    wait_log(srv, r'event=relay_down id=%s relay="Office" .*error="%s"' % (qid, re.escape(reply)))
    if fault != "stall":
        # The retry a second later: again STARTTLS, never in the clear.
        hop.wait_conns(2)
        wait_until(lambda: len(re.findall(r"event=relay id=%s .*status=deferred" % qid, log(srv))) >= 2, 10,
                   "the second deferral")
    for c in hop.conns:
        c.wait_over(10)
        only_clear(c, b"EHLO mx.test\r\nSTARTTLS\r\n")
    assert hop.messages == []
    attempts, last = listed(srv)
    assert attempts >= 1 and re.fullmatch(reason, last), last
    intact(srv, qid)


# ------------------------------------------- a hop that never gets ready

@pytest.mark.parametrize("how", ["ehlo-hangup", pytest.param("tls-close", marks=needs_tls)])
def test_hop_failing_every_session_backs_off(server, smtp_sink, fake_hop, how):
    """A hop that takes the connection but never gets a session ready
    (smtp-sink hangs up at EHLO; a TLS handshake closed after the 220) is
    down like one that refuses connections: retried after retry_min,
    doubling up to retry_max (SPEC §10), one probe at a time; a session
    that gets ready ends the back-off."""
    if how == "ehlo-hangup":
        sink = smtp_sink(disconnect=("EHLO",))
        port, starttls = sink.port, "no"
    else:
        sink = None
        hop = fake_hop(lambda c: serve(c, {"STARTTLS": tls_then(lambda c: None)}, ext=EHLO_EXT + (b"STARTTLS",)))
        port, starttls = hop.port, "required"
    srv = gateway(server, relay_ini(tcp(port), starttls=starttls, retry_min="00:00:01", retry_max="00:00:04"))
    qid = send(srv, ["bob@office.test"], subject="backoff")
    downs = wait_log(srv, r'event=relay_down id=%s relay="Office" .* retry=(\d+)' % qid, count=3, timeout=20)
    assert [int(d) for d in downs[:3]] == [1, 2, 4], downs
    if sink:
        sink_without(sink, "-q")
        sink.wait_for_messages(1, timeout=15)
        wait_empty(srv)
        # A session got ready: the next failure starts over at retry_min.
        sink.halt()
        sink.cmd[1:1] = ["-q", "EHLO"]
        sink.resume()
        again = send(srv, ["bob@office.test"], subject="backoff-again")
        assert wait_log(srv, r'event=relay_down id=%s relay="Office" .* retry=(\d+)' % again) == ["1"]
