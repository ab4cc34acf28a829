#!/usr/bin/python3
"""side_by_side: tarpitd, Postfix and OpenSMTPD measured in one run.

Three measurements, every server on 127.0.0.1 of this machine, each
configured as a receive-only server for the same recipient list that
refuses unknown recipients at RCPT time:

  hold        N = 100, 1,000, 10,000 clients each waiting on a delayed 550
              (EHLO, MAIL, RCPT to an unknown user): how many each server
              holds at once, the Pss of all its processes, and the latency
              of a valid delivery meanwhile;
  throughput  smtp-source -s 20 -m 5000 -l 4096 against each server (and
              smtp-sink, which stores nothing, as the upper bound), one
              message per session and with -d (back to back);
  syncs       fsync & co. per message and per process, counted by strace
              while messages arrive (what each server's 250 stands on);
  callgrind   instructions per delivered message for tarpitd under
              valgrind --tool=callgrind.

tarpitd runs with [harvest] table_size = 0 (--harvest on for its defaults):
the peers have no such cross-connection memory. Postfix's tarpit is a
"sleep T" restriction before reject_unlisted_recipient (see
peers/postfix-main.cf for why smtpd_error_sleep_time cannot do it).

Not a test: a bounded script (--deadline) that cleans up after itself. It
needs root. It installs what is missing with apt-get (postfix brings
smtp-source and smtp-sink; OpenSMTPD conflicts with Postfix as a Debian
package, so its .deb is fetched with `apt-get download` and unpacked into
the temporary directory, and its two system users are created as its
postinst would). Everything then runs inside `unshare --net --mount --pid`:
a network namespace with only a loopback interface (no packet can leave
127.0.0.0/8, no DNS query reaches a resolver), a mount namespace in which a
temporary directory is bound over /var/spool and /run and the unpacked
OpenSMTPD is overlaid on /usr/libexec and /var/lib (its compiled-in paths),
and a PID namespace whose end kills every server that is still running.

  /usr/bin/python3 host-tests/bench/side_by_side.py --out-json /tmp/sbs.json \
      --markdown /tmp/sbs.md
"""
import argparse
import errno
import hashlib
import heapq
import json
import os
import pwd
import re
import resource
import selectors
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

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
PEERS = os.path.join(HERE, "peers")
DEFAULT_BIN = os.path.join(ROOT, "build", "host", "tarpitd")
PYTHON = sys.executable or "/usr/bin/python3"
RECIPIENTS = ["alice@example.org", "bob@example.org", "carol@example.org"]
VALID_RCPT = "alice@example.org"
UNKNOWN_RCPT = "nobody@example.org"
SMTP_SOURCE = "/usr/sbin/smtp-source"
SMTP_SINK = "/usr/sbin/smtp-sink"
IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)
MESSAGE = (b"From: bench <bench@b.org>\r\nTo: alice@example.org\r\n"
           b"Subject: side_by_side\r\n\r\nhello while the harvesters wait\r\n")
SERVERS = ("tarpitd", "postfix", "opensmtpd")


def log(msg):
    print("[%s] %s" % (time.strftime("%H:%M:%S"), msg), file=sys.stderr, flush=True)


# ---------------------------------------------------------------- outer part

def run_quiet(cmd, **kw):
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, **kw)


def have_postfix():
    return all(os.access(p, os.X_OK) for p in ("/usr/sbin/postfix", SMTP_SOURCE, SMTP_SINK))


def apt_install(pkgs, preseed=()):
    """apt-get install with service starts forbidden (policy-rc.d) during it."""
    policy = "/usr/sbin/policy-rc.d"
    made_policy = False
    if not os.path.exists(policy):
        with open(policy, "w") as f:
            f.write("#!/bin/sh\n# side_by_side.py: no service starts while it installs\nexit 101\n")
        os.chmod(policy, 0o755)
        made_policy = True
    try:
        for line in preseed:
            subprocess.run(["debconf-set-selections"], input=line + "\n", text=True, check=True)
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        r = run_quiet(["apt-get", "install", "-y", "-q", "--no-install-recommends"] + list(pkgs),
                      env=env, timeout=900)
        if r.returncode != 0:
            log("apt-get update first")
            run_quiet(["apt-get", "update", "-q"], timeout=600)
            r = run_quiet(["apt-get", "install", "-y", "-q", "--no-install-recommends"] + list(pkgs),
                          env=env, timeout=900)
        if r.returncode != 0:
            raise RuntimeError("apt-get install %s failed:\n%s" % (" ".join(pkgs), r.stdout[-3000:]))
    finally:
        if made_policy:
            os.unlink(policy)


def stop_system_mta():
    """The package must not leave its own instance on port 25."""
    if os.path.exists("/etc/postfix/main.cf"):
        run_quiet(["postfix", "stop"], timeout=60)
    for pid in pids_listening(25):
        log("stopping pid %d listening on port 25" % pid)
        try:
            os.kill(pid, signal.SIGTERM)
        except OSError:
            pass


def pids_listening(port):
    inodes = set()
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as f:
                next(f)
                for line in f:
                    p = line.split()
                    if p[3] == "0A" and int(p[1].rsplit(":", 1)[1], 16) == port:
                        inodes.add(p[9])
        except OSError:
            pass
    out = []
    if not inodes:
        return out
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            for fd in os.listdir("/proc/%s/fd" % d):
                link = os.readlink("/proc/%s/fd/%s" % (d, fd))
                if link.startswith("socket:[") and link[8:-1] in inodes:
                    out.append(int(d))
                    break
        except OSError:
            continue
    return out


def find_opensmtpd_deb(args, setup):
    if args.opensmtpd_deb:
        return os.path.abspath(args.opensmtpd_deb)
    cache = "/var/cache/apt/archives"
    debs = sorted(f for f in os.listdir(cache) if f.startswith("opensmtpd_") and f.endswith(".deb"))
    if debs:
        return os.path.join(cache, debs[-1])
    if args.no_install:
        raise RuntimeError("no opensmtpd .deb in %s; give --opensmtpd-deb or drop --no-install" % cache)
    log("apt-get download opensmtpd (into %s)" % cache)
    r = run_quiet(["apt-get", "download", "opensmtpd"], cwd=cache, timeout=600)
    if r.returncode != 0:
        run_quiet(["apt-get", "update", "-q"], timeout=600)
        r = run_quiet(["apt-get", "download", "opensmtpd"], cwd=cache, timeout=600)
    if r.returncode != 0:
        raise RuntimeError("apt-get download opensmtpd failed:\n" + r.stdout[-2000:])
    setup.append("apt-get download opensmtpd")
    debs = sorted(f for f in os.listdir(cache) if f.startswith("opensmtpd_") and f.endswith(".deb"))
    if not debs:
        raise RuntimeError("apt-get download opensmtpd left no .deb in " + cache)
    return os.path.join(cache, debs[-1])


