"""Shared fixtures for the tarpitd integration tests.

Every test starts its own tarpitd process (foreground, `run`) on a free
127.0.0.1 port with an INI file, a recipient file and a spool in its
tmp_path, and talks to it over real sockets. The binary comes from
$TARPITD_BIN, else build/host/tarpitd of this repository.

The factory's default connector has the tarpit off (tarpit_interval
00:00:00) so reply-code tests run fast; the timing tests set it to 2 s.
"""

import errno
import os
import random
import re
import select
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from peers import dovecot_lmtp, postfix_peer, smtp_sink  # noqa: F401 (fixtures of the next hops, issue 15)

REPO = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("TARPITD_BIN", REPO / "build" / "host" / "tarpitd"))

# TARPITD_TIME_SCALE (make test-firmware: the binary under qemu-user) widens
# the margin for an undelayed reply, never up to DELAYED, so the timing
# tests still tell a tarpitted reply from an undelayed one.
TIME_SCALE = float(os.environ.get("TARPITD_TIME_SCALE", "1"))
T = 2.0          # the tarpit interval the timing tests configure
DELAYED = 1.9    # a tarpitted reply arrives at least this late
IMMEDIATE = min(1.0 * TIME_SCALE, 1.7)  # an undelayed reply arrives sooner than this

# TARPITD_TLS=0: the binary is built without TLS (make TLS=0); the tests
# that need STARTTLS are skipped and test_notls.py runs instead.
WITH_TLS = os.environ.get("TARPITD_TLS", "1") != "0"
needs_tls = pytest.mark.skipif(not WITH_TLS, reason="built without TLS (TLS=0)")

DEFAULT_RECIPIENTS = """\
# test recipients
alice@example.org
bob@example.org        robert
@example.net           catchall
"""

# Source address of the readiness probe: kept apart from 127.0.0.1 so the
# probe never counts against the per-source limit of the tests' clients.
PROBE_SOURCE = "127.0.0.254"


SANITIZER_MARK = re.compile(r"ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:")


def pytest_configure(config):
    config.addinivalue_line("markers", "faults: fault-injection tests (make test-faults)")


# Ports for the servers the tests start. A port the kernel hands out with
# bind(("127.0.0.1", 0)) is free only until the socket closes: until the
# server binds it, another pytest-xdist worker (make test JOBS=N) may be
# handed the same one, or a client's connect() may take it as its source
# port. So each worker takes ports from a slice of its own below the
# ephemeral range (where neither happens), one after the other from a
# random start (other pytest runs on the machine start elsewhere), and
# skips any port something already listens on.
PORT_LOW = 10000
PORT_SLICE = 1000


def _port_plan():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            ephemeral_low = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        ephemeral_low = 32768
    slices = (ephemeral_low - PORT_LOW) // PORT_SLICE
    if slices < 1:
        return None
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    n = int(worker[2:]) if worker[2:].isdigit() else 0
    base = PORT_LOW + (n % slices) * PORT_SLICE
    return [base, random.SystemRandom().randrange(PORT_SLICE)]


_PORTS = _port_plan()


def _listened_on(port):
    """True when a socket cannot bind port on every address (as tarpitd
    binds it: SO_REUSEADDR, so a TIME_WAIT left over does not count)."""
    for fam, addr in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
        try:
            s = socket.socket(fam, socket.SOCK_STREAM)
        except OSError:
            continue  # no IPv6 here
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if fam == socket.AF_INET6:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            s.bind((addr, port))
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                return True
        finally:
            s.close()
    return False


