"""The outbound transport (src/relay.c) against real next hops: Postfix's
smtp-sink (soft and hard rejects per command, stalls, LMTP on a UNIX
socket). Until the receiving side queues mail through tarpitd itself, the
messages are seeded into the queue by build/.../relay_drive, which runs
relay.c on a loop of its own (see its header) with retry_min = 1 s.

Not covered here: the 30 s connect deadline is covered by one slow test
(a listener whose backlog is full); the 5-minute reply deadlines are not
shortened for tests and stay untested."""
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from conftest import BIN, free_port

DRIVE = Path(BIN).parent / "relay_drive"
SINK = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"

pytestmark = [
    pytest.mark.skipif(not DRIVE.exists(), reason="relay_drive not built (make build/host/relay_drive)"),
    pytest.mark.skipif(not os.path.exists(SINK), reason="smtp-sink (Postfix) not installed"),
]

# example.org is the relay's domain; local.test stays in Maildirs.
RECIPIENTS = "alice@example.org\nbob@example.org\ncarol@example.org\ndave@local.test\n"


class Sink:
    """smtp-sink on 127.0.0.1:port (or a UNIX socket), dumping each message."""

    def __init__(self, work, port=None, args=(), unix=None):
        # Outside pytest's 0700 tree: smtp-sink writes as nobody.
        self.dump = Path(tempfile.mkdtemp(prefix="tarpitd-sink-"))
        os.chmod(self.dump, 0o777)
        addr = ("unix:%s" % unix) if unix else "127.0.0.1:%d" % port
        cmd = [SINK]
        if os.geteuid() == 0:
            cmd += ["-u", "nobody"]
        cmd += list(args) + ["-d", str(self.dump) + "/%M.", addr, "64"]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if unix:
                if os.path.exists(unix):
                    os.chmod(unix, 0o777)
                    return
            else:
                try:
                    socket.create_connection(("127.0.0.1", port), 0.2).close()
                    return
                except OSError:
                    pass
            time.sleep(0.02)
        raise RuntimeError("smtp-sink did not start")

    def messages(self):
        return sorted(p.read_text(errors="replace") for p in self.dump.iterdir())

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(5)
        shutil.rmtree(self.dump, ignore_errors=True)


class Drive:
    """relay_drive running in the background; its log is read as it goes."""

    def __init__(self, work, host, seconds, **kw):
        self.work = work
        self.spool = work / "spool"
        rc = work / "recipients"
        if not rc.exists():
            rc.write_text(RECIPIENTS)
        args = [str(DRIVE), str(self.spool), str(rc), host, str(seconds)]
        for k, v in kw.items():
            for one in v if isinstance(v, list) else [v]:
                args.append("%s=%s" % (k, one))
        self.log = work / ("drive-%d.log" % time.monotonic_ns())
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=open(self.log, "w"), text=True)

    def text(self):
        return self.log.read_text(errors="replace")

    def wait_log(self, pattern, timeout=15, count=1):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(re.findall(pattern, self.text())) >= count:
                return
            if self.proc.poll() is not None and len(re.findall(pattern, self.text())) < count:
                break
            time.sleep(0.05)
        raise AssertionError("no %r in the log:\n%s" % (pattern, self.text()[-3000:]))

    def result(self, timeout=30):
        out, _ = self.proc.communicate(timeout=timeout)
        m = re.search(r"delivered=(\d+) deferred=(\d+) failed=(\d+) dsn=(\d+) queued=(\d+) active=(\d+)", out)
        assert m, out + self.text()[-3000:]
        return dict(zip(("delivered", "deferred", "failed", "dsn", "queued", "active"), map(int, m.groups())))

    def seeded(self):
        return re.findall(r"event=seeded queue_id=(\w+)", self.text())

    def sent(self):
        return re.findall(r"event=relay id=(\w+) .*status=sent", self.text())

    def queue_files(self):
        q = self.spool / "queue"
        return sorted(p.name for p in q.iterdir() if p.is_file()) if q.exists() else []

    def maildir(self, box):
        d = self.spool / box / "new"
        return [p.read_text(errors="replace") for p in d.iterdir()] if d.exists() else []


@pytest.fixture
def work(tmp_path):
    os.chmod(tmp_path, 0o755)
    started = []
    yield tmp_path, started
    for s in started:
        if isinstance(s, Sink):
            s.stop()
        elif s.proc.poll() is None:
            s.proc.kill()
            s.proc.wait()


