#!/usr/bin/python3
"""relay_bench: tarpitd as a gateway (SPEC §10, issue 15) against Postfix
as a relay, measured in one run on 127.0.0.1.

Every server is a private instance on a free high port in a temporary
directory (a Postfix is `postfix -c DIR`, never the system's).

  forward     smtp-source -s S -m M -l L -> relay -> next hop: messages per
              second from the start of smtp-source until the next hop has
              accepted all M, for tarpitd ([relay "Office"] for
              office.test) and for Postfix (relay_domains = office.test,
              transport_maps office.test -> relay:[127.0.0.1]:HOP), with
              two next hops (--hops):
                sink     Postfix's smtp-sink -c (answers at once, stores
                         nothing; counted by its "mesg="): the relay's own
                         cost, isolated;
                postfix  a private Postfix as the mail server behind the
                         relay (peers/postfix-final-main.cf), the same for
                         both relays: it accepts office.test as any server
                         does (smtpd, cleanup fsyncs the queue file before
                         the 250) and hands it to its discard agent;
                         counted by qmgr's "(queue active)" log lines.
              Both relays sync the message before their 250: tarpitd its
              queue files and directory (SPEC §5, §10), Postfix's cleanup
              fsyncs the queue file (its default; Postfix does not sync the
              directory nor the removal after delivery, tarpitd does both).
              Each run also reports the CPU time per message of each stage
              (smtp-source, the relay's processes, the next hop's) and how
              busy the machine's CPUs were (everyone's work, ours or not).
              --repeat N runs each N times, interleaved; the medians decide.
  latency     single messages, one at a time with the queue idle, over one
              inbound session (smtplib): from the client's receipt of the
              250 to the sink counting the message (both relays), and for
              tarpitd also from its own log (event=accepted ->
              event=relay status=sent, ms timestamps). p50/p90/p99.
  queued      tarpitd with max_queued = Q and its next hop down (nothing on
              the port): memory idle (after a greeting) and after accepting Q
              messages with smtp-source; accept throughput then against a
              tarpitd without any [relay] (the same recipient stored in its
              Maildir); then smtp-sink comes up on the port and the time
              until it has counted all Q (the drain) is measured.

Needs root (a private Postfix's master runs as root; smtp-sink drops to
nobody). Nothing is installed: postfix (with smtp-source and smtp-sink)
must be there. Bounded in time; cleans up after itself.

  python3 host-tests/bench/relay_bench.py [--repeat N] [--hops sink,postfix]
      [--skip forward,latency,queued,postfix] [--json FILE] [--markdown FILE]
"""
import argparse
import json
import os
import pwd
import re
import resource
import shlex
import shutil
import signal
import smtplib
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import side_by_side as sbs  # noqa: E402  (its Postfix wrapper and process helpers)

ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
DEFAULT_BIN = os.path.join(ROOT, "build", "host", "tarpitd")
SMTP_SOURCE = "/usr/sbin/smtp-source"
SMTP_SINK = "/usr/sbin/smtp-sink"
RCPT = "carol@office.test"
SENDER = "sender@origin.test"


def log(msg):
    print("[%s] %s" % (time.strftime("%H:%M:%S"), msg), file=sys.stderr, flush=True)



def wait_count(count, n, timeout, failure, poll=0.005):
    """Polls COUNT() until it reaches N: the time it did (the end of a
    throughput run), or RuntimeError(FAILURE()) after TIMEOUT seconds."""
    t = time.monotonic()
    while time.monotonic() - t < timeout:
        if count() >= n:
            return time.monotonic()
        time.sleep(poll)
    raise RuntimeError(failure())

class Ctx:
    def __init__(self, work, args):
        self.work = work
        self.args = args
        self.started = []
        self.tarpit = 0  # side_by_side.Postfix reads it; unused here
        self.runs = 0    # a fresh directory per run


# ------------------------------------------------------------------ CPU time

CLK = os.sysconf("SC_CLK_TCK")


def proc_cpu(pid, children=False, user=False):
    """CPU seconds (user + system, or user only) of a process; with
    children, also those of its children it has reaped (Postfix's master
    reaps every service process that exits, so none of their time is
    lost)."""
    with open("/proc/%d/stat" % pid) as f:
        v = f.read().rsplit(")", 1)[1].split()
    t = int(v[11]) + (0 if user else int(v[12]))
    if children:
        t += int(v[13]) + int(v[14])
    return t / CLK


def tree_cpu(root):
    tot = 0.0
    for pid in sbs.process_tree(root):
        try:
            tot += proc_cpu(pid, children=True)
        except (OSError, IndexError, ValueError):
            pass
    return tot