def ensure_users(setup):
    """The users OpenSMTPD drops to, made as its Debian postinst makes them."""
    for name, gecos in (("opensmtpd", "OpenSMTPD Daemon"), ("opensmtpq", "OpenSMTPD queue user")):
        try:
            pwd.getpwnam(name)
            continue
        except KeyError:
            pass
        if run_quiet(["id", "-g", name]).returncode != 0:
            subprocess.run(["addgroup", "--system", name], check=True, stdout=subprocess.DEVNULL)
        subprocess.run(["adduser", "--system", "--home", "/var/lib/opensmtpd/empty",
                        "--no-create-home", "--disabled-password", "--gecos", gecos,
                        "--ingroup", name, name], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        setup.append("adduser --system %s" % name)


def ensure_tools(args, servers):
    setup = []
    if "postfix" in servers or not args.skip_throughput:
        if not have_postfix():
            if args.no_install:
                raise RuntimeError("postfix (smtp-source, smtp-sink) is not installed")
            log("apt-get install postfix (debconf: No configuration; service starts forbidden)")
            apt_install(["postfix"], preseed=[
                "postfix postfix/main_mailer_type select No configuration"])
            setup.append("apt-get install postfix")
            stop_system_mta()
    if not args.skip_callgrind and not shutil.which("valgrind"):
        if args.no_install:
            raise RuntimeError("valgrind is not installed")
        apt_install(["valgrind"])
        setup.append("apt-get install valgrind")
    deb = None
    if "opensmtpd" in servers:
        if not os.path.exists("/usr/lib/x86_64-linux-gnu/libevent-2.1.so.7") and \
                run_quiet(["sh", "-c", "ldconfig -p | grep -q libevent-2.1.so.7"]).returncode != 0:
            if args.no_install:
                raise RuntimeError("libevent-2.1-7 (for OpenSMTPD) is not installed")
            apt_install(["libevent-2.1-7"])
            setup.append("apt-get install libevent-2.1-7")
        deb = find_opensmtpd_deb(args, setup)
        ensure_users(setup)
    return deb, setup


def wait_for_load(limit, longest):
    """Waits until the 1-minute load average is below limit (at most longest s)."""
    t0 = time.monotonic()
    first = read_loadavg()
    while read_loadavg()[0] > limit and time.monotonic() - t0 < longest:
        time.sleep(10)
    return {"limit": limit, "at_start": first, "waited_s": round(time.monotonic() - t0),
            "when_started": read_loadavg()}


def read_loadavg():
    with open("/proc/loadavg") as f:
        p = f.read().split()
    return [float(p[0]), float(p[1]), float(p[2])]


def outer(args, argv):
    if os.geteuid() != 0:
        raise SystemExit("side_by_side.py needs root (namespaces, Postfix, OpenSMTPD)")
    servers = [s for s in args.servers.split(",") if s]
    for s in servers:
        if s not in SERVERS:
            raise SystemExit("unknown server %r (choose from %s)" % (s, ",".join(SERVERS)))
    for tool in ("unshare", "ip", "script"):
        if not shutil.which(tool):
            raise SystemExit("%s is needed" % tool)
    if not os.access(args.bin, os.X_OK):
        raise SystemExit("no tarpitd binary at %s (run make)" % args.bin)
    deb, setup = ensure_tools(args, servers)
    load = wait_for_load(args.max_load, args.load_wait) if args.max_load > 0 else None
    if load:
        log("load %s (limit %s, waited %d s)" % (load["when_started"], args.max_load, load["waited_s"]))
    work = tempfile.mkdtemp(prefix="side_by_side.")
    os.chmod(work, 0o755)  # the servers' unprivileged users must reach their dirs
    info = {"setup": setup, "load": load, "opensmtpd_deb": deb}
    with open(os.path.join(work, "outer.json"), "w") as f:
        json.dump(info, f)
    cmd = ["unshare", "--net", "--mount", "--pid", "--fork", "--kill-child=SIGTERM",
           "--mount-proc", "--propagation", "private",
           PYTHON, os.path.abspath(__file__), "--inner", work] + argv
    proc = subprocess.Popen(cmd)
    stop = {"sig": None}

    def forward(sig, frame):
        stop["sig"] = sig
        try:
            proc.send_signal(signal.SIGTERM)  # unshare ends; --kill-child passes SIGTERM on
        except OSError:
            pass
    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    rc = None
    try:
        try:
            rc = proc.wait(timeout=args.deadline + 120)
        except subprocess.TimeoutExpired:
            log("inner run overran its deadline: stopping it")
            proc.send_signal(signal.SIGTERM)
            try:
                rc = proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                rc = proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if args.keep:
            log("kept %s" % work)
        else:
            shutil.rmtree(work, ignore_errors=True)
    if stop["sig"]:
        return 130
    return rc


# ------------------------------------------------------------ process info

def proc_children():
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                s = f.read()
        except OSError:
            continue
        rest = s[s.rindex(")") + 2:].split()
        if rest[0] == "Z":
            continue
        kids.setdefault(int(rest[1]), []).append(int(d))
    return kids


def process_tree(root):
    if root is None or not os.path.exists("/proc/%d" % root):
        return []
    kids = proc_children()
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def memory(pids):
    tot = {"Pss": 0, "Private_Dirty": 0, "Rss": 0, "processes": 0}
    for pid in pids:
        try:
            with open("/proc/%d/smaps_rollup" % pid) as f:
                seen = False
                for line in f:
                    p = line.split()
                    if len(p) >= 3 and p[-1] == "kB" and p[0].rstrip(":") in tot:
                        tot[p[0].rstrip(":")] += int(p[1])
                        seen = True
                if seen:
                    tot["processes"] += 1
        except OSError:
            continue
    return tot


def kill_pids(pids, sig=signal.SIGKILL):
    for pid in pids:
        try:
            os.kill(pid, sig)
        except OSError:
            pass
    reap(pids)


def reap(pids):
    """Our PID namespace makes us the parent of every orphan: reap those we know."""
    for pid in pids:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        except OSError:
            pass


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def greeting_probe(port, timeout=2.0):
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.settimeout(timeout)
        data = b""
        while b"\r\n" not in data:
            chunk = s.recv(512)
            if not chunk:
                break
            data += chunk
        if not data.startswith(b"220"):
            return False
        s.sendall(b"QUIT\r\n")
        try:
            s.recv(512)
        except OSError:
            pass
        return True


def wait_ready(server, deadline):
    while time.monotonic() < deadline:
        if not server.alive():
            raise RuntimeError("%s exited at start:\n%s" % (server.name, server.log_tail()))
        try:
            if greeting_probe(server.port):
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError("%s did not greet on port %d:\n%s" % (server.name, server.port,
                                                            server.log_tail()))


def tcp_counters():
    """Listen-queue overflows of this network namespace (/proc/net/netstat)."""
    want = ("ListenOverflows", "ListenDrops", "TCPTimeouts")
    out = {}
    try:
        with open("/proc/net/netstat") as f:
            lines = f.read().splitlines()
    except OSError:
        return out
    for names, values in zip(lines[0::2], lines[1::2]):
        if not names.startswith("TcpExt:"):
            continue
        for k, v in zip(names.split()[1:], values.split()[1:]):
            if k in want:
                out[k] = int(v)
    return out


def counter_delta(before, after):
    return {k: after.get(k, 0) - before.get(k, 0) for k in after}


def listen_backlog(port):
    """The backlog the server gave listen(): ss shows it as Send-Q."""
    r = run_quiet(["ss", "-Hltn", "sport = :%d" % port])
    for line in r.stdout.splitlines():
        p = line.split()
        if len(p) >= 3 and p[0] == "LISTEN":
            return int(p[2])
    return None


def accepted_connections(port):
    """Connections the server has taken from its listen queue and holds.

    Established TCP connections on the server's port, less those still
    waiting in the listen queue (the listener's Recv-Q): seen from the
    kernel, so it means the same for every server."""
    r = run_quiet(["ss", "-Htn", "state", "established", "( sport = :%d )" % port])
    est = sum(1 for line in r.stdout.splitlines() if line.strip())
    r = run_quiet(["ss", "-Hltn", "sport = :%d" % port])
    queued = 0
    for line in r.stdout.splitlines():
        p = line.split()
        if len(p) >= 2 and p[0] == "LISTEN":
            queued = int(p[1])
    return {"established": est, "in_listen_queue": queued, "accepted": est - queued}


def count_new(base):
    n = 0
    for root, dirs, files in os.walk(base):
        if os.path.basename(root) == "new":
            n += len(files)
    return n


def fill(template, **kw):
    with open(os.path.join(PEERS, template)) as f:
        text = f.read()
    for k, v in kw.items():
        text = text.replace("@%s@" % k, str(v))
    left = re.search(r"@[A-Z]+@", text)
    if left:
        raise RuntimeError("%s: no value for %s" % (template, left.group(0)))
    return text


def tail_file(path, n=3000):
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - n))
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def set_nofile(n):
    def fn():
        resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))
    return fn


# ------------------------------------------------------------------ servers

