#!/usr/bin/python3
"""tarpit_hold: memory and latency of tarpitd while N harvesters are parked.

Starts its own server (temporary directory, free port on 127.0.0.1), reads
the server's idle memory, parks N clients on the tarpit (EHLO, MAIL, RCPT to
an unknown user: the 550 waits tarpit_interval), reads the memory again,
times a few valid deliveries while all N are held, then waits for the N
550 replies and cleans up. Bounded: everything stops at --deadline.

Only loopback traffic: the server listens on 127.0.0.1, the parked clients
bind to 127.0.0.2.., the valid client comes from 127.0.0.1.

  /usr/bin/python3 host-tests/bench/tarpit_hold.py --n 10000 --tarpit 20 \
      --out-json /tmp/hold.json
"""
import argparse
import errno
import json
import os
import resource
import selectors
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
DEFAULT_BIN = os.path.normpath(os.path.join(HERE, "..", "..", "build", "host", "tarpitd"))
PIPELINE = b"EHLO x\r\nMAIL FROM:<a@b.org>\r\nRCPT TO:<nobody@example.org>\r\n"
IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)
MESSAGE = (b"From: bench <a@b.org>\r\nTo: alice@example.org\r\n"
           b"Subject: tarpit_hold\r\n\r\nhello while the harvesters wait\r\n")

# Per-connection phases.
CONNECTING, GREETING, REPLIES, DONE, FAILED = range(5)


class Client:
    __slots__ = ("sock", "phase", "buf", "replies", "sent_at", "answered_at",
                 "codes", "line_code", "error")

    def __init__(self, sock):
        self.sock = sock
        self.phase = CONNECTING
        self.buf = b""
        self.replies = 0        # complete replies read (greeting included)
        self.codes = []
        self.sent_at = 0.0      # when the pipelined batch (RCPT included) went out
        self.answered_at = 0.0  # when the RCPT reply arrived
        self.error = ""


def smaps(pid):
    out = {}
    with open("/proc/%d/smaps_rollup" % pid) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 3 and parts[-1] == "kB":
                out[parts[0].rstrip(":")] = int(parts[1])
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                out[line.split(":")[0]] = int(line.split()[1])
    out["fds"] = len(os.listdir("/proc/%d/fd" % pid))
    return out


def tcp_mem_pages():
    """Kernel TCP buffer pages, machine-wide (client and server sides)."""
    try:
        with open("/proc/net/sockstat") as f:
            for line in f:
                if line.startswith("TCP:"):
                    p = line.split()
                    return int(p[p.index("mem") + 1])
    except (OSError, ValueError):
        pass
    return -1


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def fmt_ts(seconds):
    return "%02d:%02d:%02d" % (seconds // 3600, seconds // 60 % 60, seconds % 60)


def write_config(tmp, port, n, tarpit, extra):
    os.mkdir(os.path.join(tmp, "spool"))
    with open(os.path.join(tmp, "recipients"), "w") as f:
        f.write("alice@example.org\n")
    ini = os.path.join(tmp, "bench.ini")
    with open(ini, "w") as f:
        f.write("[server]\n"
                "hostname = mx.bench\n"
                "max_connections = %d\n"
                "recipients = recipients\n"
                "spool = spool\n"
                "log = stderr\n"
                "log_level = warning\n"
                # The pure tarpit is measured: with the harvest table on,
                # 1,000 harvesters per source address would discredit it
                # and be held at the greeting instead of at RCPT.
                "[harvest]\n"
                "table_size = 0\n"
                "[connector \"Default Frontend\"]\n"
                "bindings = 127.0.0.1:%d\n"
                "tarpit_interval = %s\n"
                "max_inbound_connections = 1000000\n"
                "max_inbound_connections_per_source = 1000000\n"
                "connection_inactivity_timeout = 00:05:00\n"
                % (n + 64, port, fmt_ts(tarpit)))
        for kv in extra:
            f.write(kv + "\n")
    return ini


def raise_nofile(want):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))  # root only
            return
        except (ValueError, OSError):
            want = hard
    if soft == resource.RLIM_INFINITY or soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def wait_ready(port, proc, deadline):
    """Until the server greets; the probe session also warms its code paths."""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("server exited with status %s at start" % proc.returncode)
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                s.settimeout(2)
                data = b""
                while b"\r\n" not in data:
                    chunk = s.recv(512)
                    if not chunk:
                        break
                    data += chunk
                if data.startswith(b"220"):
                    s.sendall(b"QUIT\r\n")
                    try:
                        s.recv(512)
                    except OSError:
                        pass
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError("server did not greet on port %d" % port)


