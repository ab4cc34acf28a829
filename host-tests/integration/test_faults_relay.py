"""Fault injection on the gateway role (issue 15, SPEC §10 and §5): the
durable forwarding queue under kill -9 and a full disk, forwarding to a
real next hop (a private Postfix, peers.PostfixPeer, so every message
that reached it can be read back from its Maildirs and identified by its
X-Fault-Id header).

Marked `faults` like test_faults.py: `make test-faults` runs both.

  TARPITD_FAULT_SEED   seed of the random choices (printed; replays a run)
  TARPITD_TIME_SCALE   stretches the deadlines (slow machines, valgrind)
"""

import collections
import random
import re
import subprocess
import time

import pytest

import peers
from conftest import BIN, parse_stored
from gateway_util import queue_files as queue_names
# Not test_* names: importing them would collect test_faults' tests twice.
from test_faults import SCALE, SEED, LoadClients, Shim, failshim, fserver, wait_for  # noqa: F401 (fixtures)

pytestmark = pytest.mark.faults

SENDER = "load@origin.test"
OFFICE = ("alice@office.test", "bob@office.test", "carol@office.test")
LOCAL = "dave@example.org"
RECIPIENTS = "\n".join(OFFICE + (LOCAL,)) + "\n"
MAX_CONNECTIONS = 4


@pytest.fixture(scope="module")
def office():
    """One private Postfix for the module: the next hop. Its smtpd never
    slows a fast client down (in_flow_delay)."""
    p = peers.PostfixPeer(domains=("office.test",), users=("alice", "bob", "carol"), tls=False,
                          main_extra="in_flow_delay = 0\n")
    p.start()
    yield p
    p.stop()


def gateway(fserver, office, env=None, **server):
    """tarpitd forwarding office.test to the Postfix; dave@example.org is
    local. retry_min 1 s: a deferral costs the test a second, not minutes."""
    overrides = {"log_level": "info", "control": "ctl.sock"}
    overrides.update(server)
    srv = fserver(recipients=RECIPIENTS, server_overrides=overrides, start=False,
                  max_inbound_connections_per_source="64")
    srv.extra = (f'\n[relay "Office"]\nhost = 127.0.0.1:{office.port}\ndomains = office.test\n'
                 f"starttls = no\nmax_connections = {MAX_CONNECTIONS}\n"
                 "retry_min = 00:00:01\nretry_max = 00:00:02\n")
    srv.write_ini()
    if env is not None:
        srv.env = env(srv.spool)
    srv.start()
    return srv


def queue_tmp(srv):
    d = srv.spool / "queue" / "tmp"
    return sorted(p.name for p in d.iterdir()) if d.is_dir() else []


_HEAD = re.compile(rb"^X-Fault-Id: (\S+)\n", re.M)


def at_office(office, prefix):
    """{(uid, mailbox): [the message as Postfix stored it, from our first
    header on]} for the uids starting with prefix, and the files that
    carry none (a partial or foreign message)."""
    got, strays = collections.defaultdict(list), []
    for user in ("alice", "bob", "carol"):
        addr = f"{user}@office.test"
        for f in office.maildir(addr):
            with open(f, "rb") as fh:
                data = fh.read()
            m = _HEAD.search(data)
            if not m:
                strays.append(f)
                continue
            uid = m.group(1).decode()
            if uid.startswith(prefix):
                got[(uid, addr)].append(data[m.start():])
    return got, strays


def postfix_transactions(office, prefix):
    """From Postfix's log: {uid: [queue ids delivered]} for our uids, and
    the queue ids that were the last transaction of a session that did not
    end with QUIT (cut by a kill: the message that session had in flight)."""
    sessions, cur, uid_of, delivered = [], {}, {}, set()
    for ln in office.log_text().splitlines():
        m = re.search(r"postfix/(\w+)\[(\d+)\]: (.*)$", ln)
        if not m:
            continue
        prog, pid, rest = m.groups()
        if prog == "smtpd":
            if rest.startswith("connect from"):
                cur[pid] = {"qids": [], "quit": False}
                sessions.append(cur[pid])
            elif rest.startswith("disconnect from") and pid in cur:
                cur[pid]["quit"] = " quit=1" in rest
            elif (q := re.match(r"([0-9A-F]+): client=", rest)) and pid in cur:
                cur[pid]["qids"].append(q.group(1))
        elif prog == "cleanup" and (q := re.match(r"([0-9A-F]+): message-id=<(\S+)@faults\.test>", rest)):
            uid_of[q.group(1)] = q.group(2)
        elif prog == "virtual" and (q := re.match(r"([0-9A-F]+): to=<.*status=sent", rest)):
            delivered.add(q.group(1))
    per_uid = collections.defaultdict(list)
    for q in sorted(delivered):
        if uid_of.get(q, "").startswith(prefix):
            per_uid[uid_of[q]].append(q)
    cut = {s["qids"][-1] for s in sessions if s["qids"] and not s["quit"]}
    return per_uid, cut