class Tarpitd:
    name = "tarpitd"

    def __init__(self, ctx, tag, max_connections, wrapper=None):
        self.ctx = ctx
        # The [harvest] table (discredited sources are greeted only after T)
        # has no counterpart in Postfix or OpenSMTPD: off unless asked for.
        self.harvest = ctx.harvest
        self.dir = os.path.join(ctx.work, "tarpitd-" + tag)
        self.port = free_port()
        self.max_connections = max_connections
        self.wrapper = wrapper or []
        self.proc = None
        self.logpath = os.path.join(self.dir, "server.log")

    def start(self, nofile):
        os.makedirs(os.path.join(self.dir, "spool"))
        with open(os.path.join(self.dir, "recipients"), "w") as f:
            f.write("\n".join(RECIPIENTS) + "\n")
        ini = os.path.join(self.dir, "tarpitd.ini")
        t = self.ctx.tarpit
        with open(ini, "w") as f:
            f.write("[server]\n"
                    "hostname = mx.bench\n"
                    "max_connections = %d\n"
                    "recipients = recipients\n"
                    "spool = spool\n"
                    "log = stderr\n"
                    "log_level = warning\n"
                    "[connector \"Default Frontend\"]\n"
                    "bindings = 127.0.0.1:%d\n"
                    "tarpit_interval = 00:%02d:%02d\n"
                    "max_inbound_connections = 1000000\n"
                    "max_inbound_connections_per_source = 1000000\n"
                    "connection_inactivity_timeout = 00:05:00\n"
                    % (self.max_connections, self.port, t // 60, t % 60))
            for line in self.ctx.tarpitd_option:
                f.write(line + "\n")
            if not self.harvest:
                f.write("[harvest]\ntable_size = 0\n")
        with open(self.logpath, "wb") as log_f:
            self.proc = subprocess.Popen(self.wrapper + [self.ctx.bin, "-c", ini, "run"],
                                         stdin=subprocess.DEVNULL, stdout=log_f,
                                         stderr=subprocess.STDOUT, preexec_fn=set_nofile(nofile))
        self.ctx.started.append(self)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def pids(self):
        return process_tree(self.proc.pid) if self.alive() else []

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=60 if self.wrapper else 15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return "killed"

    def stored(self):
        return count_new(os.path.join(self.dir, "spool"))

    def queued(self):
        return 0

    def log_tail(self):
        return tail_file(self.logpath)


class Postfix:
    name = "postfix"

    def __init__(self, ctx, tag):
        self.ctx = ctx
        self.dir = os.path.join(ctx.work, "postfix-" + tag)
        self.etc = os.path.join(self.dir, "etc")
        self.port = free_port()
        self.master = None
        self.known_pids = []
        self.logpath = os.path.join(self.dir, "postfix.log")
        self.cmdlog = os.path.join(self.dir, "commands.log")

    def postfix(self, *words, timeout=120):
        # postfix(1) writes its errors to stderr only when that is a tty;
        # script(1) gives it one so that a failure says why.
        cmd = "postfix -c %s %s" % (shlex.quote(self.etc), " ".join(words))
        r = run_quiet(["script", "-qec", cmd, "/dev/null"], timeout=timeout)
        with open(self.cmdlog, "a") as f:
            f.write("$ %s  (exit %d)\n%s\n" % (cmd, r.returncode, r.stdout))
        return r

    def start(self, nofile):
        for d in ("etc", "queue", "data", "mail"):
            os.makedirs(os.path.join(self.dir, d))
        nobody = pwd.getpwnam("nobody")
        pf = pwd.getpwnam("postfix")
        os.chown(os.path.join(self.dir, "data"), pf.pw_uid, pf.pw_gid)
        os.chown(os.path.join(self.dir, "mail"), nobody.pw_uid, nobody.pw_gid)
        with open(os.path.join(self.etc, "main.cf"), "w") as f:
            f.write(fill("postfix-main.cf", DIR=self.dir, UID=nobody.pw_uid, GID=nobody.pw_gid,
                         TARPIT=self.ctx.tarpit))
        with open(os.path.join(self.etc, "master.cf"), "w") as f:
            f.write(fill("postfix-master.cf", PORT=self.port))
        with open(os.path.join(self.etc, "recipients"), "w") as f:
            for r in RECIPIENTS:
                f.write("%s %s/\n" % (r, r.split("@")[0]))
        with open(os.path.join(self.etc, "known"), "w") as f:
            for r in RECIPIENTS:
                f.write("%s OK\n" % r)
        old = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, max(nofile, old[1])))
        try:
            r = self.postfix("set-permissions")
            if r.returncode != 0:
                raise RuntimeError("postfix set-permissions failed:\n" + r.stdout[-2000:])
            r = self.postfix("start")
            if r.returncode != 0:
                raise RuntimeError("postfix start failed:\n" + r.stdout[-2000:])
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, old)
        self.ctx.started.append(self)
        pidfile = os.path.join(self.dir, "queue", "pid", "master.pid")
        t = time.monotonic()
        while time.monotonic() - t < 20:
            try:
                with open(pidfile) as f:
                    self.master = int(f.read().strip())
                break
            except (OSError, ValueError):
                time.sleep(0.1)
        if self.master is None:
            raise RuntimeError("postfix wrote no master.pid:\n" + self.log_tail())

    def alive(self):
        if self.master is None:
            return False
        try:
            with open("/proc/%d/stat" % self.master) as f:
                return f.read().rsplit(")", 1)[1].split()[0] != "Z"
        except OSError:
            return False

    def pids(self):
        p = process_tree(self.master) if self.alive() else []
        self.known_pids = sorted(set(self.known_pids) | set(p))
        return p

    def stop(self):
        if self.master is None:
            return None
        self.pids()
        status = "stopped"
        if self.alive():
            r = self.postfix("stop", timeout=60)
            t = time.monotonic()
            while self.alive() and time.monotonic() - t < 20:
                reap([self.master])
                time.sleep(0.2)
            if self.alive():
                status = "killed"
            elif r.returncode != 0:
                status = "stop exit %d" % r.returncode
        left = [p for p in self.known_pids if os.path.exists("/proc/%d" % p)]
        kill_pids(left)
        reap(self.known_pids)
        return status

    def stored(self):
        return count_new(os.path.join(self.dir, "mail"))

    def queued(self):
        n = 0
        for sub in ("incoming", "active", "deferred", "maildrop", "hold"):
            for root, dirs, files in os.walk(os.path.join(self.dir, "queue", sub)):
                n += len(files)
        return n

    def log_tail(self):
        return tail_file(self.cmdlog, 1500) + tail_file(self.logpath)


class OpenSMTPD:
    name = "opensmtpd"

    def __init__(self, ctx, tag):
        self.ctx = ctx
        self.dir = os.path.join(ctx.work, "opensmtpd-" + tag)
        self.port = free_port()
        self.proc = None
        self.known_pids = []
        self.logpath = os.path.join(self.dir, "smtpd.log")

    def start(self, nofile):
        os.makedirs(os.path.join(self.dir, "mail"))
        nobody = pwd.getpwnam("nobody")
        os.chown(os.path.join(self.dir, "mail"), nobody.pw_uid, nobody.pw_gid)
        with open(os.path.join(self.dir, "rcpts"), "w") as f:
            f.write("\n".join(RECIPIENTS) + "\n")
        with open(os.path.join(self.dir, "vusers"), "w") as f:
            for r in RECIPIENTS:
                f.write("%s nobody\n" % r)
        conf = os.path.join(self.dir, "smtpd.conf")
        with open(conf, "w") as f:
            f.write(fill("opensmtpd.conf", DIR=self.dir, PORT=self.port))
        # A fresh queue for every instance (/var/spool is ours in this namespace).
        shutil.rmtree("/var/spool/smtpd", ignore_errors=True)
        smtpd = os.path.join(self.ctx.osmtpd_root, "usr", "sbin", "smtpd")
        r = run_quiet([smtpd, "-n", "-f", conf])
        if r.returncode != 0:
            raise RuntimeError("smtpd -n: " + r.stdout)
        with open(self.logpath, "wb") as log_f:
            self.proc = subprocess.Popen([smtpd, "-d", "-f", conf], stdin=subprocess.DEVNULL,
                                         stdout=log_f, stderr=subprocess.STDOUT,
                                         preexec_fn=set_nofile(nofile))
        self.ctx.started.append(self)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def pids(self):
        p = process_tree(self.proc.pid) if self.alive() else []
        self.known_pids = sorted(set(self.known_pids) | set(p))
        return p

    def stop(self):
        if self.proc is None:
            return None
        self.pids()
        status = self.proc.poll()
        if status is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                status = self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                status = "killed"
        left = [p for p in self.known_pids if os.path.exists("/proc/%d" % p)]
        kill_pids(left)
        return status

    def stored(self):
        return count_new(os.path.join(self.dir, "mail"))

    def queued(self):
        n = 0
        for root, dirs, files in os.walk("/var/spool/smtpd/queue"):
            n += len(files)
        return n

    def log_tail(self):
        return tail_file(self.logpath)