def test_delivered_in_order_and_removed(work):
    tmp, started = work
    port = free_port()
    sink = Sink(tmp, port)
    started.append(sink)
    d = Drive(tmp, "127.0.0.1:%d" % port, 20, msgs=4, conns=1, body=20000)
    r = d.result()
    assert r == dict(delivered=4, deferred=0, failed=0, dsn=0, queued=0, active=0)
    # One session, several messages, in order of acceptance.
    assert d.sent() == d.seeded()
    msgs = sink.messages()
    assert len(msgs) == 4
    for m in msgs:
        assert "X-Rcpt-Args: <bob@example.org>" in m and "X-Mail-Args: <alice@example.org>" in m
        # The stored Return-Path: is not passed on; dot-stuffing round-trips.
        assert "Return-Path:" not in m
        assert "\n..00000000" in m and "\n...0" not in m
        assert m.count("\nxx") + m.count("\n..") == 20000 // 71 + 1
    # Removed from the queue: nothing left on disk.
    assert d.queue_files() == []
    assert len(re.findall(r"event=relay .*relay=\"Office\" to=\"bob@example.org\" status=sent reply=\"250 ", d.text())) == 4


def test_soft_reject_deferred_then_delivered(work):
    tmp, started = work
    port = free_port()
    sink = Sink(tmp, port, ["-r", "RCPT"])
    started.append(sink)
    d = Drive(tmp, "127.0.0.1:%d" % port, 30, msgs=1, retry=1, rmax=1)
    started.append(d)
    d.wait_log(r"status=deferred reply=\"450 4\.3\.0")
    t0 = time.monotonic()
    # The envelope records the deferral (attempts 1, the reply).
    env = (d.spool / "queue" / (d.seeded()[0] + ".env")).read_text()
    assert re.search(r"rcpt P 1 \d+ Office bob@example.org 450%204.3.0", env), env
    sink.stop()
    sink2 = Sink(tmp, port)
    started.append(sink2)
    r = d.result()
    assert r["delivered"] == 1 and r["failed"] == 0 and r["queued"] == 0 and r["deferred"] >= 1
    assert len(sink2.messages()) == 1
    assert time.monotonic() - t0 < 10
    assert d.queue_files() == []


@pytest.mark.parametrize("dsn,sender,box", [(1, "dave@local.test", "dave@local.test"),
                                             (0, "dave@local.test", "postmaster"),
                                             (1, "", "postmaster"),
                                             (1, "stranger@example.com", "postmaster")])
def test_hard_reject_fails_with_dsn(work, dsn, sender, box):
    tmp, started = work
    port = free_port()
    sink = Sink(tmp, port, ["-f", "RCPT"])
    started.append(sink)
    d = Drive(tmp, "127.0.0.1:%d" % port, 20, msgs=1, dsn=dsn, sender=sender,
              rcpt=["bob@example.org", "carol@example.org"])
    r = d.result()
    assert r == dict(delivered=0, deferred=0, failed=2, dsn=1, queued=0, active=0)
    assert sink.messages() == []
    dsns = d.maildir(box)
    assert len(dsns) == 1, box
    t = dsns[0]
    assert "Content-Type: multipart/report; report-type=delivery-status" in t
    assert "Final-Recipient: rfc822; bob@example.org" in t and "Final-Recipient: rfc822; carol@example.org" in t
    assert "Status: 5.3.0" in t and "Action: failed" in t
    assert "Return-Path: <>" in t and "Subject: test 0" in t  # the original's headers attached
    assert "body of message" not in t
    other = "postmaster" if box != "postmaster" else "dave@local.test"
    assert d.maildir(other) == []
    assert re.search(r"event=dsn id=\w+ for=%s to=" % d.seeded()[0], d.text())
    assert d.queue_files() == []


def test_dsn_queued_for_the_senders_next_hop(work):
    """A sender in a forwarded domain gets its DSN through that next hop
    (queued from the null sender); when that fails too, the DSN of the DSN
    goes to postmaster, and nothing further."""
    tmp, started = work
    port = free_port()
    sink = Sink(tmp, port, ["-f", "RCPT"])
    started.append(sink)
    d = Drive(tmp, "127.0.0.1:%d" % port, 20, msgs=1, sender="alice@example.org")
    r = d.result()
    assert r == dict(delivered=0, deferred=0, failed=2, dsn=2, queued=0, active=0)
    first, = re.findall(r"event=dsn id=(\w+) for=%s to=\"alice@example.org\" queued=yes" % d.seeded()[0], d.text())
    assert re.search(r'event=relay id=%s relay="Office" to="alice@example.org" status=failed' % first, d.text())
    assert re.search(r'event=dsn id=\w+ for=%s to="postmaster"' % first, d.text())
    pm, = d.maildir("postmaster")
    assert "Final-Recipient: rfc822; alice@example.org" in pm and "Undelivered Mail" in pm
    assert d.maildir("alice@example.org") == []