def disk_stat(path):
    """The block device under path (/sys/dev/block/MAJ:MIN/stat): write
    requests, discards, flushes and the milliseconds it was busy — all the
    machine's I/O to that disk, counted by the kernel (what each relay's
    syncs and removals cost the disk, beside the CPU). None when not found."""
    st = os.stat(path)
    p = "/sys/dev/block/%d:%d/stat" % (os.major(st.st_dev), os.minor(st.st_dev))
    try:
        with open(p) as f:
            v = [int(x) for x in f.read().split()]
    except OSError:
        return None
    if len(v) < 17:
        return None
    return {"writes": v[4], "discards": v[11], "flushes": v[15], "busy_ms": v[9]}


def machine_jiffies():
    """(busy, all) jiffies of every CPU of the machine since boot: what
    share of the 2 shared cores was in use during a run, ours or not."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return sum(v) - v[3] - v[4], sum(v)


# ------------------------------------------------------------------ next hop

class Sink:
    """smtp-sink -c on a fixed port: count() is its "mesg=" counter (one
    line at each end of data), kept across halt()/resume()."""

    def __init__(self, ctx, tag, port=None):
        self.ctx = ctx
        self.port = port or sbs.free_port()
        self.out = os.path.join(ctx.work, "sink-%s.out" % tag)
        self.proc = None
        self.base = 0

    def resume(self):
        self.f = open(self.out, "ab")
        self.mark = self.f.tell()
        self.proc = subprocess.Popen([SMTP_SINK, "-c", "-u", "nobody", "127.0.0.1:%d" % self.port, "1024"],
                                     stdin=subprocess.DEVNULL, stdout=self.f, stderr=subprocess.STDOUT)
        self.ctx.started.append(self)
        t = time.monotonic()
        while time.monotonic() - t < 10:
            if self.proc.poll() is not None:
                raise RuntimeError("smtp-sink exited: " + sbs.tail_file(self.out))
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                break
            except OSError:
                time.sleep(0.01)
        # That probe is a session, not a message: the counter stays 0.
        return self

    start = resume

    def count(self):
        try:
            with open(self.out, "rb") as f:
                f.seek(0, 2)
                size = f.tell()
                f.seek(max(self.mark, size - 128))
                tail = f.read().decode("ascii", "replace")
        except OSError:
            return self.base
        m = re.findall(r"mesg=(\d+)", tail)
        return self.base + (int(m[-1]) if m else 0)

    def wait(self, n, timeout, poll=0.005):
        return wait_count(self.count, n, timeout,
                          lambda: "smtp-sink counted %d of %d in %d s" % (self.count(), n, timeout), poll)

    def sessions(self):
        """Sessions that have ended: -c's "sess=" counter (printed as each
        one ends, so a relay's cached sessions count once it closes them)."""
        try:
            with open(self.out, "rb") as f:
                f.seek(self.mark)
                m = re.findall(rb"sess=(\d+)", f.read())
        except OSError:
            return 0
        return int(m[-1]) if m else 0

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def cpu(self):
        return proc_cpu(self.proc.pid) if self.alive() else 0.0

    def halt(self):
        if self.proc is None:
            return
        self.base = self.count()
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.f.close()
        self.proc = None

    stop = halt


# ------------------------------------------------------------------ servers

class Tarpitd:
    name = "tarpitd"

    def __init__(self, ctx, tag, hop_port=None, log_level="warning", control=False):
        self.ctx = ctx
        self.dir = os.path.join(ctx.work, "tarpitd-" + tag)
        self.port = sbs.free_port()
        self.hop_port = hop_port
        self.log_level = log_level
        self.control = control
        self.proc = None
        self.logpath = os.path.join(self.dir, "server.log")
        self.ini = os.path.join(self.dir, "tarpitd.ini")

    def start(self):
        a = self.ctx.args
        os.makedirs(os.path.join(self.dir, "spool"))
        with open(os.path.join(self.dir, "recipients"), "w") as f:
            f.write(RCPT + "\n")
        with open(self.ini, "w") as f:
            f.write("[server]\nhostname = mx.bench\nrecipients = recipients\nspool = spool\n"
                    "log = stderr\nlog_level = %s\nmax_queued = %d\n" % (self.log_level, a.queued))
            if self.control:
                f.write("control = ctl.sock\n")
            f.write("[connector \"Default Frontend\"]\nbindings = 127.0.0.1:%d\n"
                    "tarpit_interval = 00:00:00\n"
                    "max_inbound_connections_per_source = 1000\n" % self.port)
            f.write("[harvest]\ntable_size = 0\n")
            if self.hop_port:
                f.write("[relay \"Office\"]\nhost = 127.0.0.1:%d\ndomains = office.test\n"
                        "starttls = no\nmax_connections = %d\n"
                        "retry_min = 00:00:01\nretry_max = 00:00:01\n" % (self.hop_port, a.hop_connections))
        with open(self.logpath, "wb") as log_f:
            self.proc = subprocess.Popen([self.ctx.args.bin, "-c", self.ini, "run"], stdin=subprocess.DEVNULL,
                                         stdout=log_f, stderr=subprocess.STDOUT)
        self.ctx.started.append(self)
        sbs.wait_ready(self, time.monotonic() + 10)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def pids(self):
        return sbs.process_tree(self.proc.pid) if self.alive() else []

    def cpu(self, user=False):
        return proc_cpu(self.proc.pid, user=user) if self.alive() else 0.0

    def memory(self):
        return sbs.memory(self.pids())

    def queue_files(self):
        d = os.path.join(self.dir, "spool", "queue")
        return sum(1 for n in os.listdir(d) if n.endswith(".env")) if os.path.isdir(d) else 0

    def stored(self):
        return sbs.count_new(os.path.join(self.dir, "spool"))

    def log_text(self):
        with open(self.logpath, errors="replace") as f:
            return f.read()

    def log_tail(self):
        return sbs.tail_file(self.logpath)

    def stop(self):
        if not self.alive():
            return None if self.proc is None else self.proc.returncode
        self.proc.terminate()
        try:
            return self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