def make_message(rnd, uid, size):
    """Complete headers (so Postfix adds none), then lines with leading
    dots (stuffed on the way out, unstuffed by Postfix), LF line ends."""
    head = (f"X-Fault-Id: {uid}\nFrom: <{SENDER}>\nTo: <undisclosed@office.test>\n"
            f"Date: Thu, 01 Jan 2026 00:00:00 +0000\nMessage-ID: <{uid}@faults.test>\n"
            f"Subject: relay fault {uid}\n\n").encode()
    lines, n = [], len(head)
    while n < size:
        r = rnd.random()
        line = (b"." if r < 0.05 else b"..\t" if r < 0.07 else b"") + \
            rnd.randbytes(rnd.randint(0, 60)).hex().encode()
        lines.append(line)
        n += len(line) + 1
    return head + b"\n".join(lines) + b"\n"


# ------------------------------------------- a. kill -9 while forwarding

@pytest.mark.skipif(peers.missing("postfix"), reason="postfix not installed")
def test_kill9_while_forwarding_at_least_once(fserver, office):
    """500 messages answered 250 (1-20 KB, 1-3 forwarded recipients, one in
    five also to a local mailbox), sent by 4 smtplib clients, several
    messages per session, and forwarded at once to Postfix over up to
    MAX_CONNECTIONS sessions; tarpitd is SIGKILLed at 12 random moments (8
    while accepting, 4 while only draining the queue) and restarted on the
    same spool. Afterwards:
    - every recipient of every message answered 250 has it in its Postfix
      Maildir, byte for byte (at least once), and every local copy is in
      dave's new/;
    - no file at Postfix is partial or unknown;
    - duplicates: at most kills x MAX_CONNECTIONS messages. A duplicate
      comes only from the window between the next hop's 250 and the synced
      removal (or update) of the entry; each outbound session has at most
      one message in that window (the next message is handed to it only
      after finish_message() updated the queue), and there are at most
      MAX_CONNECTIONS sessions, so one kill re-sends at most that many;
    - the queue is empty, queue/tmp and tmp/ are clean."""
    rnd = random.Random(SEED)
    prefix = f"k{SEED}x"
    target, nclients = 500, 4
    kills_accepting, kills_draining = 8, 4
    srv = gateway(fserver, office)

    def message(r, k, n):
        uid = f"{prefix}c{k}n{n}"
        rcpts = r.sample(OFFICE, r.randint(1, 3))
        if r.random() < 0.2:
            rcpts.append(LOCAL)
        return uid, rcpts, make_message(r, uid, r.randint(1024, 20 * 1024)), rcpts

    load = LoadClients(srv.port, nclients, lambda r: r.randint(1, 4), message,
                       done=lambda: load.count() >= target)
    sent, acked, unexpected = load.sent, load.acked, load.unexpected

    def restart():
        srv.kill9()
        left = set(queue_tmp(srv))
        srv.start()
        assert not left & set(queue_tmp(srv)), f"queue/tmp/ leftovers not removed at start: {left}"
        return len(left)

    t0 = time.monotonic()
    load.start()
    kill_at = sorted(rnd.sample(range(10, target - 10), kills_accepting))
    kills, tmp_seen = 0, 0
    deadline = time.monotonic() + 120 * SCALE
    try:
        while kills < kills_accepting:
            n = load.count()
            assert time.monotonic() < deadline, f"only {n} of {target} accepted in time"
            assert not unexpected, f"unexpected SMTP replies: {unexpected[:5]}"
            if n >= kill_at[kills]:
                time.sleep(rnd.uniform(0, 0.05))
                tmp_seen += restart()
                kills += 1
            time.sleep(0.002)
        for t in load.threads:
            t.join(timeout=max(1, deadline - time.monotonic()))
            assert not t.is_alive(), "a client did not finish in time"
    finally:
        load.stop()
    assert not unexpected, f"unexpected SMTP replies: {unexpected[:5]}"
    assert len(acked) >= target
    t_accept = time.monotonic() - t0

    # Kills while only the queue drains: at random points while entries
    # are left, or at once if the queue is already small.
    drain_kills = 0
    for _ in range(kills_draining):
        wait_for(lambda: srv.alive(), 1, "tarpitd")
        time.sleep(rnd.uniform(0, 0.3))
        if any(n.endswith(".env") for n in queue_names(srv)):
            drain_kills += 1
        tmp_seen += restart()
        kills += 1

    wait_for(lambda: not queue_names(srv), 60 * SCALE, "tarpitd's queue to drain")
    wait_for(lambda: not office.queue_files(), 30 * SCALE, "Postfix's queue to drain")
    t_total = time.monotonic() - t0

    got, strays = at_office(office, prefix)
    assert not strays, f"files at the next hop without our header (partial?): {strays[:3]}"
    missing, copies = [], collections.Counter()
    for (uid, addr), datas in got.items():
        assert uid in sent, f"{uid}: at the next hop but never sent"
        msg, rcpts = sent[uid]
        assert addr in rcpts, f"{uid} reached {addr}, sent to {rcpts}"
        for d in datas:
            assert d == msg, f"{uid} at {addr} differs from what was sent ({len(d)} vs {len(msg)} octets)"
        copies[uid] = max(copies[uid], len(datas))
    for uid, (msg, rcpts) in acked.items():
        missing += [(uid, a) for a in rcpts if a != LOCAL and (uid, a) not in got]
    assert not missing, f"answered 250 but never reached the next hop: {missing[:10]}"
    local = collections.Counter()
    for f in srv.new_files(LOCAL):
        _, _, body = parse_stored(f.read_bytes())
        m = _HEAD.search(body)
        assert m and body == sent[m.group(1).decode()][0], f"{f}: partial or unknown local copy"
        local[m.group(1).decode()] += 1
    lost_local = [u for u, (_, r) in acked.items() if LOCAL in r and not local[u]]
    assert not lost_local, f"local copies answered 250 but missing: {lost_local[:10]}"
    assert max(local.values(), default=1) == 1, "a local copy stored twice"

    # Which copies were in flight: Postfix's log ties each delivered copy
    # to its SMTP session. Of a message's copies, all but one must have
    # been the last transaction of a session cut by a kill.
    nfiles = sum(len(v) for v in got.values())

    def logged():
        per_uid, cut = postfix_transactions(office, prefix)
        n = sum(len(qs) * sum(a != LOCAL for a in sent[u][1]) for u, qs in per_uid.items())
        return (per_uid, cut) if n == nfiles else None
    per_uid, cut = peers.wait_until(logged, 10 * SCALE, "Postfix's log to show every delivery")
    for uid, c in copies.items():
        assert len(per_uid[uid]) == c, f"{uid}: {c} copies, {per_uid[uid]} in Postfix's log"
        not_cut = [q for q in per_uid[uid] if q not in cut]
        assert len(not_cut) <= 1, \
            f"{uid} delivered {c} times, {not_cut} of them not in flight at a kill"
    cut_sessions = len(cut & {q for qs in per_uid.values() for q in qs})
    dups = {u: c - 1 for u, c in copies.items() if c > 1}
    extra = sum(dups.values())
    without_250 = len(set(copies) - set(acked))
    print(f"kill9-relay: seed={SEED} acked={len(acked)} sent={len(sent)} kills={kills} "
          f"(draining with entries left: {drain_kills}) queue_tmp_leftovers={tmp_seen} "
          f"delivered_messages={len(copies)} duplicated_messages={len(dups)} extra_copies={extra} "
          f"delivered_in_cut_sessions={cut_sessions} "
          f"forwarded_without_250={without_250} accept_phase={t_accept:.1f}s total={t_total:.1f}s")
    assert extra <= kills * MAX_CONNECTIONS, \
        f"{extra} extra copies after {kills} kills: more than {MAX_CONNECTIONS} per kill {dups}"

    # The end state survives a clean restart: nothing left, nothing recovered.
    srv.stop()
    assert queue_names(srv) == [] and queue_tmp(srv) == [] and srv.tmp_files() == []
    srv.start()
    wait_for(lambda: "event=queue_recovered" in srv.stderr(tail=50), 5 * SCALE, "the recovery")
    p = subprocess.run([str(BIN), "-c", str(srv.ini), "queue"], capture_output=True, text=True,
                       timeout=30)
    assert p.returncode == 0 and "the queue is empty" in p.stdout, p
    assert srv.tmp_files() == [] and queue_tmp(srv) == []
    srv.stop()