def test_lmtp_over_unix_socket(work):
    tmp, started = work
    sockdir = Path(tempfile.mkdtemp(prefix="tarpitd-lmtp-"))
    os.chmod(sockdir, 0o777)
    path = str(sockdir / "lmtp.sock")
    sink = Sink(tmp, unix=path, args=["-L"])
    started.append(sink)
    d = Drive(tmp, "unix:" + path, 20, msgs=2, lmtp=1, rcpt=["bob@example.org", "carol@example.org"])
    r = d.result()
    assert r == dict(delivered=4, deferred=0, failed=0, dsn=0, queued=0, active=0)
    msgs = sink.messages()
    assert len(msgs) == 2 and all("X-Helo-Args: gw.test" in m and "LMTP" in m for m in msgs)


def test_next_hop_down_then_up_in_order(work):
    tmp, started = work
    port = free_port()  # nothing listens yet
    d = Drive(tmp, "127.0.0.1:%d" % port, 40, msgs=6, conns=1, retry=1, rmax=2)
    started.append(d)
    d.wait_log(r"event=relay_down .*error=\"cannot connect: Connection refused\"", count=3, timeout=15)
    # Down: one probe per retry, never one connect per queued message.
    time.sleep(2.5)
    text = d.text()
    downs = len(re.findall(r"event=relay_down", text))
    deferred = len(re.findall(r"status=deferred", text))
    assert deferred == downs, text[-2000:]  # each probe defers its one message, the others wait
    assert "attempted" not in text
    sink = Sink(tmp, port)
    started.append(sink)
    r = d.result()
    assert r["delivered"] == 6 and r["queued"] == 0
    # Accepted order kept: the probe is the oldest message, the rest follow
    # in the same session.
    assert d.sent() == d.seeded()
    assert len(re.findall(r"event=relay_down id=%s " % d.seeded()[0], text)) == downs
    assert len(sink.messages()) == 6


def test_relay_no_longer_configured_deferred(work):
    tmp, started = work
    port = free_port()
    d = Drive(tmp, "127.0.0.1:%d" % port, 3, msgs=1, queue_relay="Gone", keep=1)
    r = d.result()
    assert r["deferred"] == 1 and r["queued"] == 1 and r["delivered"] == 0
    assert re.search(r'relay="Gone" to="bob@example.org" status=deferred reply="no relay Gone configured"', d.text())
    # Retried on the default schedule (60 s), not in a loop.
    assert len(re.findall(r"status=deferred", d.text())) == 1


def test_sigterm_defers_in_flight_nothing_lost(work):
    tmp, started = work
    port = free_port()
    sink = Sink(tmp, port, ["-w", "30"])  # smtp-sink stalls 30 s before answering DATA
    started.append(sink)
    d = Drive(tmp, "127.0.0.1:%d" % port, 60, msgs=1)
    started.append(d)
    d.wait_log(r"event=seeded")
    time.sleep(1.0)  # the session is waiting for DATA's 354
    d.proc.send_signal(signal.SIGTERM)
    r = d.result(timeout=5)
    assert r["deferred"] == 1 and r["queued"] == 1 and r["active"] == 0 and r["delivered"] == 0
    assert 'status=deferred reply="tarpitd is stopping"' in d.text()
    qid = d.seeded()[0]
    env = (d.spool / "queue" / (qid + ".env")).read_text()
    # Not counted as an attempt: due again at the next start.
    assert re.search(r"rcpt P 0 \d+ Office bob@example.org tarpitd%20is%20stopping", env), env
    assert d.queue_files() == [qid + ".env", qid + ".msg"]


def test_connect_deadline_full_backlog(work):
    """A next hop whose accept queue is full never completes the connect:
    deferred after CLIENT_CONNECT_MS (30 s) and marked down."""
    tmp, started = work
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(0)
    port = lst.getsockname()[1]
    fillers = []
    for _ in range(4):
        c = socket.socket()
        c.setblocking(False)
        try:
            c.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        fillers.append(c)
    t0 = time.monotonic()
    d = Drive(tmp, "127.0.0.1:%d" % port, 45, msgs=1, keep=1)
    started.append(d)
    d.wait_log(r"event=relay_down .*error=\"connect timed out\"", timeout=40)
    assert 29 < time.monotonic() - t0 < 38
    d.proc.send_signal(signal.SIGTERM)
    r = d.result(timeout=5)
    assert r["deferred"] == 1 and r["queued"] == 1
    for c in fillers:
        c.close()
    lst.close()