def parse_replies(c, now):
    """Consumes complete reply lines; returns False on a protocol surprise."""
    while True:
        i = c.buf.find(b"\n")
        if i < 0:
            return True
        line, c.buf = c.buf[:i + 1], c.buf[i + 1:]
        if len(line) < 4 or not line[:3].isdigit():
            c.error = "bad line %r" % line[:40]
            return False
        if line[3:4] == b"-":
            continue
        c.codes.append(int(line[:3]))
        c.replies += 1
        if c.replies == 4:
            c.answered_at = now


def hold(args, port, deadline, clients, stats):
    """Opens N connections and drives them until every MAIL has its 250."""
    sel = selectors.DefaultSelector()
    nsrc = max(1, (args.n + args.per_source - 1) // args.per_source)
    if nsrc > 250:
        raise RuntimeError("--per-source too small: would need %d source addresses" % nsrc)
    opened = 0
    pending = 0  # connecting or awaiting the greeting: bounded burst
    held = 0
    t0 = time.monotonic()
    while time.monotonic() < deadline:
        while opened < args.n and pending < args.burst:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            s.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
            s.bind(("127.0.0.%d" % (2 + opened % nsrc), 0))
            c = Client(s)
            err = s.connect_ex(("127.0.0.1", port))
            if err not in (0, errno.EINPROGRESS):
                c.phase = FAILED
                c.error = "connect: %s" % os.strerror(err)
                stats["connect_errors"] += 1
                s.close()
            else:
                sel.register(s, selectors.EVENT_WRITE, c)
                pending += 1
            clients.append(c)
            opened += 1
        if opened >= args.n and held + stats["failed"] >= args.n:
            break
        for key, ev in sel.select(timeout=0.2):
            c = key.data
            now = time.monotonic()
            if c.phase == CONNECTING:
                err = c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    c.phase, c.error = FAILED, "connect: %s" % os.strerror(err)
                    stats["connect_errors"] += 1
                    stats["failed"] += 1
                    pending -= 1
                    sel.unregister(c.sock)
                    c.sock.close()
                    continue
                c.phase = GREETING
                sel.modify(c.sock, selectors.EVENT_READ, c)
                continue
            try:
                data = c.sock.recv(4096)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError as e:
                data, c.error = b"", "recv: %s" % e
            if not data:
                c.error = c.error or "closed by server after %s" % c.codes
                if c.phase == GREETING:
                    pending -= 1
                c.phase = FAILED
                stats["failed"] += 1
                sel.unregister(c.sock)
                c.sock.close()
                continue
            c.buf += data
            before = c.replies
            if not parse_replies(c, now):
                c.phase = FAILED
            if c.phase == GREETING and c.replies >= 1:
                pending -= 1
                if c.codes[0] != 220:
                    c.phase, c.error = FAILED, "greeting %d" % c.codes[0]
                    stats["refused"] += 1
                else:
                    c.phase = REPLIES
                    c.sent_at = time.monotonic()
                    c.sock.sendall(PIPELINE)  # fits any socket buffer
            if c.phase == FAILED:
                stats["failed"] += 1
                sel.unregister(c.sock)
                c.sock.close()
                continue
            if before < 3 <= c.replies:
                if c.codes[1] == 250 and c.codes[2] == 250:
                    held += 1
                else:
                    c.phase, c.error = FAILED, "EHLO/MAIL got %s" % c.codes
                    stats["failed"] += 1
                    sel.unregister(c.sock)
                    c.sock.close()
                    continue
            if before < 4 <= c.replies:
                stats["early_answers"] += 1  # the tarpit ran out before all were held
    stats["hold_seconds"] = time.monotonic() - t0
    stats["held"] = held
    return sel


def valid_delivery(port):
    t = time.monotonic()
    with smtplib.SMTP("127.0.0.1", port, local_hostname="valid.bench", timeout=30,
                      source_address=("127.0.0.1", 0)) as s:
        s.ehlo("valid.bench")
        code, msg = s.mail("bench@b.org")
        if code != 250:
            raise RuntimeError("valid MAIL: %d %r" % (code, msg))
        code, msg = s.rcpt("alice@example.org")
        if code != 250:
            raise RuntimeError("valid RCPT: %d %r" % (code, msg))
        code, msg = s.data(MESSAGE)
        if code != 250:
            raise RuntimeError("valid DATA: %d %r" % (code, msg))
        s.quit()
    return (time.monotonic() - t) * 1000.0


def drain(sel, args, deadline, clients, stats):
    """Until every held client has its RCPT reply (or the deadline)."""
    want = sum(1 for c in clients if c.phase == REPLIES)
    while time.monotonic() < deadline:
        if sum(1 for c in clients if c.phase == REPLIES and c.replies >= 4) >= want:
            break
        for key, ev in sel.select(timeout=0.5):
            c = key.data
            now = time.monotonic()
            try:
                data = c.sock.recv(4096)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError as e:
                data, c.error = b"", "recv: %s" % e
            if not data:
                c.error = c.error or "closed by server after %s" % c.codes
                c.phase = FAILED
                stats["failed"] += 1
                sel.unregister(c.sock)
                c.sock.close()
                continue
            c.buf += data
            if not parse_replies(c, now):
                c.phase = FAILED
                stats["failed"] += 1
                sel.unregister(c.sock)
                c.sock.close()


def stop_server(proc):
    if proc is None or proc.poll() is not None:
        return None
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
        return "killed"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=10000, help="connections to park")
    ap.add_argument("--tarpit", type=int, default=20, help="tarpit_interval in seconds")
    ap.add_argument("--bin", default=DEFAULT_BIN, help="tarpitd binary")
    ap.add_argument("--out-json", help="write the results here")
    ap.add_argument("--deliveries", type=int, default=5, help="valid deliveries under load")
    ap.add_argument("--per-source", type=int, default=1000, help="connections per source address")
    ap.add_argument("--burst", type=int, default=512, help="connections opening at once")
    ap.add_argument("--deadline", type=int, help="overall limit in seconds (default tarpit + 120)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    ap.add_argument("--connector-option", action="append", default=[], metavar="KEY=VALUE",
                    help="extra line for the connector section (repeatable)")
    ap.add_argument("--smaps-dump", metavar="FILE",
                    help="copy the server's /proc/PID/smaps here while all are held")
    args = ap.parse_args()
    if args.n < 1 or args.tarpit < 1 or args.tarpit > 600:
        ap.error("--n must be >= 1 and --tarpit within 1..600")
    start = time.monotonic()
    deadline = start + (args.deadline if args.deadline else args.tarpit + 120)
    raise_nofile(args.n + 1024)

    tmp = tempfile.mkdtemp(prefix="tarpit_hold.")
    proc = None
    clients = []
    sel = None
    stats = {"connect_errors": 0, "failed": 0, "refused": 0, "early_answers": 0,
             "held": 0, "hold_seconds": 0.0}
    result = None
    server_status = None
    log_path = os.path.join(tmp, "server.log")
    try:
        port = free_port()
        ini = write_config(tmp, port, args.n, args.tarpit, args.connector_option)
        server_nofile = args.n + 4096

        def limits():
            resource.setrlimit(resource.RLIMIT_NOFILE, (server_nofile, server_nofile))

        with open(log_path, "wb") as log:
            proc = subprocess.Popen([args.bin, "-c", ini, "run"], stdin=subprocess.DEVNULL,
                                    stdout=log, stderr=subprocess.STDOUT, preexec_fn=limits)
        wait_ready(port, proc, min(deadline, time.monotonic() + 10))
        time.sleep(0.2)
        idle = smaps(proc.pid)
        tcp_idle = tcp_mem_pages()

        sel = hold(args, port, deadline, clients, stats)
        if proc.poll() is not None:
            raise RuntimeError("server died while connections were opening (status %s)" % proc.returncode)
        loaded = smaps(proc.pid)
        tcp_loaded = tcp_mem_pages()
        if args.smaps_dump:
            shutil.copyfile("/proc/%d/smaps" % proc.pid, args.smaps_dump)

        latencies = []
        delivery_errors = []
        for _ in range(args.deliveries):
            if time.monotonic() >= deadline:
                break
            try:
                latencies.append(valid_delivery(port))
            except (OSError, smtplib.SMTPException, RuntimeError) as e:
                delivery_errors.append(str(e))
        # Still all held? (the deliveries must have happened under load)
        held_during = sum(1 for c in clients if c.phase == REPLIES)
        answered_before_deliveries_end = sum(1 for c in clients if c.phase == REPLIES and c.replies >= 4)

        drain(sel, args, deadline, clients, stats)
        after = smaps(proc.pid)

        waits = sorted(c.answered_at - c.sent_at for c in clients
                       if c.phase == REPLIES and c.replies >= 4)
        answered = sum(1 for c in clients if c.phase == REPLIES and c.replies >= 4
                       and c.codes[3] == 550)
        other = {}
        for c in clients:
            if c.replies >= 4 and c.codes[3] != 550:
                other[c.codes[3]] = other.get(c.codes[3], 0) + 1
        errors = {}
        for c in clients:
            if c.error:
                key = c.error.split(" after ")[0]
                errors[key] = errors.get(key, 0) + 1

        stored = 0
        for root, dirs, files in os.walk(os.path.join(tmp, "spool")):
            if os.path.basename(root) == "new":
                stored += len(files)

        pd_delta = loaded["Private_Dirty"] - idle["Private_Dirty"]
        result = {
            "n": args.n,
            "connector_options": args.connector_option,
            "tarpit": args.tarpit,
            "held": stats["held"],
            "answered": answered,
            "other_rcpt_replies": other,
            "connect_errors": stats["connect_errors"],
            "failed": stats["failed"],
            "client_errors": errors,
            "answered_before_all_held": stats["early_answers"],
            "hold_seconds": round(stats["hold_seconds"], 3),
            "idle_private_dirty_kib": idle["Private_Dirty"],
            "idle_pss_kib": idle["Pss"],
            "idle_rss_kib": idle["Rss"],
            "loaded_private_dirty_kib": loaded["Private_Dirty"],
            "loaded_pss_kib": loaded["Pss"],
            "loaded_rss_kib": loaded["Rss"],
            "loaded_fds": loaded["fds"],
            "after_answers_private_dirty_kib": after["Private_Dirty"],
            "per_slot_private_dirty_bytes": round(pd_delta * 1024 / args.n, 1),
            "per_slot_pss_bytes": round((loaded["Pss"] - idle["Pss"]) * 1024 / args.n, 1),
            "total_private_dirty_loaded_kib": loaded["Private_Dirty"],
            "kernel_tcp_mem_pages_idle": tcp_idle,
            "kernel_tcp_mem_pages_loaded": tcp_loaded,
            "valid_delivery_ms": [round(x, 2) for x in latencies],
            "valid_delivery_max_ms": round(max(latencies), 2) if latencies else None,
            "valid_delivery_errors": delivery_errors,
            "valid_messages_stored": stored,
            "held_during_deliveries": held_during,
            "answered_before_deliveries_done": answered_before_deliveries_end,
            "rcpt_wait_s": {
                "min": round(waits[0], 3) if waits else None,
                "median": round(statistics.median(waits), 3) if waits else None,
                "max": round(waits[-1], 3) if waits else None,
            },
        }
    finally:
        for c in clients:
            try:
                c.sock.close()
            except OSError:
                pass
        if sel is not None:
            sel.close()
        server_status = stop_server(proc)
        log_text = ""
        try:
            with open(log_path, "rb") as f:
                log_text = f.read().decode("utf-8", "replace")
        except OSError:
            pass
        if result is None and log_text:
            print("server log:\n" + log_text[-4000:], file=sys.stderr)
        if args.keep:
            print("kept %s" % tmp, file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    log_lines = log_text.splitlines()
    result["server_exit"] = server_status
    result["server_log_lines"] = len(log_lines)
    result["server_log_head"] = log_lines[:20]
    result["elapsed_s"] = round(time.monotonic() - start, 1)

    r = result
    print("tarpit_hold: n=%d tarpit=%ds held=%d (in %.1fs) answered=%d failed=%d connect_errors=%d"
          % (r["n"], r["tarpit"], r["held"], r["hold_seconds"], r["answered"], r["failed"],
             r["connect_errors"]))
    print("  Private_Dirty idle %d KiB, loaded %d KiB -> %.0f bytes per held slot"
          % (r["idle_private_dirty_kib"], r["loaded_private_dirty_kib"],
             r["per_slot_private_dirty_bytes"]))
    print("  Pss idle %d KiB, loaded %d KiB; RSS loaded %d KiB; fds %d"
          % (r["idle_pss_kib"], r["loaded_pss_kib"], r["loaded_rss_kib"], r["loaded_fds"]))
    print("  valid delivery under load (ms): %s  max %s%s"
          % (", ".join("%.1f" % x for x in r["valid_delivery_ms"]), r["valid_delivery_max_ms"],
             ("  ERRORS %s" % r["valid_delivery_errors"]) if r["valid_delivery_errors"] else ""))
    w = r["rcpt_wait_s"]
    print("  RCPT->550 wait (s): min %s median %s max %s" % (w["min"], w["median"], w["max"]))
    if r["client_errors"] or r["other_rcpt_replies"]:
        print("  client errors: %s  other RCPT replies: %s" % (r["client_errors"], r["other_rcpt_replies"]))
    print("  server exit %s, %d log line(s)%s" % (server_status, len(log_lines),
          "" if not log_lines else ": " + " | ".join(log_lines[:3])))
    if args.out_json:
        with open(args.out_json, "w") as f:
            json.dump(result, f, indent=2)
            f.write("\n")
    ok = (r["held"] == r["n"] and r["answered"] == r["n"] and not r["valid_delivery_errors"]
          and len(r["valid_delivery_ms"]) == args.deliveries)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
