#!/usr/bin/python3
"""relay_bench: tarpitd as a gateway (SPEC §10, issue 15) against Postfix
as a relay, measured in one run on 127.0.0.1.

Next hop for both: Postfix's smtp-sink (stores nothing, answers at once),
so what is measured is the relay in between. Every server is a private
instance on a free high port in a temporary directory.

  forward     smtp-source -s S -m M -l L -> relay -> smtp-sink -c: messages
              per second from the start of smtp-source until the sink has
              counted all M ("mesg=" of -c), for tarpitd ([relay "Office"]
              for office.test) and for Postfix (relay_domains = office.test,
              transport_maps office.test -> relay:[127.0.0.1]:SINK).
              Both sync the message before their 250: tarpitd its queue
              files and directory (SPEC §5, §10), Postfix's cleanup fsyncs
              the queue file (its default; Postfix does not sync the
              directory nor the removal after delivery, tarpitd does both).
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

  python3 host-tests/bench/relay_bench.py [--json FILE] [--markdown FILE]
"""
import argparse
import json
import os
import pwd
import re
import shlex
import shutil
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


class Ctx:
    def __init__(self, work, args):
        self.work = work
        self.args = args
        self.started = []
        self.tarpit = 0  # side_by_side.Postfix reads it; unused here


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
        t = time.monotonic()
        while time.monotonic() - t < timeout:
            if self.count() >= n:
                return time.monotonic()
            time.sleep(poll)
        raise RuntimeError("smtp-sink counted %d of %d in %d s" % (self.count(), n, timeout))

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

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


class PostfixRelay(sbs.Postfix):
    """side_by_side's private Postfix, configured as a relay for office.test."""

    def __init__(self, ctx, tag, hop_port):
        super().__init__(ctx, tag)
        self.hop_port = hop_port

    def start(self, nofile=4096):
        for d in ("etc", "queue", "data"):
            os.makedirs(os.path.join(self.dir, d))
        pf = pwd.getpwnam("postfix")
        os.chown(os.path.join(self.dir, "data"), pf.pw_uid, pf.pw_gid)
        with open(os.path.join(self.etc, "main.cf"), "w") as f:
            f.write(sbs.fill("postfix-relay-main.cf", DIR=self.dir, HOP=self.hop_port,
                             HOPCONN=self.ctx.args.hop_connections))
        with open(os.path.join(self.etc, "master.cf"), "w") as f:
            f.write(sbs.fill("postfix-master.cf", PORT=self.port))
        with open(os.path.join(self.etc, "recipients"), "w") as f:
            f.write("%s OK\n" % RCPT)
        with open(os.path.join(self.etc, "transport"), "w") as f:
            f.write("office.test relay:[127.0.0.1]:%d\n" % self.hop_port)
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


# ------------------------------------------------------------ measurements

def smtp_source(port, sessions, messages, size, timeout):
    cmd = [SMTP_SOURCE, "-s", str(sessions), "-m", str(messages), "-l", str(size),
           "-f", SENDER, "-t", RCPT, "127.0.0.1:%d" % port]
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError("%s: exit %d\n%s" % (" ".join(cmd), r.returncode, r.stdout[-1000:]))
    return " ".join(shlex.quote(x) for x in cmd)