class PrivatePostfix(sbs.Postfix):
    """side_by_side's private Postfix (postfix -c DIR, its own queue, smtpd
    on a free high port of 127.0.0.1), started from a main.cf template and
    the lookup tables it names."""

    def start_with(self, template, tables, **kw):
        for d in ("etc", "queue", "data"):
            os.makedirs(os.path.join(self.dir, d))
        pf = pwd.getpwnam("postfix")
        os.chown(os.path.join(self.dir, "data"), pf.pw_uid, pf.pw_gid)
        with open(os.path.join(self.etc, "main.cf"), "w") as f:
            f.write(sbs.fill(template, DIR=self.dir, **kw))
        with open(os.path.join(self.etc, "master.cf"), "w") as f:
            f.write(sbs.fill("postfix-master.cf", PORT=self.port))
        for name, text in tables.items():
            with open(os.path.join(self.etc, name), "w") as f:
                f.write(text)
        for words in (("set-permissions",), ("start",)):
            r = self.postfix(*words)
            if r.returncode != 0:
                raise RuntimeError("postfix %s failed:\n%s" % (words[0], r.stdout[-2000:]))
        self.ctx.started.append(self)
        pidfile = os.path.join(self.dir, "queue", "pid", "master.pid")
        t = time.monotonic()
        while self.master is None and time.monotonic() - t < 20:
            try:
                with open(pidfile) as f:
                    self.master = int(f.read().strip())
            except (OSError, ValueError):
                time.sleep(0.1)
        if self.master is None:
            raise RuntimeError("postfix wrote no master.pid:\n" + self.log_tail())
        sbs.wait_ready(self, time.monotonic() + 20)

    def cpu(self):
        return tree_cpu(self.master) if self.alive() else 0.0


class PostfixRelay(PrivatePostfix):
    """Postfix as a relay for office.test (peers/postfix-relay-main.cf)."""

    def __init__(self, ctx, tag, hop_port):
        super().__init__(ctx, tag)
        self.hop_port = hop_port

    def start(self, nofile=4096):
        self.start_with("postfix-relay-main.cf",
                        {"recipients": "%s OK\n" % RCPT,
                         "transport": "office.test relay:[127.0.0.1]:%d\n" % self.hop_port},
                        HOP=self.hop_port, HOPCONN=self.ctx.args.hop_connections)


class FinalPostfix(PrivatePostfix):
    """The final hop, the mail server behind the relay: Postfix accepting
    office.test and discarding it (peers/postfix-final-main.cf says why).
    count() is the number of messages it has accepted: qmgr's "(queue
    active)" lines, logged when it takes a message that cleanup has
    written, fsynced and committed to the incoming queue — the point of
    smtpd's 250. The log is read on from where the last call stopped."""

    name = "final"

    def __init__(self, ctx, tag):
        super().__init__(ctx, tag)
        self.seen = 0
        self.off = 0
        self.part = b""

    def start(self, nofile=4096):
        self.start_with("postfix-final-main.cf",
                        {"recipients": "%s OK\n" % RCPT, "transport": "office.test discard:\n"})
        return self

    def count(self):
        try:
            with open(self.logpath, "rb") as f:
                f.seek(self.off)
                data = f.read()
        except OSError:
            return self.seen
        self.off += len(data)
        data = self.part + data
        cut = data.rfind(b"\n") + 1
        self.part = data[cut:]
        self.seen += data[:cut].count(b"(queue active)")
        return self.seen

    def wait(self, n, timeout, poll=0.005):
        return wait_count(self.count, n, timeout, lambda: "the final Postfix accepted %d of %d in %d s:\n%s" % (
            self.count(), n, timeout, self.log_tail()), poll)

    def sessions(self):
        """Sessions smtpd has accepted: its "connect from" lines (logged at
        the connect)."""
        try:
            with open(self.logpath, "rb") as f:
                return len(re.findall(rb"(?<!dis)connect from ", f.read()))
        except OSError:
            return 0