class Sink:
    """smtp-sink: answers the protocol and stores nothing."""
    name = "smtp-sink"

    def __init__(self, ctx, tag):
        self.ctx = ctx
        self.port = free_port()
        self.proc = None
        self.logpath = os.path.join(ctx.work, "sink-%s.log" % tag)

    def start(self, nofile):
        with open(self.logpath, "wb") as log_f:
            self.proc = subprocess.Popen([SMTP_SINK, "-u", "nobody", "127.0.0.1:%d" % self.port, "1024"],
                                         stdin=subprocess.DEVNULL, stdout=log_f,
                                         stderr=subprocess.STDOUT, preexec_fn=set_nofile(nofile))
        self.ctx.started.append(self)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def pids(self):
        return process_tree(self.proc.pid) if self.alive() else []

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return None
        self.proc.terminate()
        try:
            return self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return "killed"

    def stored(self):
        return 0

    def queued(self):
        return 0

    def log_tail(self):
        return tail_file(self.logpath)


def make_server(ctx, name, tag, n=0):
    if name == "tarpitd":
        return Tarpitd(ctx, tag, max(256, n + 64))
    if name == "postfix":
        return Postfix(ctx, tag)
    if name == "opensmtpd":
        return OpenSMTPD(ctx, tag)
    raise ValueError(name)


# --------------------------------------------------------------- harvesters

CONNECTING, GREETING, EHLO, MAIL, RCPT, ANSWERED, CLOSED, FAILED = range(8)
STATE_NAMES = ("connecting", "greeting", "ehlo", "mail", "rcpt_pending", "answered_open",
               "closed", "failed")


class Harvester:
    __slots__ = ("sock", "state", "buf", "rcpt_at", "answered_at", "code", "error")

    def __init__(self, sock):
        self.sock = sock
        self.state = CONNECTING
        self.buf = b""
        self.rcpt_at = 0.0
        self.answered_at = 0.0
        self.code = 0
        self.error = ""


