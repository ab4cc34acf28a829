#!/usr/bin/env python3
"""How fast can a directory harvester test addresses against tarpitd?

One source (127.0.0.1) opens as many parallel sessions as the connector
allows per source and, in each, sends RCPT after RCPT (each waiting for
its reply), reconnecting whenever the server ends the session
(max_unknown_recipients). It stops after --rcpts replies or --seconds,
whichever comes first, and reports addresses tested per minute. Run once
with the tarpit (tarpit_interval = --tarpit) and once with it off; the
ratio goes into docs/benchmarks.md.

Bounded in time, cleans up its temporary directory and server. Traffic
only to 127.0.0.1.
"""

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

INI = """\
[server]
hostname = mx.bench
max_connections = 256
recipients = recipients
spool = spool
log = stderr
log_level = warning

[harvest]
table_size = 1024
threshold = 10
window = 01:00:00

[connector "Default Frontend"]
bindings = 127.0.0.1:{port}
tarpit_interval = {tarpit}
max_inbound_connections_per_source = {per_source}
max_unknown_recipients = 20
max_protocol_errors = 5
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read_reply(f):
    while True:
        line = f.readline()
        if not line:
            return None
        if line[3:4] != b"-":
            return line


def worker(port, stop, counter, lock, deadline):
    n = 0
    while not stop.is_set() and time.monotonic() < deadline:
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=max(1, deadline - time.monotonic()))
        except OSError:
            time.sleep(0.05)
            continue
        s.settimeout(max(1, deadline - time.monotonic() + 1))
        f = s.makefile("rb")
        try:
            if not (read_reply(f) or b"").startswith(b"220"):
                continue
            s.sendall(b"EHLO harvester.test\r\n")
            read_reply(f)
            s.sendall(b"MAIL FROM:<h@origin.test>\r\n")
            read_reply(f)
            while not stop.is_set() and time.monotonic() < deadline:
                n += 1
                s.sendall(b"RCPT TO:<guess%d@example.org>\r\n" % n)
                r = read_reply(f)
                if r is None or not r[:1] in (b"2", b"5"):
                    break
                with lock:
                    counter[0] += 1
                    if counter[0] >= counter[1]:
                        stop.set()
        except OSError:
            pass
        finally:
            f.close()
            s.close()


def run(binary, tarpit, per_source, rcpts, seconds):
    tmp = Path(tempfile.mkdtemp(prefix="tarpitd-harvest-"))
    proc = None
    try:
        port = free_port()
        (tmp / "recipients").write_text("alice@example.org\n")
        (tmp / "t.ini").write_text(INI.format(port=port, tarpit=tarpit, per_source=per_source))
        log = open(tmp / "stderr.log", "wb")
        proc = subprocess.Popen([binary, "-c", str(tmp / "t.ini"), "run"], stdout=log, stderr=log)
        end = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > end or proc.poll() is not None:
                    raise SystemExit("server did not start")
                time.sleep(0.02)
        stop = threading.Event()
        counter = [0, rcpts]
        lock = threading.Lock()
        t0 = time.monotonic()
        deadline = t0 + seconds
        threads = [threading.Thread(target=worker, args=(port, stop, counter, lock, deadline), daemon=True)
                   for _ in range(per_source)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(seconds + 30)
        elapsed = time.monotonic() - t0
        return {"tarpit": tarpit, "rcpts": counter[0], "seconds": round(elapsed, 2),
                "per_minute": round(counter[0] * 60 / elapsed, 1),
                "minutes_for_target": round(rcpts / (counter[0] * 60 / elapsed), 2) if counter[0] else None}
    finally:
        if proc and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=str(REPO / "build/host/tarpitd"))
    ap.add_argument("--rcpts", type=int, default=10000)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--tarpit", default="00:00:05")
    ap.add_argument("--per-source", type=int, default=20)
    ap.add_argument("--out-json")
    a = ap.parse_args()
    on = run(a.bin, a.tarpit, a.per_source, a.rcpts, a.seconds)
    off = run(a.bin, "00:00:00", a.per_source, a.rcpts, a.seconds)
    ratio = off["per_minute"] / on["per_minute"] if on["per_minute"] else None
    res = {"target_rcpts": a.rcpts, "tarpit_on": on, "tarpit_off": off,
           "slowdown": round(ratio, 1) if ratio else None}
    print(json.dumps(res, indent=2))
    if a.out_json:
        Path(a.out_json).write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    sys.exit(main())
