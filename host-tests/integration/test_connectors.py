"""Receive Connectors (SPEC §3, issue 3): several connectors on one port
chosen by RemoteIPRanges, reload through SIGHUP and `set`, SIGTERM,
privilege drop and the stats counters of a scripted session."""

import os
import pwd
import re
import signal
import socket
import subprocess
import time

import pytest

from conftest import BIN, DEFAULT_RECIPIENTS, DELAYED, IMMEDIATE, Client, free_port

SERVER = """\
[server]
hostname = mx.test
max_connections = 64
recipients = recipients
spool = spool
log = stderr
log_level = debug
pidfile = tarpitd.pid
control = control.sock
"""


class Multi:
    """A server started from a hand-written INI (several connectors)."""

    def __init__(self, tmp_path, connectors, server_extra="", spool="spool"):
        self.dir = tmp_path
        self.port = free_port()
        self.ini = tmp_path / "tarpitd.ini"
        (tmp_path / "recipients").write_text(DEFAULT_RECIPIENTS)
        server = SERVER.replace("spool = spool", f"spool = {spool}")
        self.ini.write_text(server + server_extra + "\n" + connectors.format(port=self.port))
        self.log = open(tmp_path / "stderr.log", "wb")
        self.proc = subprocess.Popen([str(BIN), "-c", str(self.ini), "run"], cwd=str(tmp_path),
                                     stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log)
        self.wait_port(self.port)

    def wait_port(self, port, source="127.0.0.254"):
        end = time.monotonic() + 10
        while True:
            assert self.proc.poll() is None, self.stderr()
            s = socket.socket()
            try:
                s.bind((source, 0))
                s.connect(("127.0.0.1", port))
                s.shutdown(socket.SHUT_WR)
                s.settimeout(5)
                while s.recv(4096):
                    pass
                return
            except OSError:
                assert time.monotonic() < end, self.stderr()
                time.sleep(0.02)
            finally:
                s.close()

    def stderr(self):
        return (self.dir / "stderr.log").read_text(errors="replace")

    def wait_log(self, pattern, timeout=5.0):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if re.search(pattern, self.stderr()):
                return
            time.sleep(0.02)
        raise AssertionError(f"{pattern!r} not in log:\n{self.stderr()}")

    def client(self, source=None, port=None):
        return Client(port or self.port, source=source)

    def tarpitd(self, *args):
        return subprocess.run([str(BIN), "-c", str(self.ini), *args], capture_output=True,
                              text=True, timeout=20)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


@pytest.fixture
def multi(tmp_path):
    made = []

    def make(connectors, server_extra="", spool="spool"):
        m = Multi(tmp_path, connectors, server_extra, spool)
        made.append(m)
        return m

    yield make
    for m in made:
        m.stop()
        print(m.stderr())


TWO = """\
[connector "Default Frontend"]
bindings = 127.0.0.1:{port}
remote_ip_ranges = 0.0.0.0/0
tarpit_interval = 00:00:02

[connector "Trusted Hosts"]
bindings = 127.0.0.1:{port}
remote_ip_ranges = 127.0.0.2, 127.0.0.16/28
tarpit_interval = 00:00:00
"""


def unknown_rcpt_delay(c):
    c.greet()
    c.expect(250, "2.1.0", "MAIL FROM:<s@origin.test>")
    t = c.send("RCPT TO:<nobody@example.org>\r\n")
    r = c.expect(550, "5.1.1")
    return r.t - t


def test_trusted_connector_not_tarpitted(multi):
    m = multi(TWO)
    with m.client("127.0.0.2") as trusted, m.client("127.0.0.3") as internet, \
            m.client("127.0.0.20") as trusted_cidr:
        assert unknown_rcpt_delay(trusted) < IMMEDIATE
        assert unknown_rcpt_delay(trusted_cidr) < IMMEDIATE
        assert unknown_rcpt_delay(internet) >= DELAYED
    log = m.stderr()
    assert 'ip=127.0.0.2 port=' in log and 'connector="Trusted Hosts"' in log
    assert re.search(r'ip=127\.0\.0\.3 port=\d+ connector="Default Frontend"', log)