def forward_run(ctx, name):
    a = ctx.args
    sink = Sink(ctx, "fwd-" + name).start()
    srv = Tarpitd(ctx, "fwd", hop_port=sink.port) if name == "tarpitd" else \
        PostfixRelay(ctx, "fwd", sink.port)
    srv.start()
    try:
        t0 = time.monotonic()
        cmd = smtp_source(srv.port, a.sessions, a.messages, a.size, a.timeout)
        t_src = time.monotonic()
        t_end = sink.wait(a.messages, a.timeout, poll=0.002)
        res = {"server": name, "cmd": cmd, "messages": a.messages,
               "accept_s": round(t_src - t0, 3), "end_to_end_s": round(t_end - t0, 3),
               "accept_per_s": round(a.messages / (t_src - t0), 1),
               "end_to_end_per_s": round(a.messages / (t_end - t0), 1),
               "sink_count": sink.count()}
        time.sleep(0.5)
        res["sink_count_after"] = sink.count()  # duplicates would show here
        return res
    finally:
        srv.stop()
        sink.stop()


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
        t0 = time.monotonic()
        smtp_source(local.port, a.sessions, a.queued, a.size, a.timeout)
        dt = time.monotonic() - t0
        res["no_relay"] = {"accept_s": round(dt, 3), "accept_per_s": round(a.queued / dt, 1),
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
        t0 = time.monotonic()
        cmd = smtp_source(srv.port, a.sessions, a.queued, a.size, a.timeout)
        dt = time.monotonic() - t0
        res["cmd"] = cmd
        res["hop_down"] = {"accept_s": round(dt, 3), "accept_per_s": round(a.queued / dt, 1),
                           "queue_files": srv.queue_files()}
        time.sleep(1.0)
        res["queued_mem"] = srv.memory()
        res["accept_ratio"] = round(res["hop_down"]["accept_per_s"] / res["no_relay"]["accept_per_s"], 3)
        # The next hop comes back: the hop's retry (retry_min = retry_max =
        # 1 s) probes it within a second, then the queue drains.
        t_up = time.monotonic()
        sink.start()
        t_first = None
        t = time.monotonic()
        while sink.count() < a.queued and time.monotonic() - t < a.timeout:
            if t_first is None and sink.count() > 0:
                t_first = time.monotonic()
            time.sleep(0.005)
        t_all = time.monotonic()
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
    out.append("#### Forwarding throughput (smtp-source -s %d -m %d -l %d, one message per session; "
               "%d sessions to the next hop)" % (a["sessions"], a["messages"], a["size"], a["hop_connections"]))
    out.append("")
    out.append("| relay | accepted in s | accepted/s | all at the next hop in s | end-to-end messages/s | "
               "tarpitd / Postfix | sink count (0.5 s later) |")
    out.append("|---|---:|---:|---:|---:|---:|---|")
    fw = {x["server"]: x for x in r["forward"]}
    for name in ("tarpitd", "postfix"):
        x = fw.get(name)
        if not x:
            continue
        ratio = round(fw["tarpitd"]["end_to_end_per_s"] / x["end_to_end_per_s"], 2) if "tarpitd" in fw else "–"
        out.append("| %s | %s | %s | %s | %s | %s | %d (%d) |" % (
            name, x["accept_s"], fmt(x["accept_per_s"]), x["end_to_end_s"], fmt(x["end_to_end_per_s"]),
            ratio, x["sink_count"], x["sink_count_after"]))
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
        out.append("| accept run (smtp-source -s %d -m %d -l %d) | s | messages/s |" % (
            a["sessions"], q["queued"], a["size"]))
        out.append("|---|---:|---:|")
        out.append("| no [relay] (stored in the Maildir) | %s | %s |" % (q["no_relay"]["accept_s"],
                                                                          fmt(q["no_relay"]["accept_per_s"])))
        out.append("| [relay], next hop down (queued) | %s | %s |" % (q["hop_down"]["accept_s"],
                                                                     fmt(q["hop_down"]["accept_per_s"])))
        out.append("")
        out.append("Accept throughput with the hop down: %.0f %% of the no-relay figure." %
                   (100 * q["accept_ratio"]))
        d = q["drain"]
        out.append("")
        out.append("Drain after smtp-sink came up: first message at the sink after %s s (the hop's "
                   "1 s retry), all %s after %s s (%s s from the first, %s messages/s); queue "
                   "directory empty after %s s; sink count %s, queue files left %d." % (
                       d["first_at_sink_s"], fmt(q["queued"]), d["to_all_at_sink_s"], d["from_first_s"],
                       fmt(d["per_s_from_first"]), d["queue_empty_s"], fmt(d["sink_count"]),
                       d["queue_files_left"]))
    return "\n".join(out) + "\n"


def goals(r):
    out = []
    fw = {x["server"]: x for x in r["forward"]}
    if "tarpitd" in fw and "postfix" in fw:
        k = fw["tarpitd"]["end_to_end_per_s"] / fw["postfix"]["end_to_end_per_s"]
        out.append(("forwarding ≥ 2× Postfix", "%.2f×" % k, k >= 2))
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
    ap.add_argument("--queue-entry-bytes", type=int, default=40,
                    help="sizeof(struct queue_entry) in src/queue.c (24 + 3*4 + 1, padded)")
    ap.add_argument("--timeout", type=int, default=300)
    ap.add_argument("--skip", default="", help="comma list of forward,latency,queued,postfix")
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
    skip = set(s for s in args.skip.split(",") if s)
    servers = ["tarpitd"] + ([] if "postfix" in skip else ["postfix"])
    work = tempfile.mkdtemp(prefix="relay_bench.")
    os.chmod(work, 0o755)
    ctx = Ctx(work, args)
    r = dict(machine(), args=vars(args), forward=[], latency=[])
    t_start = time.monotonic()
    try:
        if "forward" not in skip:
            for name in servers:
                log("forward: %s" % name)
                r["forward"].append(forward_run(ctx, name))
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
