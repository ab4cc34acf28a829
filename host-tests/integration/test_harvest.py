"""Harvest defense (SPEC §8 last paragraph, issue 7): discredited sources
across connections, expiry, the fixed-size table, and the ban hook."""

import re
import stat
import time

import pytest

from conftest import DELAYED, IMMEDIATE
from test_connectors import Multi, logfmt

CONNECTOR = """\
[connector "Default Frontend"]
bindings = 127.0.0.1:{port}
tarpit_interval = 00:00:02
tarpit_all_after_unknown = no
max_inbound_connections_per_source = 500
"""


def harvest_section(table_size=64, threshold=3, window="00:00:04", ban=None):
    text = f"\n[harvest]\ntable_size = {table_size}\nthreshold = {threshold}\nwindow = {window}\n"
    if ban:
        text += f"ban_command = {ban}\n"
    return text


@pytest.fixture
def harvest_server(tmp_path):
    made = []

    def make_with(section, connectors=CONNECTOR):
        # The [harvest] section goes after [server] (section order is free).
        m = Multi(tmp_path, section + "\n" + connectors)
        made.append(m)
        return m

    yield make_with
    for m in made:
        m.stop()
        print(m.stderr())


def greeting_delay(m, source):
    c = m.client(source)
    r = c.expect(220)
    return c, r.t - c.t_connect


def rcpt_delay(c, rcpt):
    t = c.send(f"RCPT TO:<{rcpt}>\r\n")
    r = c.reply()
    return r, r.t - t


def harvest(m, source, n):
    """n unknown recipients from source, waiting out each tarpitted 550."""
    c, _ = greeting_delay(m, source)
    c.expect(250, None, "EHLO h.test", timeout=10)
    c.expect(250, "2.1.0", "MAIL FROM:<h@origin.test>", timeout=10)
    for i in range(n):
        r, _ = rcpt_delay(c, f"nobody{i}@example.org")
        assert (r.code, r.enh) == (550, "5.1.1")
    c.close()


def test_threshold_discredits_the_source_not_others(harvest_server):
    m = harvest_server(harvest_section(threshold=3, window="00:01:00"))
    harvest(m, "127.0.0.7", 3)
    m.wait_log(r"event=discredited ip=127\.0\.0\.7 reason=unknown_recipients")
    # The next connection from the source: greeting after T, and a VALID
    # recipient after T too, so timing no longer tells which exist.
    c, d = greeting_delay(m, "127.0.0.7")
    assert d >= DELAYED
    c.expect(250, None, "EHLO h.test")
    c.expect(250, "2.1.0", "MAIL FROM:<h@origin.test>")
    r, d = rcpt_delay(c, "alice@example.org")
    assert (r.code, d >= DELAYED) == (250, True), d
    c.close()
    # Another source is untouched.
    o, d = greeting_delay(m, "127.0.0.8")
    assert d < IMMEDIATE
    o.expect(250, None, "EHLO o.test")
    o.expect(250, "2.1.0", "MAIL FROM:<o@origin.test>")
    r, d = rcpt_delay(o, "alice@example.org")
    assert r.code == 250 and d < IMMEDIATE
    o.close()
    p = m.tarpitd("stats")
    srv = next(logfmt(ln) for ln in p.stdout.splitlines() if ln.startswith("scope=server"))
    assert srv["discredited_current"] == "1" and srv["discredits_total"] == "1", p.stdout


def test_below_threshold_is_not_discredited(harvest_server):
    m = harvest_server(harvest_section(threshold=3, window="00:01:00"))
    harvest(m, "127.0.0.7", 2)
    c, d = greeting_delay(m, "127.0.0.7")
    assert d < IMMEDIATE
    c.close()


def test_hangup_while_tarpitted_discredits(harvest_server):
    m = harvest_server(harvest_section(threshold=100, window="00:01:00"))
    c, _ = greeting_delay(m, "127.0.0.9")
    c.expect(250, None, "EHLO h.test")
    c.expect(250, "2.1.0", "MAIL FROM:<h@origin.test>")
    c.send("RCPT TO:<nobody@example.org>\r\n")
    time.sleep(0.3)
    c.close()
    m.wait_log(r"event=discredited ip=127\.0\.0\.9 reason=hangup_while_tarpitted")
    c, d = greeting_delay(m, "127.0.0.9")
    assert d >= DELAYED
    c.close()


def test_mark_expires_after_a_quiet_window(harvest_server):
    m = harvest_server(harvest_section(threshold=1, window="00:00:03"))
    harvest(m, "127.0.0.10", 1)            # discredited at once (threshold 1)
    t_offence = time.monotonic()
    c, d = greeting_delay(m, "127.0.0.10")
    assert d >= DELAYED                    # still within the window
    c.close()
    time.sleep(max(0.0, t_offence + 3.3 - time.monotonic()))
    c, d = greeting_delay(m, "127.0.0.10")
    assert d < IMMEDIATE                   # a whole window without offence
    c.close()


def test_ipv6_style_and_distinct_ipv4_sources(harvest_server):
    # IPv4 sources are counted per address: 127.0.0.11 and .12 are apart.
    m = harvest_server(harvest_section(threshold=2, window="00:01:00"))
    harvest(m, "127.0.0.11", 1)
    harvest(m, "127.0.0.12", 1)
    for src in ("127.0.0.11", "127.0.0.12"):
        c, d = greeting_delay(m, src)
        assert d < IMMEDIATE, src
        c.close()