def test_most_specific_range_wins(multi):
    m = multi("""\
[connector "Wide"]
bindings = 127.0.0.1:{port}
remote_ip_ranges = 127.0.0.0/8
tarpit_interval = 00:00:00
banner = wide ESMTP

[connector "Narrow"]
bindings = 127.0.0.1:{port}
remote_ip_ranges = 127.0.0.0-127.0.0.9
banner = narrow ESMTP

[connector "Single"]
bindings = 127.0.0.1:{port}
remote_ip_ranges = 127.0.0.5
banner = single ESMTP
""")
    for source, banner in [("127.0.0.5", "single"), ("127.0.0.6", "narrow"), ("127.0.0.10", "wide")]:
        with m.client(source) as c:
            assert c.expect(220).text == f"{banner} ESMTP", source


def test_no_connector_matches(multi):
    m = multi("""\
[connector "Only Two"]
bindings = 127.0.0.1:{port}
remote_ip_ranges = 127.0.0.2
""")
    with m.client("127.0.0.3") as c:
        t0 = time.monotonic()
        r = c.expect(421, "4.3.2")
        assert r.t - t0 < IMMEDIATE
        assert c.closed()


def test_disabled_connector_ignored(multi):
    m = multi(TWO.replace('tarpit_interval = 00:00:00', 'tarpit_interval = 00:00:00\nenabled = no'))
    with m.client("127.0.0.2") as c:
        assert unknown_rcpt_delay(c) >= DELAYED


def test_connector_limit_is_per_connector(multi):
    m = multi(TWO.replace("tarpit_interval = 00:00:02",
                          "tarpit_interval = 00:00:02\nmax_inbound_connections = 1"))
    with m.client("127.0.0.3") as a:
        a.expect(220)
        with m.client("127.0.0.4") as b:
            b.expect(421, "4.3.2")
        with m.client("127.0.0.2") as trusted:
            trusted.expect(220)


def test_set_reloads_new_sessions_only(multi):
    m = multi("""\
[connector "Default Frontend"]
bindings = 127.0.0.1:{port}
tarpit_interval = 00:00:00
""")
    m.wait_log("event=start")
    old = m.client()
    old.greet()
    p = m.tarpitd("set", "Default Frontend", "TarpitInterval=00:00:02")
    assert p.returncode == 0, p.stderr
    assert "Default Frontend: tarpit_interval 00:00:00 -> 00:00:02" in p.stdout
    assert "reload" in p.stdout + p.stderr
    m.wait_log("event=reload connectors=1")
    # The open session keeps the settings it started with...
    old.expect(250, "2.1.0", "MAIL FROM:<s@origin.test>")
    t = old.send("RCPT TO:<nobody@example.org>\r\n")
    assert old.expect(550, "5.1.1").t - t < IMMEDIATE
    old.close()
    # ...a new one gets the new tarpit.
    with m.client() as new:
        assert unknown_rcpt_delay(new) >= DELAYED


def test_sighup_invalid_config_keeps_old(multi):
    m = multi(TWO)
    m.wait_log("event=start")
    text = m.ini.read_text()
    m.ini.write_text(text.replace("tarpit_interval = 00:00:00", "tarpit_interval = 00:11:00"))
    m.proc.send_signal(signal.SIGHUP)
    m.wait_log("event=reload_failed")
    assert "00:11:00 is above the maximum 00:10:00" in m.stderr()
    with m.client("127.0.0.2") as c:
        assert unknown_rcpt_delay(c) < IMMEDIATE
    assert m.proc.poll() is None


def test_reload_adds_and_removes_bindings(multi):
    m = multi("""\
[connector "Default Frontend"]
bindings = 127.0.0.1:{port}
""")
    m.wait_log("event=start")
    port2 = free_port()
    text = m.ini.read_text().replace(f"bindings = 127.0.0.1:{m.port}", f"bindings = 127.0.0.1:{port2}")
    m.ini.write_text(text)
    m.proc.send_signal(signal.SIGHUP)
    m.wait_log("event=reload connectors=1")
    with m.client(port=port2) as c:
        c.expect(220)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", m.port), timeout=2).close()


def test_sigterm_stops_listening_and_exits_0(multi):
    m = multi(TWO)
    c = m.client("127.0.0.3")
    c.greet()
    m.proc.send_signal(signal.SIGTERM)
    c.expect(421, "4.3.2")
    assert c.closed()
    assert m.proc.wait(timeout=5) == 0
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", m.port), timeout=2).close()


def test_sigterm_cuts_a_pending_tarpit(multi):
    m = multi(TWO.replace("00:00:02", "00:01:00"))
    c = m.client("127.0.0.3")
    c.greet()
    c.expect(250, "2.1.0", "MAIL FROM:<s@origin.test>")
    c.send("RCPT TO:<nobody@example.org>\r\n")
    time.sleep(0.2)
    m.proc.send_signal(signal.SIGTERM)
    c.expect(421, "4.3.2", timeout=3)
    assert m.proc.wait(timeout=5) == 0


