#!/usr/bin/env python3
"""Does a password check hold the loop? (issue 13 item 4, SPEC §9)

Starts the given tarpitd on 127.0.0.1 with a users file whose one entry has
--iterations PBKDF2 iterations (tarpit off, so only the check is timed) and
measures:

  single    one client, wrong passwords one at a time: the time from the
            AUTH line to its 535, for the user in the file and for a name
            that is not (median of --rounds each), and the server's CPU
            time per check (from /proc: steadier than wall time on a
            loaded machine);
  pipelined a guesser sends --guesses wrong AUTHs in one write while
            another client sends NOOP after NOOP (each waiting for its
            250): the guesser's time to its last 535, and the other
            client's NOOP latency meanwhile (max, median, count);
  parallel  --parallel guessers (more than the verifier pool) at once,
            one wrong AUTH each, with the NOOP client beside them.

Prints one JSON object. Bounded in time; cleans up its temporary directory
and server. Traffic only to 127.0.0.1.

  python3 host-tests/bench/auth_slices.py build/host/tarpitd --iterations 1000000
"""

import argparse
import base64
import hashlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

INI = """\
[server]
hostname = mx.bench
max_connections = 64
recipients = recipients
spool = spool
log = stderr
log_level = warning

[auth]
users = users

[connector "Bench"]
bindings = 127.0.0.1:{port}
tarpit_interval = 00:00:00
auth_requires_tls = no
max_auth_failures = 0
max_inbound_connections_per_source = 64
connection_inactivity_timeout = 00:10:00
connection_timeout = 01:00:00
"""


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Client:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=600)
        self.buf = b""
        self.reply()
        self.cmd("EHLO bench.test")

    def line(self):
        while b"\r\n" not in self.buf:
            d = self.s.recv(65536)
            if not d:
                raise EOFError("closed")
            self.buf += d
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def reply(self):
        while True:
            line = self.line()
            if line[3:4] != b"-":
                return int(line[:3])

    def cmd(self, text):
        self.s.sendall(text.encode() + b"\r\n")
        return self.reply()

    def close(self):
        self.s.close()


def cpu_ms(pid):
    """The server's CPU time so far (user + system), in ms: less disturbed
    than wall time by other load on the machine."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def plain(user, pw):
    return "AUTH PLAIN " + base64.b64encode(f"\0{user}\0{pw}".encode()).decode()


class Noop(threading.Thread):
    """NOOP after NOOP until stopped; records each latency."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.c = Client(port)
        self.lat = []
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            t = time.monotonic()
            assert self.c.cmd("NOOP") == 250
            self.lat.append(time.monotonic() - t)
            time.sleep(0.005)

    def result(self):
        self.stop.set()
        self.join()
        self.c.close()
        lat = self.lat or [0.0]
        return {"noop_max_ms": round(max(lat) * 1000, 1), "noop_median_ms": round(statistics.median(lat) * 1000, 2),
                "noops": len(self.lat)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("--iterations", type=int, default=1000000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--guesses", type=int, default=3)
    ap.add_argument("--parallel", type=int, default=6)
    a = ap.parse_args()

    d = tempfile.mkdtemp(prefix="tarpitd-auth-bench-")
    port = free_port()
    salt = os.urandom(16)
    dk = hashlib.pbkdf2_hmac("sha256", b"right", salt, a.iterations)
    users = os.path.join(d, "users")
    with open(users, "w") as f:
        f.write(f"alice:$pbkdf2-sha256${a.iterations}${base64.b64encode(salt).decode()}"
                f"${base64.b64encode(dk).decode()}\n")
    os.chmod(users, 0o600)
    with open(os.path.join(d, "recipients"), "w") as f:
        f.write("alice@example.org\n")
    with open(os.path.join(d, "tarpitd.ini"), "w") as f:
        f.write(INI.format(port=port))
    log = open(os.path.join(d, "stderr.log"), "wb")
    proc = subprocess.Popen([os.path.abspath(a.binary), "-c", "tarpitd.ini", "run"], cwd=d,
                            stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    out = {"binary": a.binary, "iterations": a.iterations}
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        c = Client(port)
        for name, user in (("known_ms", "alice"), ("unknown_ms", "mallory")):
            times = []
            cpu = cpu_ms(proc.pid)
            for i in range(a.rounds):
                t = time.monotonic()
                assert c.cmd(plain(user, f"wrong{i}")) == 535
                times.append(time.monotonic() - t)
            out[name] = round(statistics.median(times) * 1000, 1)
            out[name.replace("_ms", "_cpu_ms")] = round((cpu_ms(proc.pid) - cpu) / a.rounds, 1)
        c.close()

        noop = Noop(port)
        noop.start()
        g = Client(port)
        time.sleep(0.1)
        t = time.monotonic()
        g.s.sendall("".join(plain("alice", f"wrong{i}") + "\r\n" for i in range(a.guesses)).encode())
        for _ in range(a.guesses):
            assert g.reply() == 535
        out["pipelined_total_ms"] = round((time.monotonic() - t) * 1000, 1)
        g.close()
        time.sleep(0.05)
        out["pipelined"] = noop.result()

        noop = Noop(port)
        noop.start()
        gs = [Client(port) for _ in range(a.parallel)]
        time.sleep(0.1)
        t = time.monotonic()
        for i, g in enumerate(gs):
            g.s.sendall((plain("alice", f"wrong{i}") + "\r\n").encode())
        ends = []
        for g in gs:
            assert g.reply() == 535
            ends.append(round((time.monotonic() - t) * 1000, 1))
            g.close()
        out["parallel_done_ms"] = ends
        time.sleep(0.05)
        out["parallel"] = noop.result()
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        shutil.rmtree(d, ignore_errors=True)
    print(json.dumps(out))


if __name__ == "__main__":
    sys.exit(main())