def private_dirty_kib(pid):
    text = open(f"/proc/{pid}/smaps_rollup").read()
    return int(re.search(r"^Private_Dirty:\s+(\d+) kB", text, re.M).group(1))


def test_full_table_replaces_least_recently_seen(harvest_server):
    m = harvest_server(harvest_section(table_size=2, threshold=100, window="00:01:00"))

    def hang_up(source):
        c, _ = greeting_delay(m, source)
        c.expect(250, None, "EHLO h.test")
        c.expect(250, "2.1.0", "MAIL FROM:<h@origin.test>")
        c.send("RCPT TO:<nobody@example.org>\r\n")
        time.sleep(0.05)
        c.abort()

    hang_up("127.0.1.1")
    m.wait_log(r"ip=127\.0\.1\.1 reason=hangup")
    hang_up("127.0.1.2")
    m.wait_log(r"ip=127\.0\.1\.2 reason=hangup")
    hang_up("127.0.1.3")                   # the table holds 2: .1 is replaced
    m.wait_log(r"ip=127\.0\.1\.3 reason=hangup")
    c, d = greeting_delay(m, "127.0.1.1")
    assert d < IMMEDIATE
    c.close()
    c, d = greeting_delay(m, "127.0.1.3")
    assert d >= DELAYED
    c.close()
    # Many more sources: the table stays at its fixed size and memory does
    # not grow with them.
    before = private_dirty_kib(m.proc.pid)
    for i in range(60):
        hang_up(f"127.0.2.{i + 1}")
    m.wait_log(r"ip=127\.0\.2\.60 reason=hangup")
    after = private_dirty_kib(m.proc.pid)
    assert after - before <= 16, (before, after)
    p = m.tarpitd("stats")
    srv = next(logfmt(ln) for ln in p.stdout.splitlines() if ln.startswith("scope=server"))
    assert srv["harvest_table_size"] == "2" and srv["harvest_table_used"] == "2", p.stdout


def test_trusted_connector_and_authenticated_never_count(harvest_server):
    m = harvest_server(harvest_section(threshold=1, window="00:01:00"), connectors=CONNECTOR + """
[connector "Trusted"]
bindings = 127.0.0.1:{port}
remote_ip_ranges = 127.0.0.20
tarpit_interval = 00:00:00
""")
    c, _ = greeting_delay(m, "127.0.0.20")
    c.expect(250, None, "EHLO t.test")
    c.expect(250, "2.1.0", "MAIL FROM:<t@origin.test>")
    for i in range(3):
        r, d = rcpt_delay(c, f"nobody{i}@example.org")
        assert r.code == 550 and d < IMMEDIATE
    c.close()
    c, d = greeting_delay(m, "127.0.0.20")
    assert d < IMMEDIATE
    c.close()
    assert "event=discredited" not in m.stderr()


def write_ban_script(tmp_path, sleep=0.0):
    out = tmp_path / "ban.out"
    script = tmp_path / "ban.sh"
    script.write_text(f"""#!/bin/sh
# Records its arguments one per line, then lingers.
for a in "$@"; do printf '%s\\n' "$a"; done >> {out}
echo --- >> {out}
sleep {sleep}
""")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script, out


def test_ban_hook_gets_the_address_as_one_argument_without_a_shell(harvest_server, tmp_path):
    script, out = write_ban_script(tmp_path, sleep=3)
    canary = tmp_path / "canary"
    # With a shell, "&& touch CANARY" would run touch; without one these
    # are plain arguments, and so is the address. (";" would start an INI
    # comment.)
    m = harvest_server(harvest_section(threshold=1, window="00:01:00",
                                       ban=f"{script} --source %a && touch {canary}"))
    harvest(m, "127.0.0.30", 1)
    m.wait_log(r"event=ban ip=127\.0\.0\.30")
    # The hook sleeps 3 s: other sessions are served meanwhile.
    c, d = greeting_delay(m, "127.0.0.31")
    assert d < IMMEDIATE
    c.expect(250, None, "EHLO o.test")
    c.close()
    end = time.monotonic() + 5
    while time.monotonic() < end and not (out.exists() and "---" in out.read_text()):
        time.sleep(0.05)
    args = out.read_text().split("---\n")[0].splitlines()
    assert args == ["--source", "127.0.0.30", "&&", "touch", str(canary)], args
    assert not canary.exists()
    # At most once per source per window: more offences, no second run.
    harvest(m, "127.0.0.30", 2)
    time.sleep(0.5)
    assert out.read_text().count("---") == 1
    p = m.tarpitd("stats")
    srv = next(logfmt(ln) for ln in p.stdout.splitlines() if ln.startswith("scope=server"))
    assert srv["bans_total"] == "1", p.stdout


def test_ban_hook_failure_is_logged_and_harmless(harvest_server, tmp_path):
    m = harvest_server(harvest_section(threshold=1, window="00:01:00",
                                       ban=f"{tmp_path}/missing-script %a"))
    harvest(m, "127.0.0.40", 1)
    m.wait_log(r"event=ban_failed")
    c, d = greeting_delay(m, "127.0.0.41")
    assert d < IMMEDIATE
    c.close()