class HoldRun:
    """N clients that probe one unknown recipient each and wait for the answer.

    Each client connects, waits for 220, then sends EHLO, MAIL and RCPT one
    at a time (no pipelining, so every server is judged by the same round
    trips). After RCPT it keeps the connection until the later of the
    reply and T after it sent RCPT (a harvester with T of patience), then
    sends QUIT and closes. "Held" = RCPT sent, no reply yet."""

    def __init__(self, ctx, server, n):
        self.ctx = ctx
        self.server = server
        self.n = n
        self.clients = []
        self.counts = [0] * 8
        self.sel = selectors.DefaultSelector()
        self.timers = []
        self.opened = 0
        self.refused = {}
        self.errors = {}
        self.codes = {}
        self.last_park = 0.0
        self.first_rcpt = 0.0

    def move(self, c, state):
        self.counts[c.state] -= 1
        c.state = state
        self.counts[state] += 1

    def fail(self, c, why, now):
        self.errors[why] = self.errors.get(why, 0) + 1
        self.drop(c, FAILED)

    def drop(self, c, state):
        try:
            self.sel.unregister(c.sock)
        except (KeyError, ValueError):
            pass
        try:
            c.sock.close()
        except OSError:
            pass
        self.move(c, state)

    def open_some(self, burst):
        nsrc = max(1, (self.n + 999) // 1000)
        while self.opened < self.n and self.counts[CONNECTING] + self.counts[GREETING] < burst:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            s.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
            s.bind(("127.0.0.%d" % (2 + self.opened % nsrc), 0))
            c = Harvester(s)
            self.clients.append(c)
            self.counts[CONNECTING] += 1
            self.opened += 1
            err = s.connect_ex(("127.0.0.1", self.server.port))
            if err not in (0, errno.EINPROGRESS):
                self.fail(c, "connect: " + os.strerror(err), time.monotonic())
                continue
            self.sel.register(s, selectors.EVENT_WRITE, c)

    def send(self, c, data, now):
        try:
            c.sock.send(data)
            return True
        except OSError as e:
            self.fail(c, "send: %s" % e.strerror, now)
            return False

    def on_reply(self, c, code, now):
        st = c.state
        if st == GREETING:
            if code != 220:
                key = "greeting %d" % code
                self.refused[key] = self.refused.get(key, 0) + 1
                self.drop(c, FAILED)
                return
            if self.send(c, b"EHLO harvester.bench\r\n", now):
                self.move(c, EHLO)
        elif st == EHLO or st == MAIL:
            if code != 250:
                self.fail(c, "%s got %d" % ("EHLO" if st == EHLO else "MAIL", code), now)
                return
            if st == EHLO:
                if self.send(c, b"MAIL FROM:<h@harvest.bench>\r\n", now):
                    self.move(c, MAIL)
            elif self.send(c, ("RCPT TO:<%s>\r\n" % UNKNOWN_RCPT).encode(), now):
                c.rcpt_at = now
                if not self.first_rcpt:
                    self.first_rcpt = now
                self.last_park = now
                self.move(c, RCPT)
        elif st == RCPT:
            c.code = code
            c.answered_at = now
            self.codes[code] = self.codes.get(code, 0) + 1
            self.move(c, ANSWERED)
            heapq.heappush(self.timers, (max(now, c.rcpt_at + self.ctx.tarpit), id(c), c))
        # replies after the RCPT reply (none expected) are ignored

    def on_readable(self, c, now):
        try:
            data = c.sock.recv(4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as e:
            data = b""
            c.error = e.strerror
        if not data:
            if c.state == ANSWERED:
                self.drop(c, CLOSED)
            else:
                self.fail(c, "closed by server in %s" % STATE_NAMES[c.state], now)
            return
        c.buf += data
        while c.state not in (CLOSED, FAILED):
            i = c.buf.find(b"\n")
            if i < 0:
                break
            line, c.buf = c.buf[:i + 1], c.buf[i + 1:]
            if len(line) < 4 or not line[:3].isdigit():
                self.fail(c, "bad reply line", now)
                return
            if line[3:4] == b"-":
                continue
            self.on_reply(c, int(line[:3]), now)

    def step(self, timeout):
        for key, ev in self.sel.select(timeout=timeout):
            c = key.data
            now = time.monotonic()
            if c.state == CONNECTING:
                err = c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    self.fail(c, "connect: " + os.strerror(err), now)
                    continue
                self.move(c, GREETING)
                self.sel.modify(c.sock, selectors.EVENT_READ, c)
                continue
            self.on_readable(c, now)
        now = time.monotonic()
        while self.timers and self.timers[0][0] <= now:
            _, _, c = heapq.heappop(self.timers)
            if c.state == ANSWERED:
                try:
                    c.sock.send(b"QUIT\r\n")
                except OSError:
                    pass
                self.drop(c, CLOSED)

    def snapshot_counts(self):
        d = {STATE_NAMES[i]: self.counts[i] for i in range(8)}
        d["not_opened"] = self.n - self.opened
        return d

    def close_all(self):
        for c in self.clients:
            if c.state not in (CLOSED, FAILED):
                try:
                    c.sock.close()
                except OSError:
                    pass
        self.sel.close()


def valid_deliveries(port, count, budget):
    """Run in a child process: times `count` deliveries from 127.0.0.1."""
    out = []
    end = time.monotonic() + budget
    for _ in range(count):
        left = end - time.monotonic()
        if left <= 0.5:
            out.append({"error": "no time left"})
            break
        t = time.monotonic()
        try:
            with smtplib.SMTP("127.0.0.1", port, local_hostname="valid.bench", timeout=left,
                              source_address=("127.0.0.1", 0)) as s:
                s.ehlo("valid.bench")
                code, msg = s.mail("bench@b.org")
                if code != 250:
                    raise RuntimeError("MAIL %d %r" % (code, msg[:60]))
                code, msg = s.rcpt(VALID_RCPT)
                if code != 250:
                    raise RuntimeError("RCPT %d %r" % (code, msg[:60]))
                code, msg = s.data(MESSAGE)
                if code != 250:
                    raise RuntimeError("DATA %d %r" % (code, msg[:60]))
                s.quit()
            out.append({"ms": round((time.monotonic() - t) * 1000.0, 2)})
        except (OSError, smtplib.SMTPException, RuntimeError) as e:
            out.append({"error": "%s after %.1f s" % (str(e)[:80] or type(e).__name__,
                                                     time.monotonic() - t)})
    return out


def hold_run(ctx, name, n):
    T = ctx.tarpit
    server = make_server(ctx, name, "hold%d" % n, n)
    res = {"server": name, "n": n, "tarpit_s": T, "loadavg_before": read_loadavg()}
    nofile = ctx.nofile
    run = None
    valid = None
    try:
        server.start(nofile)
        wait_ready(server, time.monotonic() + 60)
        time.sleep(0.5)
        idle = memory(server.pids())
        res["idle"] = idle
        res["listen_backlog"] = listen_backlog(server.port)
        run = HoldRun(ctx, server, n)
        tcp_before = tcp_counters()
        t_ready = time.monotonic()
        bound = min(t_ready + T + ctx.run_extra, ctx.deadline - 30)
        snap = None
        peak_held = 0
        peak_open = 0
        peak_pss = idle["Pss"]
        peak_procs = idle["processes"]
        next_sample = t_ready + 1.0
        while True:
            now = time.monotonic()
            if now >= bound:
                break
            run.open_some(ctx.burst)
            run.step(0.05)
            now = time.monotonic()
            cnt = run.counts
            peak_held = max(peak_held, cnt[RCPT])
            peak_open = max(peak_open, cnt[EHLO] + cnt[MAIL] + cnt[RCPT] + cnt[ANSWERED])
            parked = cnt[RCPT] + cnt[ANSWERED]
            if snap is None and (
                    parked == n or cnt[CLOSED] + cnt[FAILED] + parked >= n
                    or (run.first_rcpt and now - run.last_park >= 1.0)
                    or (run.first_rcpt and now - run.first_rcpt >= 0.8 * T)
                    or now - t_ready >= T):
                mem = memory(server.pids())
                snap = {"t_s": round(now - t_ready, 3), "memory": mem,
                        "counts": run.snapshot_counts(),
                        "server_side": accepted_connections(server.port)}
                peak_pss = max(peak_pss, mem["Pss"])
                peak_procs = max(peak_procs, mem["processes"])
                budget = max(5.0, bound - time.monotonic() - 2.0)
                valid = subprocess.Popen(
                    [PYTHON, os.path.abspath(__file__), "--valid-client", str(server.port),
                     str(ctx.deliveries), "%.1f" % budget],
                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                next_sample = now + 1.0
            if now >= next_sample:
                mem = memory(server.pids())
                peak_pss = max(peak_pss, mem["Pss"])
                peak_procs = max(peak_procs, mem["processes"])
                next_sample = now + 1.0
            if snap is not None and valid.poll() is not None and \
                    cnt[CLOSED] + cnt[FAILED] >= n:
                break
        res["run_s"] = round(time.monotonic() - t_ready, 2)
        res["tcp"] = counter_delta(tcp_before, tcp_counters())
        res["bound_s"] = round(bound - t_ready, 1)
        res["snapshot"] = snap
        res["peak_held"] = peak_held
        res["peak_open_sessions"] = peak_open
        res["peak_pss_kib"] = peak_pss
        res["peak_processes"] = peak_procs
        res["end_counts"] = run.snapshot_counts()
        res["rcpt_codes"] = {str(k): v for k, v in sorted(run.codes.items())}
        res["refused"] = run.refused
        res["client_errors"] = run.errors
        waits = sorted(c.answered_at - c.rcpt_at for c in run.clients if c.answered_at)
        res["rcpt_wait_s"] = {
            "n": len(waits),
            "min": round(waits[0], 3) if waits else None,
            "median": round(statistics.median(waits), 3) if waits else None,
            "max": round(waits[-1], 3) if waits else None}
        if valid is not None:
            try:
                out, _ = valid.communicate(timeout=max(1.0, bound + 10 - time.monotonic()))
                res["valid"] = json.loads(out.strip().splitlines()[-1])
            except (subprocess.TimeoutExpired, ValueError, IndexError) as e:
                valid.kill()
                valid.communicate()
                res["valid"] = [{"error": "valid client: %s" % type(e).__name__}]
        else:
            res["valid"] = []
    finally:
        if valid is not None and valid.poll() is None:
            valid.kill()
            valid.wait()
        if run is not None:
            run.close_all()
        res["stored_valid"] = server.stored() if server else None
        res["server_exit"] = server.stop()
        res["server_log_tail"] = server.log_tail()[-600:]
    ms = [v["ms"] for v in res.get("valid", []) if "ms" in v]
    res["valid_ms"] = ms
    res["valid_errors"] = [v["error"] for v in res.get("valid", []) if "error" in v]
    s = res["snapshot"] or {}
    log("hold %-9s N=%-5d held@snap=%s peak_held=%d open@snap=%s Pss %d -> %s KiB (%s procs) "
        "valid ms %s errors %s answered %s"
        % (name, n, s.get("counts", {}).get("rcpt_pending"), res["peak_held"],
           (s.get("counts", {}).get("rcpt_pending", 0) + s.get("counts", {}).get("answered_open", 0)
            + s.get("counts", {}).get("ehlo", 0) + s.get("counts", {}).get("mail", 0)) if s else None,
           res["idle"]["Pss"], s.get("memory", {}).get("Pss"), s.get("memory", {}).get("processes"),
           ms, res["valid_errors"], res["rcpt_codes"]))
    return res


# --------------------------------------------------------------- throughput

def smtp_source(port, sessions, messages, size, timeout, extra=()):
    cmd = [SMTP_SOURCE, "-s", str(sessions), "-m", str(messages), "-l", str(size),
           "-f", "sender@test", "-t", VALID_RCPT] + list(extra) + ["127.0.0.1:%d" % port]
    t = time.monotonic()
    try:
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           timeout=timeout)
        rc, out = r.returncode, r.stdout
    except subprocess.TimeoutExpired as e:
        rc, out = "timeout", (e.stdout or b"").decode("utf-8", "replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
    return {"cmd": " ".join(shlex.quote(x) for x in cmd), "wall_s": round(time.monotonic() - t, 3),
            "exit": rc, "output_tail": out[-500:]}


def throughput_run(ctx, name, variant):
    res = {"server": name, "variant": variant, "loadavg_before": read_loadavg()}
    tag = "tp-" + variant.strip("-")
    server = Sink(ctx, tag) if name == "smtp-sink" else make_server(ctx, name, tag, 256)
    try:
        server.start(ctx.nofile)
        if name == "smtp-sink":
            t = time.monotonic()
            while time.monotonic() - t < 10:
                try:
                    socket.create_connection(("127.0.0.1", server.port), timeout=1).close()
                    break
                except OSError:
                    time.sleep(0.1)
        else:
            wait_ready(server, time.monotonic() + 60)
        time.sleep(0.5)
        res["listen_backlog"] = listen_backlog(server.port)
        base = server.stored()
        tcp_before = tcp_counters()
        src = smtp_source(server.port, ctx.sessions, ctx.messages, ctx.size,
                          timeout=max(30, min(ctx.source_timeout, ctx.deadline - time.monotonic() - 60)),
                          extra=[] if variant == "plain" else variant.split())
        res.update(src)
        res["tcp"] = counter_delta(tcp_before, tcp_counters())
        res["msgs_per_s"] = round(ctx.messages / src["wall_s"], 1) if src["exit"] == 0 else None
        res["stored_at_end"] = server.stored() - base
        res["queued_at_end"] = server.queued()
        # Postfix and OpenSMTPD deliver to the Maildir after their 250:
        # wait (bounded) until their queue is empty and the count stays.
        t = time.monotonic()
        last, steady = -1, time.monotonic()
        while name in ("postfix", "opensmtpd") and time.monotonic() - t < ctx.drain_timeout:
            now_stored = server.stored() - base
            if now_stored >= ctx.messages:
                break
            if now_stored != last:
                last, steady = now_stored, time.monotonic()
            elif server.queued() == 0 and time.monotonic() - steady >= 3:
                break
            time.sleep(0.5)
        res["stored_after_drain"] = server.stored() - base
        res["drain_s"] = round(time.monotonic() - t, 1)
        if src["exit"] != 0 and name != "smtp-sink":
            # What was answered 250 before smtp-source stopped ends up in
            # the Maildir: the rate at which the server accepted mail.
            res["accepted_per_s"] = round(res["stored_after_drain"] / src["wall_s"], 1)
    finally:
        res["server_exit"] = server.stop()
        res["server_log_tail"] = server.log_tail()[-600:]
    log("throughput %-9s %-2s %s msgs/s (wall %.2f s, exit %s) stored %s/%s after drain %s"
        % (name, variant, res.get("msgs_per_s"), res.get("wall_s", 0), res.get("exit"),
           res.get("stored_at_end"), ctx.messages, res.get("stored_after_drain")))
    return res


# ------------------------------------------------------------ sync calls

SYNC_CALLS = ("fsync", "fdatasync", "syncfs", "sync_file_range", "msync", "sync")


def comm(pid):
    try:
        with open("/proc/%d/comm" % pid) as f:
            return f.read().strip()
    except OSError:
        return None


def sync_run(ctx, name, sessions, messages):
    """Which processes call fsync & co. while messages are received.

    strace follows every process of the server (and what they fork) while
    smtp-source delivers messages one after the other; the counts per
    process tell whether a server syncs before its 250 (tarpitd: in the
    one process; Postfix: cleanup, which answers smtpd only afterwards) or
    not at all on the way in (OpenSMTPD: its queue process)."""
    res = {"server": name, "messages": messages, "sessions": sessions}
    server = make_server(ctx, name, "sync%d" % sessions, 256)
    out = os.path.join(ctx.work, "strace-%s-%d.txt" % (name, sessions))
    tracer = None
    names = {}
    try:
        server.start(ctx.nofile)
        wait_ready(server, time.monotonic() + 60)
        time.sleep(0.5)
        pids = server.pids()
        for p in pids:
            names[p] = comm(p)
        cmd = ["strace", "-f", "-qq", "-o", out, "-e", "trace=execve," + ",".join(SYNC_CALLS)]
        for p in pids:
            cmd += ["-p", str(p)]
        tracer = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE)
        time.sleep(1.5)  # strace attaches to every process
        base = server.stored()
        src = smtp_source(server.port, sessions, messages, ctx.size, timeout=120)
        res["source_exit"] = src["exit"]
        res["stored_at_end"] = server.stored() - base
        t = time.monotonic()
        while server.stored() - base < messages and time.monotonic() - t < 30:
            time.sleep(0.2)
        res["stored_after_drain"] = server.stored() - base
        time.sleep(0.5)
        for p in server.pids():
            names.setdefault(p, comm(p))
    finally:
        if tracer is not None:
            tracer.send_signal(signal.SIGINT)  # detaches from every process
            try:
                tracer.wait(timeout=15)
            except subprocess.TimeoutExpired:
                tracer.kill()
                tracer.wait()
        res["server_exit"] = server.stop()
    counts = {}
    try:
        with open(out) as f:
            for line in f:
                p = line.split(None, 1)
                if len(p) < 2 or not p[0].isdigit():
                    continue
                pid, rest = int(p[0]), p[1]
                call = rest.split("(", 1)[0].strip()
                if call == "execve":
                    if "= 0" in rest or "<unfinished" in rest:
                        names[pid] = os.path.basename(rest.split('"', 2)[1])
                    continue
                if call not in SYNC_CALLS or "resumed>" in rest:
                    continue
                who = names.get(pid) or "pid %d" % pid
                key = "%s %s" % (who, call)
                counts[key] = counts.get(key, 0) + 1
    except OSError as e:
        res["error"] = "no strace output: %s" % e
    res["sync_calls"] = dict(sorted(counts.items()))
    log("syncs %-9s -s %d -m %d: %s" % (name, sessions, messages, res["sync_calls"]))
    return res


# ---------------------------------------------------------------- callgrind

def callgrind_total(path):
    total = None
    with open(path) as f:
        for line in f:
            if line.startswith("totals:") or (line.startswith("summary:") and total is None):
                total = int(line.split()[1])
    return total


def callgrind_run(ctx, tag, messages, sessions):
    out = os.path.join(ctx.work, "callgrind.%s.out" % tag)
    wrapper = ["valgrind", "--tool=callgrind", "--callgrind-out-file=" + out]
    server = Tarpitd(ctx, "cg-" + tag, 256, wrapper=wrapper)
    res = {"run": tag, "messages": messages, "sessions": sessions, "loadavg_before": read_loadavg()}
    try:
        server.start(4096)
        wait_ready(server, time.monotonic() + 120)
        if messages:
            src = smtp_source(server.port, sessions, messages, ctx.size, timeout=600)
            res["source"] = src
    finally:
        res["server_exit"] = server.stop()
        res["stored"] = server.stored()
        res["server_log_tail"] = server.log_tail()[-800:]
    res["ir"] = callgrind_total(out) if os.path.exists(out) else None
    log("callgrind %s: %s Ir, %s stored, exit %s" % (tag, res["ir"], res["stored"], res["server_exit"]))
    return res


# ------------------------------------------------------------- inner part

class Ctx:
    pass


def setup_namespace(work, deb):
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    resolv = os.path.join(work, "resolv.conf")
    with open(resolv, "w") as f:
        # glibc reads the nameserver line, OpenSMTPD's resolver (asr) the
        # lookup line: nothing ever leaves this loopback-only namespace.
        f.write("nameserver 127.0.0.1\nlookup file\n")
    subprocess.run(["mount", "--bind", resolv, "/etc/resolv.conf"], check=True)
    for d in ("varspool", "run"):
        os.makedirs(os.path.join(work, d))
    subprocess.run(["mount", "--bind", os.path.join(work, "varspool"), "/var/spool"], check=True)
    subprocess.run(["mount", "--bind", os.path.join(work, "run"), "/run"], check=True)
    root = None
    if deb:
        root = os.path.join(work, "opensmtpd-root")
        subprocess.run(["dpkg-deb", "-x", deb, root], check=True)
        for d in ("usr/libexec", "var/lib"):
            subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                            "lowerdir=%s:/%s" % (os.path.join(root, d), d), "/" + d], check=True)
    return root