def logfmt(line):
    return dict(re.findall(r'(\w+)=("[^"]*"|\S+)', line))


def test_stats_count_a_scripted_session(multi):
    m = multi(TWO)
    with m.client("127.0.0.3") as c:
        c.greet()
        c.expect(250, "2.1.0", "MAIL FROM:<s@origin.test>")
        c.expect(250, "2.1.5", "RCPT TO:<alice@example.org>")
        c.expect(550, "5.1.1", "RCPT TO:<nobody@example.org>")
        c.expect(250, "2.1.5", "RCPT TO:<bob@example.org>")   # waits too (after unknown)
        c.expect(354, None, "DATA")
        c.expect(250, "2.0.0", "Subject: x\r\n\r\nhi\r\n.")
        c.expect(221, "2.0.0", "QUIT")
    hang = m.client("127.0.0.4")
    hang.greet()
    hang.expect(250, "2.1.0", "MAIL FROM:<s@origin.test>")
    hang.send("RCPT TO:<nobody2@example.org>\r\n")
    time.sleep(0.3)
    hang.abort()
    with m.client("127.0.0.2") as t:
        t.greet()
        t.expect(250, "2.1.0", "MAIL FROM:<s@origin.test>")
        t.expect(550, "5.1.1", "RCPT TO:<nobody@example.org>")
    m.wait_log(r"reason=client_gone_waiting")
    p = m.tarpitd("stats")
    assert p.returncode == 0, p.stderr
    rows = {(d["scope"], d.get("name", '"-"').strip('"')): d for d in map(logfmt, p.stdout.splitlines())}
    srv = rows[("server", "-")]
    front = rows[("connector", "Default Frontend")]
    trusted = rows[("connector", "Trusted Hosts")]
    # the readiness probe (from 127.0.0.254, only the frontend matches it)
    # and two sessions
    assert front["connections_total"] == "3"
    assert front["recipients_accepted"] == "2"
    assert front["recipients_unknown"] == "2"
    assert front["messages_accepted"] == "1"
    assert front["replies_tarpitted"] == "3"   # 550, the 250 after it, the hung-up 550
    assert front["tarpit_disconnects"] == "1"
    assert trusted["recipients_unknown"] == "1"
    assert trusted["replies_tarpitted"] == "0"
    assert srv["recipients_unknown"] == "3"
    assert srv["tarpit_disconnects"] == "1"
    assert srv["connections_total"] == "4"
    assert srv["connections_current"] == "0"
    # SIGUSR1 writes the same counters to the log.
    m.proc.send_signal(signal.SIGUSR1)
    m.wait_log(r'scope=connector name="Trusted Hosts" connections_total=1')


@pytest.mark.skipif(os.geteuid() != 0, reason="dropping privileges needs root")
def test_user_drops_privileges(multi, tmp_path):
    import shutil
    import tempfile
    nobody = pwd.getpwnam("nobody")
    # pytest's tmp_path is not traversable by other users: the spool lives
    # in a directory of its own.
    top = tempfile.mkdtemp(prefix="tarpitd-priv-")
    os.chmod(top, 0o755)
    spool = os.path.join(top, "spool")
    os.mkdir(spool)
    os.chown(spool, nobody.pw_uid, nobody.pw_gid)
    try:
        _deliver_as_nobody(multi, spool, nobody)
    finally:
        shutil.rmtree(top, ignore_errors=True)


def _deliver_as_nobody(multi, spool, nobody):
    from pathlib import Path
    spool = Path(spool)
    m = multi("""\
[connector "Default Frontend"]
bindings = 127.0.0.1:{port}
tarpit_interval = 00:00:00
""", server_extra="user = nobody\n", spool=str(spool))
    m.wait_log("event=start")
    status = open(f"/proc/{m.proc.pid}/status").read()
    uids = re.search(r"^Uid:\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)", status, re.M).groups()
    assert set(uids) == {str(nobody.pw_uid)}, status
    groups = re.search(r"^Groups:(.*)$", status, re.M).group(1).split()
    assert groups in ([], [str(nobody.pw_gid)]), status
    with m.client() as c:
        c.greet()
        c.mail_rcpt()
        c.expect(354, None, "DATA")
        c.expect(250, "2.0.0", "hi\r\n.")
    files = list(spool.glob("alice@example.org/new/*"))
    assert len(files) == 1 and files[0].stat().st_uid == nobody.pw_uid