# ------------------------------------------------------------ measurements

def smtp_source(port, sessions, messages, size, timeout, cpu=None):
    """Runs smtp-source to the end; its CPU seconds into cpu["s"] (the
    only child reaped meanwhile)."""
    cmd = [SMTP_SOURCE, "-s", str(sessions), "-m", str(messages), "-l", str(size),
           "-f", SENDER, "-t", RCPT, "127.0.0.1:%d" % port]
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout)
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if cpu is not None:
        cpu["s"] = r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime
    if r.returncode != 0:
        raise RuntimeError("%s: exit %d\n%s" % (" ".join(cmd), r.returncode, r.stdout[-1000:]))
    return " ".join(shlex.quote(x) for x in cmd)


HOPS = {"sink": "smtp-sink", "postfix": "Postfix (discard)"}
SYSCALLS = ("fsync", "fdatasync", "syncfs", "openat", "linkat", "renameat", "renameat2", "unlinkat", "write",
            "read", "sendto", "recvfrom", "connect", "epoll_wait")


class SyscallCount:
    """perf stat on the syscall tracepoints of one process (tarpitd): cheap
    enough not to change what it counts, unlike strace."""

    def __init__(self, ctx, pid, tag):
        self.out = os.path.join(ctx.work, "perf-%s.csv" % tag)
        ev = ",".join("syscalls:sys_enter_" + n for n in SYSCALLS)
        self.proc = subprocess.Popen(["perf", "stat", "-x", ",", "-e", ev, "-o", self.out, "-p", str(pid)],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        time.sleep(0.3)  # attached before the first message

    def stop(self):
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(timeout=20)
        counts = {}
        with open(self.out) as f:
            for line in f:
                p = line.strip().split(",")
                if len(p) >= 3 and p[2].startswith("syscalls:sys_enter_"):
                    try:
                        counts[p[2][len("syscalls:sys_enter_"):]] = int(p[0])
                    except ValueError:
                        pass
        return counts


def forward_run(ctx, name, hop):
    """smtp-source -> relay (tarpitd or Postfix) -> next hop (smtp-sink, or
    the final Postfix): messages per second from the start of smtp-source
    until the next hop has accepted all, and each stage's CPU time."""
    a = ctx.args
    ctx.runs += 1
    tag = "fwd%d-%s-%s" % (ctx.runs, hop, name)
    nxt = Sink(ctx, tag).start() if hop == "sink" else FinalPostfix(ctx, "final-" + tag).start()
    srv = Tarpitd(ctx, tag, hop_port=nxt.port) if name == "tarpitd" else PostfixRelay(ctx, tag, nxt.port)
    srv.start()
    perf = None
    try:
        time.sleep(0.2)
        if a.syscalls and name == "tarpitd":
            perf = SyscallCount(ctx, srv.proc.pid, tag)
        load = sbs.read_loadavg()
        src = {}
        c_srv, c_nxt, m0, d0 = srv.cpu(), nxt.cpu(), machine_jiffies(), disk_stat(ctx.work)
        s0 = nxt.sessions()  # the start's port probe
        t0 = time.monotonic()
        cmd = smtp_source(srv.port, a.sessions, a.messages, a.size, a.timeout, src)
        t_src = time.monotonic()
        t_end = nxt.wait(a.messages, a.timeout, poll=0.002)
        m1 = machine_jiffies()
        res = {"server": name, "hop": hop, "cmd": cmd, "messages": a.messages, "load_1min": load[0],
               "accept_s": round(t_src - t0, 3), "end_to_end_s": round(t_end - t0, 3),
               "accept_per_s": round(a.messages / (t_src - t0), 1),
               "end_to_end_per_s": round(a.messages / (t_end - t0), 1),
               "sink_count": nxt.count(),
               "machine_busy": round((m1[0] - m0[0]) / max(1, m1[1] - m0[1]), 3)}
        time.sleep(0.5)
        res["sink_count_after"] = nxt.count()  # duplicates would show here
        # CPU until 0.5 s after the last acceptance: with what each does
        # after it (tarpitd's removals, Postfix's deliveries and discards).
        per = 1000.0 / a.messages
        res["cpu_ms_per_msg"] = {"source": round(src.get("s", 0) * per, 3),
                                 "relay": round((srv.cpu() - c_srv) * per, 3),
                                 "hop": round((nxt.cpu() - c_nxt) * per, 3)}
        d1 = disk_stat(ctx.work)
        if d0 and d1:
            res["disk_per_msg"] = {k: round((d1[k] - d0[k]) / a.messages, 3) for k in d0}
        if perf:
            counts, perf = perf.stop(), None
            res["syscalls_per_msg"] = {k: round(v / a.messages, 3) for k, v in counts.items() if v}
        # Sessions the relay opened to the next hop, per message (each costs
        # the next hop a connect, EHLO and QUIT). smtp-sink counts a session
        # at its end: the relay is stopped first, and its cached sessions
        # counted once they are closed.
        if hop == "sink":
            srv.stop()
            t_s, last = time.monotonic(), -1
            while nxt.sessions() != last and time.monotonic() - t_s < 5:
                last = nxt.sessions()
                time.sleep(0.3)
        res["hop_sessions_per_msg"] = round((nxt.sessions() - s0) / a.messages, 4)
        return res
    finally:
        if perf:
            perf.stop()
        srv.stop()
        nxt.stop()


def pct(xs, p):
    xs = sorted(xs)
    if not xs:
        return None
    k = (len(xs) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def summary(xs):
    return {"n": len(xs), "p50": round(pct(xs, 50), 2), "p90": round(pct(xs, 90), 2),
            "p99": round(pct(xs, 99), 2), "max": round(max(xs), 2), "min": round(min(xs), 2)}


def log_ts(s):
    return datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").timestamp() * 1000.0


def latency_run(ctx, name):
    a = ctx.args
    sink = Sink(ctx, "lat-" + name).start()
    srv = Tarpitd(ctx, "lat", hop_port=sink.port, log_level="info") if name == "tarpitd" else \
        PostfixRelay(ctx, "lat", sink.port)
    srv.start()
    body = ("From: <%s>\r\nTo: <%s>\r\nSubject: latency\r\n\r\n" % (SENDER, RCPT)) + \
        ("x" * 70 + "\r\n") * 56  # about 4 KB
    client_ms = []
    try:
        c = smtplib.SMTP("127.0.0.1", srv.port, local_hostname="client.bench", timeout=30)
        c.ehlo()
        for i in range(a.latency_messages):
            n = sink.count()
            c.mail(SENDER)
            c.rcpt(RCPT)
            code, _ = c.data(body.encode())
            t250 = time.monotonic()
            if code != 250:
                raise RuntimeError("DATA answered %d" % code)
            t_sink = sink.wait(n + 1, 30, poll=0.0002)
            client_ms.append((t_sink - t250) * 1000.0)
            time.sleep(0.05)  # the outbound session ends: the queue is idle again
        c.quit()
        res = {"server": name, "messages": a.latency_messages, "client_250_to_sink_ms": summary(client_ms)}
        if name == "tarpitd":
            text = srv.log_text()
            acc = {m.group(2): log_ts(m.group(1)) for m in
                   re.finditer(r"^(\S+) info: event=accepted .*queue_id=(\w+)", text, re.M)}
            sent = {m.group(2): log_ts(m.group(1)) for m in
                    re.finditer(r"^(\S+) info: event=relay id=(\w+) .*status=sent", text, re.M)}
            logged = [sent[k] - acc[k] for k in acc if k in sent]
            res["log_accepted_to_sent_ms"] = summary(logged)
        return res
    finally:
        srv.stop()
        sink.stop()


def queued_run(ctx):
    a = ctx.args
    res = {"queued": a.queued}
    # The reference: no [relay], the recipient is a local mailbox.
    local = Tarpitd(ctx, "q-local")
    local.start()
    try:
        t0, c0, u0 = time.monotonic(), local.cpu(), local.cpu(user=True)
        smtp_source(local.port, a.sessions, a.queued, a.size, a.timeout)
        dt = time.monotonic() - t0
        res["no_relay"] = {"accept_s": round(dt, 3), "accept_per_s": round(a.queued / dt, 1),
                           "cpu_ms_per_msg": round(1000 * (local.cpu() - c0) / a.queued, 3),
                           "user_ms_per_msg": round(1000 * (local.cpu(user=True) - u0) / a.queued, 3),
                           "stored": local.stored()}
    finally:
        local.stop()
    hop_port = sbs.free_port()  # nothing listens there yet: the next hop is down
    srv = Tarpitd(ctx, "q-gw", hop_port=hop_port, control=True)
    srv.start()
    sink = Sink(ctx, "q", port=hop_port)
    try:
        time.sleep(0.3)
        res["idle"] = srv.memory()
        t0, c0, u0 = time.monotonic(), srv.cpu(), srv.cpu(user=True)
        cmd = smtp_source(srv.port, a.sessions, a.queued, a.size, a.timeout)
        dt = time.monotonic() - t0
        res["cmd"] = cmd
        res["hop_down"] = {"accept_s": round(dt, 3), "accept_per_s": round(a.queued / dt, 1),
                           "cpu_ms_per_msg": round(1000 * (srv.cpu() - c0) / a.queued, 3),
                           "user_ms_per_msg": round(1000 * (srv.cpu(user=True) - u0) / a.queued, 3),
                           "queue_files": srv.queue_files()}
        time.sleep(1.0)
        res["queued_mem"] = srv.memory()
        res["accept_ratio"] = round(res["hop_down"]["accept_per_s"] / res["no_relay"]["accept_per_s"], 3)
        # The next hop comes back: the hop's retry (retry_min = retry_max =
        # 1 s) probes it within a second, then the queue drains.
        t_up, c_up, u_up = time.monotonic(), srv.cpu(), srv.cpu(user=True)
        sink.start()
        t_first = None
        t = time.monotonic()
        while sink.count() < a.queued and time.monotonic() - t < a.timeout:
            if t_first is None and sink.count() > 0:
                t_first = time.monotonic()
            time.sleep(0.005)
        t_all, c_all, u_all = time.monotonic(), srv.cpu(), srv.cpu(user=True)
        if sink.count() < a.queued:
            raise RuntimeError("drain: smtp-sink counted %d of %d" % (sink.count(), a.queued))
        while srv.queue_files() and time.monotonic() - t < a.timeout:
            time.sleep(0.01)
        t_empty = time.monotonic()
        time.sleep(0.5)
        res["drain"] = {"to_all_at_sink_s": round(t_all - t_up, 3),
                        "first_at_sink_s": round((t_first or t_all) - t_up, 3),
                        "from_first_s": round(t_all - (t_first or t_all), 3),
                        "per_s_from_first": round(a.queued / max(t_all - (t_first or t_up), 1e-3), 1),
                        "cpu_ms_per_msg": round(1000 * (c_all - c_up) / a.queued, 3),
                        "user_ms_per_msg": round(1000 * (u_all - u_up) / a.queued, 3),
                        "queue_empty_s": round(t_empty - t_up, 3),
                        "sink_count": sink.count(), "queue_files_left": srv.queue_files()}
        res["drained_mem"] = srv.memory()
        res["table_bytes"] = a.queued * a.queue_entry_bytes
        return res
    finally:
        srv.stop()
        sink.stop()


# ------------------------------------------------------------------ output

def fmt(v):
    return "{:,}".format(v) if isinstance(v, int) else str(v)


def markdown(r):
    a = r["args"]
    out = []
    out.append("Machine: %s; nproc %s; kernel %s; load %s at the start." % (
        r["cpu"], r["nproc"], r["kernel"], " ".join(map(str, r["load_start"]))))
    out.append("")
    for hop in HOPS:
        runs = [x for x in r["forward"] if x["hop"] == hop]
        if not runs:
            continue
        out.append("#### Forwarding throughput, next hop %s (smtp-source -s %d -m %d -l %d, one message "
                   "per session; %d sessions to the next hop)" % (
                       HOPS[hop], a["sessions"], a["messages"], a["size"], a["hop_connections"]))
        out.append("")
        out.append("End-to-end messages/s: from the start of smtp-source until the next hop has accepted "
                   "all %s." % fmt(a["messages"]))
        out.append("")
        out.append("| run | relay | 1-min load | accepted in s | all at the next hop in s | end-to-end messages/s "
                   "| CPU busy | CPU ms/message: smtp-source, relay, next hop | disk/message: writes, discards, "
                   "flushes, busy ms | next hop's count (0.5 s later) | sessions to the next hop per message |")
        out.append("|---|---|---:|---:|---:|---:|---:|---|---|---|---:|")
        for x in runs:
            c = x["cpu_ms_per_msg"]
            d = x.get("disk_per_msg")
            out.append("| %d | %s | %s | %s | %s | %s | %.0f %% | %s, %s, %s | %s | %d (%d) | %s |" % (
                x["rep"], x["server"], x["load_1min"], x["accept_s"], x["end_to_end_s"],
                fmt(x["end_to_end_per_s"]), 100 * x["machine_busy"], c["source"], c["relay"], c["hop"],
                "%s, %s, %s, %s" % (d["writes"], d["discards"], d["flushes"], d["busy_ms"]) if d else "–",
                x["sink_count"], x["sink_count_after"], x.get("hop_sessions_per_msg", "–")))
        out.append("")
        sc = [x for x in runs if "syscalls_per_msg" in x]
        if sc:
            names = [n for n in SYSCALLS if any(n in x["syscalls_per_msg"] for x in sc)]
            out.append("tarpitd's system calls per forwarded message (perf stat):")
            out.append("")
            out.append("| run | " + " | ".join(names) + " | syncs (fsync + fdatasync + syncfs) |")
            out.append("|---|" + "---:|" * (len(names) + 1))
            for x in sc:
                c = x["syscalls_per_msg"]
                out.append("| %d | %s | %.2f |" % (x["rep"], " | ".join(str(c.get(n, 0)) for n in names),
                                                  sum(c.get(n, 0) for n in ("fsync", "fdatasync", "syncfs"))))
            out.append("")
        med = forward_medians(r, hop)
        if med:
            out.append("Median of %d runs: tarpitd %s, Postfix %s messages/s: **%.2f×**; CPU ms per message "
                       "(smtp-source + relay + next hop) tarpitd set-up %s, Postfix set-up %s." % (
                           med["runs"], fmt(med["tarpitd"]), fmt(med["postfix"]), med["ratio"],
                           med["cpu_tarpitd"], med["cpu_postfix"]))
            out.append("")
    out.append("#### Latency, the relay's 250 to the next hop (%d single messages, queue idle), ms" %
               a["latency_messages"])
    out.append("")
    out.append("| relay | measured | p50 | p90 | p99 | max |")
    out.append("|---|---|---:|---:|---:|---:|")
    for x in r["latency"]:
        rows = [("client's 250 → smtp-sink counted it", x["client_250_to_sink_ms"])]
        if "log_accepted_to_sent_ms" in x:
            rows.append(("log: event=accepted → event=relay status=sent", x["log_accepted_to_sent_ms"]))
        for what, s in rows:
            out.append("| %s | %s | %s | %s | %s | %s |" % (x["server"], what, s["p50"], s["p90"], s["p99"], s["max"]))
    q = r.get("queued")
    if q:
        out.append("")
        out.append("#### %s messages queued with the next hop down (tarpitd, max_queued = %s)" %
                   (fmt(q["queued"]), fmt(q["queued"])))
        out.append("")
        kib = 1024
        d_pd = q["queued_mem"]["Private_Dirty"] - q["idle"]["Private_Dirty"]
        d_rss = q["queued_mem"]["Rss"] - q["idle"]["Rss"]
        out.append("| | Rss | Private_Dirty | Pss |")
        out.append("|---|---:|---:|---:|")
        for label, m in (("idle", q["idle"]), ("%s queued" % fmt(q["queued"]), q["queued_mem"]),
                         ("drained", q["drained_mem"])):
            out.append("| %s | %s KiB | %s KiB | %s KiB |" % (label, fmt(m["Rss"]), fmt(m["Private_Dirty"]),
                                                          fmt(m["Pss"])))
        out.append("")
        out.append("Growth idle → queued: Rss %+d KiB, Private_Dirty %+d KiB. The fixed queue table "
                   "(%s B: %d B per entry × %s) is allocated at start and counted in the idle figure "
                   "as far as it is resident then." % (
                       d_rss, d_pd, fmt(q["table_bytes"]), a["queue_entry_bytes"], fmt(q["queued"])))
        out.append("")
        out.append("| accept run (smtp-source -s %d -m %d -l %d) | s | messages/s | tarpitd CPU ms/message "
                   "(user + system) | of it user |" % (a["sessions"], q["queued"], a["size"]))
        out.append("|---|---:|---:|---:|---:|")
        for label, x in (("no [relay] (stored in the Maildir)", q["no_relay"]),
                         ("[relay], next hop down (queued)", q["hop_down"])):
            out.append("| %s | %s | %s | %s | %s |" % (label, x["accept_s"], fmt(x["accept_per_s"]),
                                                      x.get("cpu_ms_per_msg", ""), x.get("user_ms_per_msg", "")))
        out.append("")
        out.append("Accept throughput with the hop down: %.0f %% of the no-relay figure." %
                   (100 * q["accept_ratio"]))
        d = q["drain"]
        out.append("")
        out.append("Drain after smtp-sink came up: first message at the sink after %s s (the hop's "
                   "1 s retry), all %s after %s s (%s s from the first, %s messages/s); queue "
                   "directory empty after %s s; sink count %s, queue files left %d; tarpitd's CPU "
                   "%s ms per message while draining (user %s ms)." % (
                       d["first_at_sink_s"], fmt(q["queued"]), d["to_all_at_sink_s"], d["from_first_s"],
                       fmt(d["per_s_from_first"]), d["queue_empty_s"], fmt(d["sink_count"]),
                       d["queue_files_left"], d.get("cpu_ms_per_msg", ""), d.get("user_ms_per_msg", "")))
    return "\n".join(out) + "\n"


def forward_medians(r, hop):
    """The medians over the runs of one next hop (None without both relays)."""
    by = {}
    for x in r["forward"]:
        if x["hop"] == hop:
            by.setdefault(x["server"], []).append(x)
    if "tarpitd" not in by or "postfix" not in by:
        return None
    rate = {k: statistics.median(x["end_to_end_per_s"] for x in v) for k, v in by.items()}
    cpu = {k: round(statistics.median(sum(x["cpu_ms_per_msg"].values()) for x in v), 3) for k, v in by.items()}
    return {"runs": len(by["tarpitd"]), "tarpitd": rate["tarpitd"], "postfix": rate["postfix"],
            "ratio": rate["tarpitd"] / rate["postfix"], "cpu_tarpitd": cpu["tarpitd"], "cpu_postfix": cpu["postfix"]}


def goals(r):
    out = []
    for hop in HOPS:
        med = forward_medians(r, hop)
        if med:
            out.append(("forwarding ≥ 2× Postfix (next hop %s, median of %d)" % (HOPS[hop], med["runs"]),
                        "%.2f×" % med["ratio"], med["ratio"] >= 2))
    for x in r["latency"]:
        if x["server"] == "tarpitd":
            p = x["client_250_to_sink_ms"]["p50"]
            out.append(("latency p50 < 20 ms", "%s ms (log: %s ms)" % (p, x["log_accepted_to_sent_ms"]["p50"]), p < 20))
    q = r.get("queued")
    if q:
        grow = q["queued_mem"]["Private_Dirty"] - q["idle"]["Private_Dirty"]
        out.append(("memory with %s queued within 1 MiB of idle (plus the table)" % fmt(q["queued"]),
                    "%+d KiB Private_Dirty (table %d KiB)" % (grow, q["table_bytes"] // 1024),
                    abs(grow) <= 1024 + q["table_bytes"] // 1024))
        out.append(("accept with hop down ≥ 80 %", "%.0f %%" % (100 * q["accept_ratio"]), q["accept_ratio"] >= 0.8))
    lines = ["| goal | measured | |", "|---|---|---|"]
    lines += ["| %s | %s | %s |" % (g, m, "met" if ok else "missed") for g, m, ok in out]
    return "\n".join(lines) + "\n"


def machine():
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"cpu": cpu, "nproc": os.cpu_count(), "kernel": " ".join(os.uname()[2:3] + os.uname()[4:5]),
            "load_start": sbs.read_loadavg()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", default=DEFAULT_BIN)
    ap.add_argument("--messages", type=int, default=2000)
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--sessions", type=int, default=10, help="smtp-source sessions")
    ap.add_argument("--hop-connections", type=int, default=10,
                    help="sessions to the next hop: tarpitd max_connections and Postfix's "
                         "default_destination_concurrency_limit")
    ap.add_argument("--latency-messages", type=int, default=200)
    ap.add_argument("--queued", type=int, default=10000)
    ap.add_argument("--queue-entry-bytes", type=int, default=44,
                    help="sizeof(struct queue_entry) in src/queue.c (24 + 4*4 + 2, padded)")
    ap.add_argument("--timeout", type=int, default=300)
    ap.add_argument("--skip", default="", help="comma list of forward,latency,queued,postfix")
    ap.add_argument("--hops", default="sink,postfix",
                    help="next hops of the forwarding runs: sink (smtp-sink), postfix (a private Postfix "
                         "that discards)")
    ap.add_argument("--repeat", type=int, default=1, help="forwarding runs per relay and next hop")
    ap.add_argument("--syscalls", action="store_true",
                    help="count tarpitd's system calls per forwarded message (perf stat on its tracepoints)")
    ap.add_argument("--json")
    ap.add_argument("--markdown")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    args.bin = os.path.abspath(args.bin)
    if os.geteuid() != 0:
        raise SystemExit("relay_bench.py needs root (a private Postfix's master runs as root)")
    for p in (args.bin, SMTP_SOURCE, SMTP_SINK, "/usr/sbin/postfix"):
        if not os.access(p, os.X_OK):
            raise SystemExit("missing %s (make; apt-get install postfix)" % p)
    if args.syscalls and not shutil.which("perf"):
        raise SystemExit("--syscalls needs perf (apt-get install linux-perf)")
    skip = set(s for s in args.skip.split(",") if s)
    hops = [h for h in args.hops.split(",") if h]
    if not hops or any(h not in HOPS for h in hops):
        raise SystemExit("--hops: a comma list of %s" % ",".join(HOPS))
    servers = ["tarpitd"] + ([] if "postfix" in skip else ["postfix"])
    work = tempfile.mkdtemp(prefix="relay_bench.")
    os.chmod(work, 0o755)
    ctx = Ctx(work, args)
    r = dict(machine(), args=vars(args), forward=[], latency=[])
    t_start = time.monotonic()
    try:
        if "forward" not in skip:
            # Interleaved, so that the load of the shared machine falls
            # on both relays alike.
            for rep in range(1, args.repeat + 1):
                for hop in hops:
                    for name in servers:
                        log("forward %d/%d, next hop %s: %s" % (rep, args.repeat, hop, name))
                        x = forward_run(ctx, name, hop)
                        x["rep"] = rep
                        r["forward"].append(x)
        if "latency" not in skip:
            for name in servers:
                log("latency: %s" % name)
                r["latency"].append(latency_run(ctx, name))
        if "queued" not in skip:
            log("queued: %d with the next hop down" % args.queued)
            r["queued"] = queued_run(ctx)
    finally:
        for s in reversed(ctx.started):
            try:
                s.stop()
            except Exception as e:  # keep cleaning up
                log("stop: %s" % e)
        if args.keep:
            log("kept %s" % work)
        else:
            shutil.rmtree(work, ignore_errors=True)
    r["load_end"] = sbs.read_loadavg()
    r["wall_s"] = round(time.monotonic() - t_start, 1)
    text = markdown(r) + "\n" + goals(r)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(r, f, indent=1)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