def versions(ctx, deb):
    v = {}
    r = run_quiet(["postconf", "-d", "-h", "mail_version"])
    v["postfix"] = r.stdout.strip() if r.returncode == 0 else None
    if deb:
        r = run_quiet(["dpkg-deb", "-f", deb, "Version"])
        v["opensmtpd"] = r.stdout.strip()
    r = run_quiet([ctx.bin, "--version"])
    v["tarpitd"] = r.stdout.strip()
    with open(ctx.bin, "rb") as f:
        v["tarpitd_sha256"] = hashlib.sha256(f.read()).hexdigest()
    v["tarpitd_bin"] = ctx.bin
    r = run_quiet(["git", "-C", ROOT, "rev-parse", "HEAD"])
    v["repo_head"] = r.stdout.strip() if r.returncode == 0 else None
    r = run_quiet(["valgrind", "--version"])
    v["valgrind"] = r.stdout.strip()
    v["kernel"] = os.uname().release
    v["nproc"] = os.cpu_count()
    v["python"] = sys.version.split()[0]
    return v


def inner(args, work):
    with open(os.path.join(work, "outer.json")) as f:
        outer_info = json.load(f)
    ctx = Ctx()
    ctx.work = work
    ctx.bin = os.path.abspath(args.bin)
    ctx.tarpit = args.tarpit
    ctx.run_extra = args.run_extra
    ctx.burst = args.burst
    ctx.deliveries = args.deliveries
    ctx.sessions = args.sessions
    ctx.messages = args.messages
    ctx.size = args.size
    ctx.source_timeout = args.source_timeout
    ctx.drain_timeout = args.drain_timeout
    ctx.tarpitd_option = args.tarpitd_option
    ctx.sync_messages = args.sync_messages
    ctx.harvest = args.harvest == "on"
    ctx.started = []
    ctx.deadline = time.monotonic() + args.deadline
    servers = [s for s in args.servers.split(",") if s]
    sizes = [int(x) for x in args.sizes.split(",") if x]

    stopping = {"sig": None}

    def on_signal(sig, frame):
        stopping["sig"] = sig
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    ctx.nofile = args.nofile or hard
    want = max(sizes + [0]) + 1024
    if hard < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
        except (ValueError, OSError):
            raise SystemExit("RLIMIT_NOFILE hard limit %d is below %d" % (hard, want))
    else:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    result = {"method": {
        "tarpit_s": args.tarpit, "sizes": sizes, "servers": servers, "run_bound_s": args.tarpit + args.run_extra,
        "deliveries": args.deliveries, "burst": args.burst,
        "smtp_source": "-s %d -m %d -l %d" % (args.sessions, args.messages, args.size),
        "recipients": RECIPIENTS, "unknown": UNKNOWN_RCPT, "nofile": ctx.nofile},
        "outer": outer_info, "hold": [], "throughput": [], "syncs": [], "callgrind": []}
    t0 = time.monotonic()
    try:
        ctx.osmtpd_root = setup_namespace(work, outer_info.get("opensmtpd_deb") if "opensmtpd" in servers else None)
        result["versions"] = versions(ctx, outer_info.get("opensmtpd_deb"))
        if not args.skip_hold:
            for n in sizes:
                for name in servers:
                    if time.monotonic() + args.tarpit + 40 > ctx.deadline:
                        result["hold"].append({"server": name, "n": n, "skipped": "deadline"})
                        continue
                    try:
                        result["hold"].append(hold_run(ctx, name, n))
                    except Exception as e:  # one failed run must not stop the others
                        log("hold %s N=%d failed: %s" % (name, n, e))
                        result["hold"].append({"server": name, "n": n, "error": str(e)[-1500:]})
        if not args.skip_throughput:
            for variant in args.source_variants.split(","):
                variant = variant.strip()
                for name in servers + ["smtp-sink"]:
                    if time.monotonic() + 60 > ctx.deadline:
                        result["throughput"].append({"server": name, "variant": variant,
                                                     "skipped": "deadline"})
                        continue
                    try:
                        result["throughput"].append(throughput_run(ctx, name, variant))
                    except Exception as e:  # one failed run must not stop the others
                        log("throughput %s failed: %s" % (name, e))
                        result["throughput"].append({"server": name, "variant": variant,
                                                     "error": str(e)[-1500:]})
        if not args.skip_syncs and shutil.which("strace"):
            runs = [(name, 1, args.sync_messages) for name in servers]
            if "tarpitd" in servers:
                # Group commit: with 20 sessions at once, messages share sync rounds.
                runs.append(("tarpitd", 20, 4 * args.sync_messages))
            for name, sessions, msgs in runs:
                if time.monotonic() + 90 > ctx.deadline:
                    result["syncs"].append({"server": name, "skipped": "deadline"})
                    continue
                try:
                    result["syncs"].append(sync_run(ctx, name, sessions, msgs))
                except Exception as e:  # one failed run must not stop the others
                    log("syncs %s failed: %s" % (name, e))
                    result["syncs"].append({"server": name, "error": str(e)[-1500:]})
        if not args.skip_callgrind:
            runs = [("idle", 0, 1)] + [("s%d" % s, args.callgrind_messages, s)
                                       for s in (int(x) for x in args.callgrind_sessions.split(","))]
            for tag, m, s in runs:
                if time.monotonic() + 120 > ctx.deadline:
                    result["callgrind"].append({"run": tag, "skipped": "deadline"})
                    continue
                try:
                    result["callgrind"].append(callgrind_run(ctx, tag, m, s))
                except Exception as e:  # one failed run must not stop the others
                    log("callgrind %s failed: %s" % (tag, e))
                    result["callgrind"].append({"run": tag, "error": str(e)[-1500:]})
    except KeyboardInterrupt:
        result["interrupted"] = "signal %s" % stopping["sig"]
        log("interrupted: cleaning up")
    finally:
        for s in ctx.started:
            try:
                s.stop()
            except Exception as e:  # cleanup must go on whatever one server does
                log("stopping %s: %s" % (s.name, e))
        result["elapsed_s"] = round(time.monotonic() - t0, 1)
        result["loadavg_end"] = read_loadavg()
        if args.out_json:
            with open(args.out_json, "w") as f:
                json.dump(result, f, indent=1)
                f.write("\n")
    md = markdown(result)
    print(md)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(md)
    return 1 if result.get("interrupted") else 0