def free_port():
    if _PORTS is not None:
        base = _PORTS[0]
        for _ in range(PORT_SLICE):
            port = base + _PORTS[1] % PORT_SLICE
            _PORTS[1] += 1
            if not _listened_on(port):
                return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def render_ini(port, connector=None, server=None, name="Default Frontend", extra=""):
    """The INI text: [server] and one connector, with overrides (a value
    of None removes the key)."""
    srv = {
        "hostname": "mx.test",
        "max_connections": "64",
        "recipients": "recipients",
        "spool": "spool",
        "log": "stderr",
        "log_level": "debug",
    }
    con = {
        "bindings": f"127.0.0.1:{port}",
        "remote_ip_ranges": "0.0.0.0-255.255.255.255, ::/0",
        "tarpit_interval": "00:00:00",
    }
    srv.update(server or {})
    con.update(connector or {})
    lines = ["[server]"]
    lines += [f"{k} = {v}" for k, v in srv.items() if v is not None]
    lines += ["", f'[connector "{name}"]']
    lines += [f"{k} = {v}" for k, v in con.items() if v is not None]
    return "\n".join(lines) + "\n" + extra


class Server:
    # Extra environment for the daemon (LD_PRELOAD=libfaketime, for one):
    # a test sets it before start(); None runs it with the tests' own.
    env = None

    def __init__(self, workdir, port, connector, server_overrides, recipients):
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port
        self.connector = dict(connector)
        self.server_overrides = dict(server_overrides or {})
        self.ini = self.dir / "tarpitd.ini"
        self.recipients = self.dir / "recipients"
        self.spool = self.dir / "spool"
        self.proc = None
        self.logs = []
        self.extra = getattr(self, "extra", "")  # further INI sections; a subclass may set it first
        if isinstance(recipients, (list, tuple)):
            recipients = "\n".join(recipients) + "\n"
        self.recipients.write_text(recipients)
        self.write_ini()

    def write_ini(self):
        self.ini.write_text(render_ini(self.port, self.connector, self.server_overrides, extra=self.extra))

    @property
    def log_path(self):
        return self.dir / f"stderr.{len(self.logs)}.log"

    def start(self, wait=True):
        assert BIN.exists(), f"tarpitd binary not found at {BIN} (set TARPITD_BIN)"
        path = self.log_path
        self.logs.append(path)
        self._err = open(path, "wb")
        self.proc = subprocess.Popen(
            [str(BIN), "-c", str(self.ini), "run"],
            stdin=subprocess.DEVNULL, stdout=self._err, stderr=self._err,
            cwd=str(self.dir), env=dict(os.environ, **self.env) if self.env else None)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, deadline=10.0):
        """Polls until the port accepts, then waits for the server to close
        the probe so it holds no slot when the test begins."""
        end = time.monotonic() + deadline
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"tarpitd exited with {self.proc.returncode} at start:\n{self.stderr()}")
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.settimeout(1.0)
            try:
                s.bind((PROBE_SOURCE, 0))
                s.connect(("127.0.0.1", self.port))
            except OSError:
                s.close()
                if time.monotonic() > end:
                    raise AssertionError(f"tarpitd did not listen on {self.port}:\n{self.stderr()}")
                time.sleep(0.02)
                continue
            break
        try:
            s.shutdown(socket.SHUT_WR)
            s.settimeout(5.0)
            while s.recv(4096):
                pass
        except OSError:
            pass
        finally:
            s.close()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            self._err.close()

    def kill9(self):
        self.proc.kill()
        self.proc.wait()
        self._err.close()

    def restart(self, new_port=True):
        """Starts a new process on the same INI, recipients and spool."""
        self.stop()
        if new_port:
            self.port = free_port()
            self.connector["bindings"] = f"127.0.0.1:{self.port}"
            self.write_ini()
        return self.start()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stderr(self, tail=200):
        out = []
        for p in self.logs:
            try:
                lines = p.read_text(errors="replace").splitlines()
            except OSError:
                continue
            out.append(f"--- {p.name} ---")
            out += lines[-tail:]
        return "\n".join(out)

    def sanitizer_reports(self):
        """Lines of ASan/UBSan reports (for builds with -fsanitize)."""
        out = []
        for p in self.logs:
            try:
                text = p.read_text(errors="replace")
            except OSError:
                continue
            out += [ln for ln in text.splitlines() if SANITIZER_MARK.search(ln)]
        return out

    # Spool helpers
    def new_files(self, mailbox):
        d = self.spool / mailbox / "new"
        return sorted(d.iterdir()) if d.is_dir() else []

    def all_new_files(self):
        if not self.spool.is_dir():
            return []
        return sorted(p for p in self.spool.glob("*/new/*"))

    def tmp_files(self):
        d = self.spool / "tmp"
        return sorted(d.iterdir()) if d.is_dir() else []

    def client(self, **kw):
        return Client(self.port, **kw)