# ------------------------------------------------ b. the queue's disk full

def fault_body(uid, size=3000):
    line = b"queue disk full test line " + b"y" * 48 + b"\r\n"
    return (f"X-Fault-Id: {uid}\r\nFrom: <{SENDER}>\r\nTo: <x@office.test>\r\n"
            f"Date: Thu, 01 Jan 2026 00:00:00 +0000\r\nMessage-ID: <{uid}@faults.test>\r\n"
            f"Subject: {uid}\r\n\r\n").encode() + line * max(1, size // len(line))


def send_one(c, rcpts, body):
    """One transaction on an open session: the reply to the end of data."""
    c.mail_rcpt(SENDER, rcpts)
    c.expect(354, None, "DATA")
    c.send(body + b".\r\n")
    return c.reply()


QUEUE_FULL_CASES = [
    # id, control file, recipients, (shim op, a pattern its path matches) that must have failed.
    # A forwarded message joins the group commit (maildir.h): its envelope is
    # staged in queue/tmp/, one syncfs() (made on queue/) covers it with the
    # data, then the links, then one sync of queue/ (an fsync; a syncfs when
    # the round also linked into a local new/).
    ("envelope-write", "write ENOSPC", ("alice@office.test",), ("write", r"/queue/tmp/\w+\.env$")),
    ("envelope-create", "open ENOSPC", ("alice@office.test", "bob@office.test"),
     ("openat", r"/queue/tmp/\w+\.env$")),
    # The round's first sync fails: the staged envelope must go again.
    ("first-sync", "fsync ENOSPC", ("alice@office.test",), ("syncfs", r"/queue$")),
    ("data-link", "link ENOSPC", ("carol@office.test",), ("linkat", r"/queue/\w+\.msg$")),
    # The envelope is renamed into place, then the sync of queue/ fails:
    # both names must go again.
    ("queue-dir-fsync", "fsync ENOSPC skip=1", ("bob@office.test",), ("fsync", r"/queue$")),
    ("mixed-envelope-write", "write ENOSPC", ("alice@office.test", LOCAL), ("write", r"/queue/tmp/\w+\.env$")),
    # Mixed: the local link already made in dave's new/ is taken back.
    ("mixed-data-link", "link ENOSPC", (LOCAL, "carol@office.test"), ("linkat", r"/queue/\w+\.msg$")),
    ("mixed-second-sync", "fsync ENOSPC skip=1", (LOCAL, "carol@office.test"), ("syncfs", r"/queue$")),
]


def warmed_up(fserver, office, shim, prefix):
    """The gateway under SHIM (failing calls only in queue/), one message
    forwarded and its queue entry gone: the faults then fall on a server
    whose next hop is known to work."""
    srv = gateway(fserver, office, env=lambda spool: shim.env(spool, "queue"))
    with srv.client(timeout=10 * SCALE) as c:
        c.greet()
        assert send_one(c, ("alice@office.test",), fault_body(prefix + "warm")).code == 250
    wait_for(lambda: (prefix + "warm", "alice@office.test") in at_office(office, prefix)[0] and not queue_names(srv),
             10 * SCALE, "the warm-up message forwarded and the queue empty")
    return srv


@pytest.mark.skipif(peers.missing("postfix"), reason="postfix not installed")
@pytest.mark.parametrize("spec, rcpts, hit", [c[1:] for c in QUEUE_FULL_CASES],
                         ids=[c[0] for c in QUEUE_FULL_CASES])
def test_queue_disk_full_452_serving_goes_on(fserver, office, failshim, tmp_path, spec, rcpts, hit):
    """The queue's storage fails with ENOSPC (failshim on <spool>/queue
    only, so the Maildir beside it keeps working): a message with
    forwarded recipients gets 452 4.3.1, never 250; nothing of it stays in
    queue/, queue/tmp/, tmp/ or a local new/, and it never reaches the
    next hop. Meanwhile local delivery goes on, in the same session and in
    a new one. With space back, the same session and a new one forward
    again, and the queue drains."""
    prefix = f"d{SEED}{tmp_path.name[-12:]}"
    shim = Shim(failshim, tmp_path)
    srv = warmed_up(fserver, office, shim, prefix)
    got = lambda: at_office(office, prefix)[0]  # noqa: E731
    local_before = {p.name for p in srv.new_files(LOCAL)}

    c = srv.client(timeout=10 * SCALE).greet()
    c.mail_rcpt(SENDER, rcpts)
    c.expect(354, None, "DATA")
    shim.on(spec)
    c.send(fault_body(prefix + "doomed", 100_000) + b".\r\n")
    r = c.reply()
    assert (r.code, r.enh) == (452, "4.3.1"), f"with '{spec}': {r.lines}"
    fired = shim.fired()
    assert any(ln.split()[0] == hit[0] and re.search(hit[1], ln.split()[2]) for ln in fired), \
        f"the shim did not fail {hit}: {fired}"
    assert queue_names(srv) == [], f"left in queue/ after 452: {queue_names(srv)}"
    assert queue_tmp(srv) == [], f"left in queue/tmp/ after 452: {queue_tmp(srv)}"
    wait_for(lambda: srv.tmp_files() == [], 3 * SCALE, "tmp/ to be cleaned after the failure")
    assert {p.name for p in srv.new_files(LOCAL)} == local_before, "a local link stayed after 452"
    # The queue's own steps say queue_error; a failed sync of the round
    # is the store's (every message of the round fails with it).
    assert re.search(r"event=(queue|store)_error", srv.stderr(tail=50))

    # Still failing: local delivery goes on, in this session and a new one.
    assert send_one(c, (LOCAL,), fault_body(prefix + "local-same")).code == 250
    with srv.client(timeout=10 * SCALE) as c2:
        c2.greet()
        assert send_one(c2, (LOCAL,), fault_body(prefix + "local-new")).code == 250
        r = send_one(c2, ("carol@office.test",), fault_body(prefix + "doomed-too"))
        assert (r.code, r.enh) == (452, "4.3.1"), r.lines
    assert queue_names(srv) == [] and queue_tmp(srv) == []

    # Space is back: forwarding works again, in this session and a new one.
    shim.off()
    assert send_one(c, rcpts, fault_body(prefix + "after-same")).code == 250
    c.expect(221, None, "QUIT")
    c.close()
    with srv.client(timeout=10 * SCALE) as c3:
        c3.greet()
        assert send_one(c3, ("bob@office.test",), fault_body(prefix + "after-new")).code == 250
    want = {(prefix + "after-same", a) for a in rcpts if a != LOCAL} | {(prefix + "after-new", "bob@office.test")}
    wait_for(lambda: want <= set(got()) and not queue_names(srv), 15 * SCALE,
             "the messages after the fault forwarded and the queue empty")
    wait_for(lambda: not office.queue_files(), 10 * SCALE, "Postfix's queue to drain")
    at = got()
    assert not any(uid.startswith(prefix + "doomed") for uid, _ in at), sorted(at)
    assert all(len(v) == 1 for v in at.values()), {k: len(v) for k, v in at.items()}
    local = collections.Counter(_HEAD.search(parse_stored(p.read_bytes())[2]).group(1).decode()
                                for p in srv.new_files(LOCAL))
    expect_local = {prefix + "local-same": 1, prefix + "local-new": 1}
    if LOCAL in rcpts:
        expect_local[prefix + "after-same"] = 1
    assert dict(local) == expect_local, local
    assert queue_tmp(srv) == [] and srv.tmp_files() == []
    assert srv.alive()


@pytest.mark.skipif(peers.missing("postfix"), reason="postfix not installed")
def test_queue_disk_full_on_retry_keeps_the_entry(fserver, office, failshim, tmp_path):
    """The disk fills while a message waits for a next hop that is down:
    the deferral's envelope update cannot be written (ENOSPC on queue/),
    so the old envelope stays in force — the entry is intact, tmp/ clean,
    retried on schedule (no busy loop), and delivered once the disk and
    the next hop are back."""
    prefix = f"r{SEED}x"
    shim = Shim(failshim, tmp_path)
    srv = gateway(fserver, office, env=lambda spool: shim.env(spool, "queue"))
    office.halt()
    try:
        with srv.client(timeout=10 * SCALE) as c:
            c.greet()
            r = send_one(c, ("alice@office.test", "bob@office.test"), fault_body(prefix + "wait"))
            assert r.code == 250, r.lines
        qid = r.text.split()[-1]
        downs = lambda: srv.stderr(tail=10_000).count(f"event=relay_down id={qid}")  # noqa: E731
        wait_for(lambda: downs() >= 1, 10 * SCALE, "the first attempt to find the next hop down")
        wait_for(lambda: queue_tmp(srv) == [], 2 * SCALE, "the first update")
        before = (srv.spool / "queue" / f"{qid}.env").read_bytes()
        shim.on("write open ENOSPC")
        n0 = downs()
        wait_for(lambda: "cannot update the envelope" in srv.stderr(tail=200), 10 * SCALE,
                 "an update to fail")
        t0 = time.monotonic()
        time.sleep(3)
        retries = downs() - n0
        assert 1 <= retries <= 3 + 1, f"{retries} attempts in {time.monotonic() - t0:.1f} s: not on schedule"
        assert any(ln.startswith(("write", "openat")) for ln in shim.fired()), shim.fired()
        assert queue_names(srv) == [f"{qid}.env", f"{qid}.msg"], queue_names(srv)
        assert (srv.spool / "queue" / f"{qid}.env").read_bytes() == before, "the envelope changed"
        assert queue_tmp(srv) == [], queue_tmp(srv)
        # Still serving: local delivery works meanwhile.
        with srv.client(timeout=10 * SCALE) as c:
            c.greet()
            assert send_one(c, (LOCAL,), fault_body(prefix + "local")).code == 250
        shim.off()
    finally:
        office.resume()
    subprocess.run([str(BIN), "-c", str(srv.ini), "queue", "flush"], capture_output=True, timeout=30)
    want = {(prefix + "wait", "alice@office.test"), (prefix + "wait", "bob@office.test")}
    wait_for(lambda: want <= set(at_office(office, prefix)[0]) and not queue_names(srv), 15 * SCALE,
             "the waiting message forwarded and the queue empty")
    wait_for(lambda: not office.queue_files(), 10 * SCALE, "Postfix's queue to drain")
    at = at_office(office, prefix)[0]
    assert set(at) == want and all(len(v) == 1 for v in at.values()), at
    assert queue_tmp(srv) == [] and srv.tmp_files() == [] and srv.alive()


@pytest.mark.skipif(peers.missing("postfix"), reason="postfix not installed")
def test_removal_synced_within_a_tick(fserver, office, failshim, tmp_path):
    """The removal of a delivered message is synced (queue/ fsynced) by
    the next commit round or, with none, by the server's tick about a
    second later — not left for the next message to do. Seen through the
    shim: the round's two syncs of queue/ succeed (skip=2), the third,
    the removal's, fails and is logged, with nothing else happening."""
    prefix = f"t{SEED}x"
    shim = Shim(failshim, tmp_path)
    srv = warmed_up(fserver, office, shim, prefix)
    got = lambda: at_office(office, prefix)[0]  # noqa: E731
    time.sleep(1.5)  # its removal synced by a tick
    shim.on("fsync EIO skip=2")
    with srv.client(timeout=10 * SCALE) as c:
        c.greet()
        assert send_one(c, ("alice@office.test",), fault_body(prefix + "one")).code == 250
    wait_for(lambda: (prefix + "one", "alice@office.test") in got() and not queue_names(srv),
             10 * SCALE, "the message forwarded and the queue empty")
    wait_for(lambda: 'event=queue_error error="sync: ' in srv.stderr(tail=50), 3 * SCALE,
             "the removal's sync (by the tick)")
    fired = shim.fired()
    assert fired and all(ln.split()[0] == "fsync" and re.search(r"/queue$", ln.split()[2]) for ln in fired), fired
    # A failed sync stays to do: the next tick tries again.
    n = srv.stderr(tail=200).count('event=queue_error error="sync: ')
    wait_for(lambda: srv.stderr(tail=200).count('event=queue_error error="sync: ') > n, 3 * SCALE,
             "the sync tried again at the next tick")
    shim.off()
    time.sleep(1.5)
    n = srv.stderr(tail=200).count('event=queue_error error="sync: ')
    time.sleep(1.5)
    assert srv.stderr(tail=200).count('event=queue_error error="sync: ') == n, "synced, no more retries"
    assert srv.alive()