# ---------------------------------------------------------------- report

def kib(v):
    if v is None:
        return "–"
    if v >= 10240:
        return "%.1f MiB" % (v / 1024.0)
    return "%d KiB" % v


def ratio(a, b):
    if not a or not b:
        return "–"
    return "%.2f" % (a / b) if a / b >= 0.1 else "%.3f" % (a / b)


def fmt_int(v):
    return "–" if v is None else "{:,}".format(v)


def markdown(r):
    out = []
    m = r["method"]
    v = r.get("versions", {})
    out.append("Run: %s; tarpit T = %d s; versions: %s (sha256 %s…), Postfix %s, "
               "OpenSMTPD %s, %s; RLIMIT_NOFILE of every server %s; kernel %s, %s cores; load average at start %s, at end %s; "
               "%.0f s in all."
               % (time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), m["tarpit_s"],
                  v.get("tarpitd"), (v.get("tarpitd_sha256") or "")[:12], v.get("postfix"),
                  v.get("opensmtpd"), v.get("valgrind"), m.get("nofile"), v.get("kernel"), v.get("nproc"),
                  (r["outer"].get("load") or {}).get("when_started"), r.get("loadavg_end"),
                  r.get("elapsed_s", 0)))
    out.append("")
    if r["hold"]:
        out.append("### Tarpit hold (T = %d s, each run bounded to T + %d s)"
                   % (m["tarpit_s"], m["run_bound_s"] - m["tarpit_s"]))
        out.append("")
        out.append("| N | server | connections accepted and open (server side) | RCPT pending "
                   "(snapshot / peak) | client waiting for 220 / not yet opened | processes "
                   "| Pss idle → loaded (all processes; peak) | tarpitd / peer (loaded Pss) "
                   "| valid delivery meanwhile, ms (max) | RCPT answered within the bound "
                   "(codes; wait median) |")
        out.append("|---:|---|---:|---:|---:|---:|---:|---:|---|---|")
        tp = {}
        for h in r["hold"]:
            if h.get("server") == "tarpitd" and h.get("snapshot"):
                tp[h["n"]] = h["snapshot"]["memory"]["Pss"]
        for h in r["hold"]:
            if "snapshot" not in h or not h.get("snapshot"):
                out.append("| %s | %s | %s | | | | | | | |"
                           % (fmt_int(h.get("n")), h.get("server"), h.get("skipped") or
                              ("error: " + h.get("error", "?").splitlines()[0][:80])))
                continue
            s = h["snapshot"]
            c = s["counts"]
            mem = s["memory"]
            ss = s.get("server_side") or {}
            opened = ss.get("accepted")
            valid = ", ".join("%.1f" % x for x in h["valid_ms"])
            if h["valid_errors"]:
                valid += (" " if valid else "") + "; ".join(h["valid_errors"])
            vmax = (" (%.1f)" % max(h["valid_ms"])) if h["valid_ms"] else ""
            codes = ", ".join("%s×%s" % (fmt_int(n), code) for code, n in h["rcpt_codes"].items())
            w = h["rcpt_wait_s"]
            out.append("| %s | %s | %s | %s / %s | %s / %s | %d | %s → %s (%s) | %s | %s%s | %s of %s (%s; %s s) |"
                       % (fmt_int(h["n"]), h["server"], fmt_int(opened), fmt_int(c["rcpt_pending"]),
                          fmt_int(h["peak_held"]), fmt_int(c["connecting"] + c["greeting"]),
                          fmt_int(c["not_opened"]), mem["processes"], kib(h["idle"]["Pss"]),
                          kib(mem["Pss"]), kib(h["peak_pss_kib"]), "1" if h["server"] == "tarpitd" else ratio(tp.get(h["n"]), mem["Pss"]),
                          valid or "–", vmax, fmt_int(w["n"]), fmt_int(h["n"]), codes or "none",
                          w["median"]))
        out.append("")
        bl = {}
        for h in r["hold"]:
            if h.get("listen_backlog") is not None:
                bl.setdefault(h["server"], h["listen_backlog"])
        if bl:
            out.append("Listen backlog (ss Send-Q of the listening socket): " +
                       ", ".join("%s %s" % (k, v) for k, v in bl.items()) + ".")
            out.append("")
        ov = ["%s N=%s: %s" % (h["server"], fmt_int(h["n"]), fmt_int(h["tcp"].get("ListenOverflows")))
              for h in r["hold"] if h.get("tcp")]
        if ov:
            out.append("Connections the kernel dropped because the listen queue was full "
                       "(TcpExt ListenOverflows of the benchmark's network namespace): " +
                       "; ".join(ov) + ".")
            out.append("")
    if r["throughput"]:
        out.append("### Accept throughput (smtp-source %s -f sender@test -t %s, 4 KiB messages)"
                   % (m["smtp_source"], VALID_RCPT))
        out.append("")
        out.append("`plain`: one message per session, as the issue gives the command (20 clients "
                   "reconnecting); `-d`: smtp-source -d, each of the 20 sessions sends its messages "
                   "back to back.")
        out.append("")
        out.append("| smtp-source | server | what its 250 means | wall s | messages/s | tarpitd / peer "
                   "| in Maildir when smtp-source ended | in Maildir after drain (s) |")
        out.append("|---|---|---|---:|---:|---:|---:|---:|")
        means = {"tarpitd": "file and new/ link synced (group commit)",
                 "postfix": "queue file fsynced; Maildir delivery later",
                 "opensmtpd": "queued, nothing fsynced; Maildir delivery later",
                 "smtp-sink": "nothing stored"}
        tpr = {}
        for t in r["throughput"]:
            if t.get("server") == "tarpitd":
                tpr[t.get("variant")] = t.get("msgs_per_s")
        for t in r["throughput"]:
            if "wall_s" not in t:
                out.append("| %s | %s | | %s | | | | |" % (t.get("variant"), t.get("server"),
                                                      t.get("skipped") or t.get("error", "")[:80]))
                continue
            sink = t["server"] == "smtp-sink"
            out.append("| %s | %s | %s | %.2f | %s | %s | %s | %s |"
                       % (t["variant"], t["server"], means.get(t["server"], ""), t["wall_s"],
                          ("≈ %s (smtp-source %s; %s accepted in %.0f s)"
                           % ("{:,.1f}".format(t["accepted_per_s"]) if t.get("accepted_per_s") is not None else "–",
                              "stopped at its time limit" if t["exit"] == "timeout" else "exit %s" % t["exit"],
                              fmt_int(t.get("stored_after_drain")), t["wall_s"]))
                          if t["msgs_per_s"] is None else "{:,.0f}".format(t["msgs_per_s"]),
                          "1" if t["server"] == "tarpitd" else
                          ratio(tpr.get(t["variant"]), t["msgs_per_s"] or t.get("accepted_per_s")),
                          "–" if sink else fmt_int(t["stored_at_end"]),
                          "–" if sink else "%s (%s)" % (fmt_int(t["stored_after_drain"]),
                                                       t["drain_s"] if t["server"] != "tarpitd" else "0")))
        out.append("")
        ov = ["%s %s: %s" % (t["variant"], t["server"], fmt_int(t["tcp"].get("ListenOverflows")))
              for t in r["throughput"] if t.get("tcp")]
        if ov:
            out.append("Listen-queue overflows (TcpExt ListenOverflows) during each run: " +
                       "; ".join(ov) + ".")
            out.append("")
    if r.get("syncs"):
        out.append("### Sync calls on the way in (strace -f on every process of the server "
                   "while smtp-source delivers 4 KiB messages)")
        out.append("")
        out.append("| server | smtp-source | calls by process (Maildir delivery included) "
                   "| per message | stored |")
        out.append("|---|---|---|---|---:|")
        for y in r["syncs"]:
            if "sync_calls" not in y:
                out.append("| %s | | %s | | |" % (y.get("server"), y.get("skipped") or y.get("error", "")[:80]))
                continue
            calls = ", ".join("%s: %s" % (k, fmt_int(v)) for k, v in y["sync_calls"].items()) or "none"
            per = ", ".join("%s %.2f" % (k, v / float(y["messages"])) for k, v in y["sync_calls"].items()) or "0"
            out.append("| %s | -s %d -m %d | %s | %s | %s |"
                       % (y["server"], y["sessions"], y["messages"], calls, per,
                          fmt_int(y.get("stored_after_drain"))))
        out.append("")
    if r["callgrind"]:
        out.append("### Instructions per delivered message (tarpitd under callgrind)")
        out.append("")
        out.append("| run | messages | sessions in parallel | Ir total | stored | Ir per message (minus idle run) |")
        out.append("|---|---:|---:|---:|---:|---:|")
        idle = None
        for c in r["callgrind"]:
            if c.get("run") == "idle":
                idle = c.get("ir")
        for c in r["callgrind"]:
            per = "–"
            if c.get("ir") and c.get("messages") and idle:
                per = "{:,.0f}".format((c["ir"] - idle) / c["messages"])
            out.append("| %s | %s | %s | %s | %s | %s |"
                       % (c.get("run"), fmt_int(c.get("messages")), c.get("sessions", "–"),
                          fmt_int(c.get("ir")), fmt_int(c.get("stored")), per))
        out.append("")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tarpit", type=int, default=10, help="tarpit T in seconds (all servers)")
    ap.add_argument("--sizes", default="100,1000,10000", help="hold: numbers of clients")
    ap.add_argument("--servers", default=",".join(SERVERS))
    ap.add_argument("--bin", default=DEFAULT_BIN, help="tarpitd binary")
    ap.add_argument("--run-extra", type=int, default=60, help="hold: each run lasts at most T + this")
    ap.add_argument("--burst", type=int, default=4,
                    help="hold: connections connecting or awaiting their 220 at once")
    ap.add_argument("--nofile", type=int, default=0,
                    help="RLIMIT_NOFILE of every server (OpenSMTPD sizes its session limit from "
                         "it); default: the hard limit this script has")
    ap.add_argument("--deliveries", type=int, default=5, help="hold: valid deliveries under load")
    ap.add_argument("--sessions", type=int, default=20, help="smtp-source -s")
    ap.add_argument("--messages", type=int, default=5000, help="smtp-source -m")
    ap.add_argument("--size", type=int, default=4096, help="smtp-source -l")
    ap.add_argument("--source-timeout", type=int, default=400)
    ap.add_argument("--source-variants", default="plain,-d",
                    help="throughput runs: 'plain' = one message per session (as given in the "
                         "issue), '-d' = smtp-source -d, messages back to back in each session")
    ap.add_argument("--drain-timeout", type=int, default=180)
    ap.add_argument("--callgrind-messages", type=int, default=200)
    ap.add_argument("--callgrind-sessions", default="1,20", help="smtp-source -s for the callgrind runs")
    ap.add_argument("--tarpitd-option", action="append", default=[], metavar="LINE",
                    help="extra line appended to tarpitd's INI (repeatable)")
    ap.add_argument("--harvest", choices=("off", "on"), default="off",
                    help="tarpitd's [harvest] table: off (table_size = 0, the tarpit alone, as the "
                         "peers have nothing like it) or on (its defaults)")
    ap.add_argument("--skip-hold", action="store_true")
    ap.add_argument("--skip-throughput", action="store_true")
    ap.add_argument("--skip-callgrind", action="store_true")
    ap.add_argument("--skip-syncs", action="store_true", help="skip the strace count of fsync & co.")
    ap.add_argument("--sync-messages", type=int, default=50,
                    help="messages delivered one by one while strace counts sync calls")
    ap.add_argument("--deadline", type=int, default=2400, help="overall limit in seconds")
    ap.add_argument("--max-load", type=float, default=1.5,
                    help="wait until the 1-minute load average is below this (0: do not wait)")
    ap.add_argument("--load-wait", type=int, default=600, help="longest wait for the load, s")
    ap.add_argument("--no-install", action="store_true", help="fail instead of installing")
    ap.add_argument("--opensmtpd-deb", help="use this opensmtpd .deb")
    ap.add_argument("--out-json")
    ap.add_argument("--markdown", help="also write the tables here")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    if len(sys.argv) >= 2 and sys.argv[1] == "--valid-client":
        port, count, budget = int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
        print(json.dumps(valid_deliveries(port, count, budget)))
        return 0
    if len(sys.argv) >= 3 and sys.argv[1] == "--inner":
        work = sys.argv[2]
        args = ap.parse_args(sys.argv[3:])
        return inner(args, work)
    args = ap.parse_args()
    args.bin = os.path.abspath(args.bin)
    if args.tarpit < 1 or args.tarpit > 600:
        ap.error("--tarpit must be within 1..600")
    argv = sys.argv[1:]
    if "--bin" not in " ".join(argv):
        argv = argv + ["--bin", args.bin]
    return outer(args, argv)


if __name__ == "__main__":
    sys.exit(main())