@pytest.fixture
def server(tmp_path):
    """Factory: server(**connector_keys, recipients=..., server_overrides=...,
    start=True). Connector keys use the INI names (tarpit_interval=...)."""
    started = []

    def make(recipients=DEFAULT_RECIPIENTS, server_overrides=None, start=True, **connector):
        port = free_port()
        connector.setdefault("bindings", f"127.0.0.1:{port}")
        srv = Server(tmp_path / f"srv{len(started)}", port, connector, server_overrides, recipients)
        started.append(srv)
        if start:
            srv.start()
        return srv

    yield make
    stop_all(started)


def stop_all(started, tail=200, epilogue=None):
    """A server fixture's teardown: stops every server it started, prints
    their stderr (pytest shows it only when the test fails) and fails the
    test on a sanitizer report."""
    reports = []
    for srv in started:
        srv.stop()
        if srv.logs:
            print(f"\n===== tarpitd stderr (port {srv.port}) =====\n{srv.stderr(tail=tail)}")
            reports += srv.sanitizer_reports()
    if epilogue:
        print(epilogue)
    if reports:
        pytest.fail("sanitizer report in tarpitd's stderr:\n" + "\n".join(reports))


class Reply:
    ENH = re.compile(r"^[245]\.\d{1,3}\.\d{1,3}$")

    def __init__(self, lines, t):
        self.lines = lines        # raw text lines without CRLF
        self.t = t                # time.monotonic() of arrival
        self.code = int(lines[0][:3])
        self.texts = [ln[4:] for ln in lines]
        self.text = "\n".join(self.texts)
        first = self.texts[0].split(" ", 1)[0] if self.texts[0] else ""
        self.enh = first if self.ENH.match(first) else None

    def __repr__(self):
        return f"Reply({self.lines!r})"


class Closed(Exception):
    pass


class Client:
    """A raw SMTP client: writes bytes as given, reads complete replies."""

    def __init__(self, port, source=None, host="127.0.0.1", timeout=10.0, connect=True):
        self.port = port
        self.timeout = timeout
        self.buf = b""
        self.marks = []  # (end offset in buf, arrival time) per received chunk
        self.eof = False
        self.t_sent = None
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if source:
            self.sock.bind((source, 0))
        if connect:
            self.sock.settimeout(timeout)
            self.sock.connect((host, port))
            self.t_connect = time.monotonic()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def abort(self):
        """Hangs up with a RST."""
        import struct
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close()

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)
        self.t_sent = time.monotonic()
        return self.t_sent

    def _fill(self, deadline):
        remain = deadline - time.monotonic()
        if remain <= 0:
            raise TimeoutError("no complete reply in time; buffered: %r" % self.buf[:300])
        r, _, _ = select.select([self.sock], [], [], remain)
        if not r:
            raise TimeoutError("no complete reply in time; buffered: %r" % self.buf[:300])
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            data = b""
        now = time.monotonic()
        if not data:
            self.eof = True
        self.buf += data
        self.marks.append((len(self.buf), now))
        return now

    def _take_reply(self):
        """A complete reply from the buffer, or None."""
        lines = []
        pos = 0
        while True:
            i = self.buf.find(b"\n", pos)
            if i < 0:
                return None
            line = self.buf[pos:i].rstrip(b"\r").decode("latin-1")
            pos = i + 1
            lines.append(line)
            if not re.match(r"^\d{3}[ -]", line) and not re.match(r"^\d{3}$", line):
                raise AssertionError(f"malformed reply line {line!r}")
            if len(line) == 3 or line[3] == " ":
                t = next(t for end, t in self.marks if end >= pos)
                self.buf = self.buf[pos:]
                self.marks = [(end - pos, t2) for end, t2 in self.marks if end - pos > 0]
                return lines, t

    def reply(self, timeout=None):
        """The next complete reply; raises Closed at EOF, TimeoutError if
        none comes within timeout seconds."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            got = self._take_reply()
            if got is not None:
                return Reply(*got)
            if self.eof:
                raise Closed("connection closed; buffered: %r" % self.buf)
            self._fill(deadline)

    def cmd(self, line, timeout=None):
        if isinstance(line, str):
            line = line.encode()
        self.send(line + b"\r\n")
        return self.reply(timeout)

    def expect(self, code, enh=None, line=None, timeout=None):
        r = self.cmd(line, timeout) if line is not None else self.reply(timeout)
        assert r.code == code, f"sent {line!r}: expected {code} {enh or ''}, got {r.lines}"
        if enh is not None:
            assert r.enh == enh, f"sent {line!r}: expected {code} {enh}, got {r.lines}"
        return r

    def no_reply(self, wait):
        """Asserts that nothing arrives (and the connection stays up) for wait seconds."""
        end = time.monotonic() + wait
        while time.monotonic() < end:
            r, _, _ = select.select([self.sock], [], [], max(0.0, end - time.monotonic()))
            if r:
                data = self.sock.recv(65536)
                assert data, "connection closed unexpectedly"
                self.buf += data
                assert False, f"unexpected data: {self.buf!r}"
        assert not self.buf, f"unexpected data: {self.buf!r}"

    def closed(self, timeout=5.0):
        """True when the server closes the connection within timeout with no
        more replies (pending data makes it an AssertionError)."""
        deadline = time.monotonic() + timeout
        while not self.eof:
            try:
                self._fill(deadline)
            except TimeoutError:
                return False
        assert not self.buf, f"unexpected data before close: {self.buf!r}"
        return True

    def greet(self, ehlo="client.test"):
        self.expect(220)
        if ehlo:
            self.expect(250, line=f"EHLO {ehlo}")
        return self

    def mail_rcpt(self, sender="sender@origin.test", rcpts=("alice@example.org",)):
        self.expect(250, "2.1.0", f"MAIL FROM:<{sender}>")
        for r in rcpts:
            self.expect(250, "2.1.5", f"RCPT TO:<{r}>")
        return self


def parse_stored(data):
    """Splits a stored message into (return_path_line, received_unfolded,
    rest_bytes)."""
    assert b"\r" not in data, f"stored file has CR: {data[:300]!r}"
    first, _, rest = data.partition(b"\n")
    # The Received header: the next line plus its continuation lines.
    lines = rest.split(b"\n")
    assert lines[0].startswith(b"Received:"), f"second line is not Received: {lines[0]!r}"
    recv = [lines[0]]
    i = 1
    while i < len(lines) and lines[i][:1] in (b"\t", b" "):
        recv.append(lines[i])
        i += 1
    unfolded = b" ".join(x.strip() for x in recv).decode("latin-1")
    body = b"\n".join(lines[i:])
    return first.decode("latin-1"), unfolded, body


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory):
    """One server for a module's simple one-session cases: default
    settings, tarpit off, max_message_size 1MB, 3 recipients per message."""
    d = tmp_path_factory.mktemp("shared")
    port = free_port()
    srv = Server(d, port, {"bindings": f"127.0.0.1:{port}", "tarpit_interval": "00:00:00",
                           "max_message_size": "1MB", "max_recipients_per_message": "3"},
                 None, DEFAULT_RECIPIENTS)
    srv.start()
    yield srv
    srv.stop()
    reports = srv.sanitizer_reports()
    assert not reports, "sanitizer report in the shared server's stderr:\n" + "\n".join(reports)


@pytest.fixture
def shared(shared_server):
    assert shared_server.alive(), "the shared server died:\n" + shared_server.stderr()
    yield shared_server
    if not shared_server.alive():
        print(shared_server.stderr())
