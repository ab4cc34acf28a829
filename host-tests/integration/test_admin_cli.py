"""SPEC §2-§3: `show`, `set` and `stats`, and `check`'s errors across
connectors, driving the real binary on INI files in tmp_path.

`set` is judged on bytes: a change touches exactly the lines it names and
an invalid change touches nothing.
"""

import os
import re
import shutil
import socket
import stat
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

from conftest import BIN, DEFAULT_RECIPIENTS, free_port, needs_tls


def run(*args, timeout=10):
    return subprocess.run([str(BIN), *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def write(tmp_path, text, name="tarpitd.ini"):
    ini = tmp_path / name
    ini.write_bytes(text.encode() if isinstance(text, str) else text)
    (tmp_path / "recipients").write_text(DEFAULT_RECIPIENTS)
    return ini


def line_of(text, needle):
    for n, ln in enumerate(text.splitlines(), 1):
        if needle in ln:
            return n
    raise AssertionError(needle)


def leftovers(tmp_path):
    """Files set may have left behind (its temporary files start with '.')."""
    return sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("."))


# A heavily commented file with two connectors: set must keep every byte
# of it that it does not change.
TWO = """\
; tarpitd test configuration
; ------------------------------------------------------------

[server]                           ; the process
hostname = mx.test                 ; EHLO name
recipients = recipients
spool = spool
log = stderr

# The public face.
[connector "Default Frontend"]     ; everybody else
enabled = yes
bindings = 0.0.0.0:2525, [::]:2525
   ; every address
remote_ip_ranges = 0.0.0.0-255.255.255.255, ::/0
tarpit_interval = 00:00:05         ; Exchange's default
max_message_size = 10MB

# Hosts we trust: no tarpit.
[connector "Trusted Hosts"]
bindings = 0.0.0.0:2525
remote_ip_ranges = 10.0.0.0/8,     ; the LAN
    192.168.0.0/16                 # and the other LAN
tarpit_interval = 00:00:00
pipelining = no

; end of file
"""

SHOW_DEFAULT = """\
Name              Enabled  Bindings                 RemoteIPRanges              TarpitInterval
----              -------  --------                 --------------              --------------
Default Frontend  True     0.0.0.0:2525, [::]:2525  0.0.0.0/0, ::/0             00:00:05
Trusted Hosts     True     0.0.0.0:2525             10.0.0.0/8, 192.168.0.0/16  00:00:00
"""


# ---------------------------------------------------------------- show

def test_show_default_fields_exact(tmp_path):
    ini = write(tmp_path, TWO)
    p = run("-c", ini, "show")
    assert p.returncode == 0, p.stderr
    assert p.stdout == SHOW_DEFAULT
    assert p.stderr == ""


def test_show_layout_rules(tmp_path):
    ini = write(tmp_path, TWO)
    lines = run("-c", ini, "show").stdout.splitlines()
    header, dashes = lines[0], lines[1]
    for ln in lines:
        assert ln == ln.rstrip(), f"trailing space in {ln!r}"
    # Every column starts where its header starts and its dashes are as
    # long as the header; columns are at least two spaces apart.
    for m in re.finditer(r"\S+", header):
        assert dashes[m.start():m.end()] == "-" * len(m.group())
        assert dashes[m.end():m.end() + 2] in ("  ", "")
    starts = [m.start() for m in re.finditer(r"\S+", header)]
    for row in lines[2:]:
        for s in starts[1:]:
            assert row[s - 2:s] == "  " and row[s] != " ", (row, s)


def test_show_name_case_insensitive_and_c_after(tmp_path):
    ini = write(tmp_path, TWO)
    p = run("show", "trusted hosts", "-c", ini)
    assert p.returncode == 0, p.stderr
    assert p.stdout == (
        "Name           Enabled  Bindings      RemoteIPRanges              TarpitInterval\n"
        "----           -------  --------      --------------              --------------\n"
        "Trusted Hosts  True     0.0.0.0:2525  10.0.0.0/8, 192.168.0.0/16  00:00:00\n")


def test_show_unknown_name_exit_1(tmp_path):
    ini = write(tmp_path, TWO)
    p = run("-c", ini, "show", "Nobody")
    assert p.returncode == 1
    assert p.stdout == ""
    assert p.stderr == "tarpitd: no connector named 'Nobody'\n"


def test_show_fields_mixed_names(tmp_path):
    ini = write(tmp_path, TWO)
    want = (
        "Name              TarpitInterval  MaxMessageSize  PipeliningEnabled  RequireTLS  greeting_delay\n"
        "----              --------------  --------------  -----------------  ----------  --------------\n"
        "Default Frontend  00:00:05        10MB            True               False       00:00:00\n"
        "Trusted Hosts     00:00:00        10MB            False              False       00:00:00\n")
    for fields in ("name,TARPIT_INTERVAL,maxmessagesize,pipelining,RequireTLS,greeting_delay",
                   "Name, tarpitinterval, max_message_size, PipeliningEnabled, require_tls, GreetingDelay"):
        p = run("-c", ini, "show", "--fields", fields)
        assert p.returncode == 0, p.stderr
        assert p.stdout == want
    p = run("-c", ini, "show", "--fields=tarpit_interval,Name", "DEFAULT FRONTEND")
    assert p.returncode == 0, p.stderr
    assert p.stdout == ("TarpitInterval  Name\n"
                        "--------------  ----\n"
                        "00:00:05        Default Frontend\n")


def test_show_every_field(tmp_path):
    ini = write(tmp_path, TWO)
    names = ("Name Enabled Bindings RemoteIPRanges Fqdn Banner TarpitInterval MaxMessageSize "
             "MaxRecipientsPerMessage MaxInboundConnection MaxInboundConnectionPerSource "
             "ConnectionTimeout ConnectionInactivityTimeout MaxProtocolErrors PipeliningEnabled "
             "RequireTLS").split()
    p = run("-c", ini, "show", "Default Frontend", "--fields", ",".join(names))
    assert p.returncode == 0, p.stderr
    head, dashes, row = p.stdout.splitlines()
    assert head.split() == names
    assert re.split(r"\s{2,}", row) == [
        "Default Frontend", "True", "0.0.0.0:2525, [::]:2525", "0.0.0.0/0, ::/0", "mx.test",
        "mx.test ESMTP", "00:00:05", "10MB", "200", "5000", "20", "00:10:00", "00:05:00", "5",
        "True", "False"]


@pytest.mark.parametrize("args", [
    ["--fields", "Name,Colour"],
    ["--fields", "Name,,Enabled"],
    ["--fields"],
    ["Default Frontend", "--fields", "hostname"],
    ["--bogus"],
    ["A", "B"],
], ids=["unknown", "empty", "missing", "server-key", "option", "two-names"])
def test_show_usage_errors_exit_2(tmp_path, args):
    ini = write(tmp_path, TWO)
    p = run("-c", ini, "show", *args)
    assert p.returncode == 2, (p.stdout, p.stderr)
    assert p.stdout == ""
    assert len(p.stderr.splitlines()) == 1, p.stderr


def test_show_unknown_field_message(tmp_path):
    ini = write(tmp_path, TWO)
    p = run("-c", ini, "show", "--fields", "Name,Colour")
    assert "unknown field 'Colour'" in p.stderr


def test_show_invalid_config_exit_1(tmp_path):
    text = TWO.replace("tarpit_interval = 00:00:00", "tarpit_interval = 00:11:00")
    ini = write(tmp_path, text)
    p = run("-c", ini, "show")
    assert p.returncode == 1
    assert p.stdout == ""
    assert p.stderr == (f"{ini}:{line_of(text, '00:11:00')}: tarpit_interval: 00:11:00 is above the "
                        "maximum 00:10:00\n")


# ---------------------------------------------------------------- set

def test_set_changes_exactly_one_line(tmp_path):
    ini = write(tmp_path, TWO)
    before = ini.read_bytes()
    p = run("-c", ini, "set", "Default Frontend", "tarpit_interval=00:00:10")
    assert p.returncode == 0, p.stderr
    assert p.stdout == "Default Frontend: tarpit_interval 00:00:05 -> 00:00:10\n"
    assert p.stderr == ""
    assert ini.read_bytes() == before.replace(
        b"tarpit_interval = 00:00:05         ; Exchange's default",
        b"tarpit_interval = 00:00:10         ; Exchange's default")
    assert leftovers(tmp_path) == []
    assert "00:00:10" in run("-c", ini, "show", "default frontend").stdout


def test_set_exchange_name_and_case(tmp_path):
    ini = write(tmp_path, TWO)
    before = ini.read_bytes()
    p = run("-c", ini, "set", "TRUSTED HOSTS", "PipeliningEnabled=yes", "MaxProtocolErrors=7")
    assert p.returncode == 0, p.stderr
    assert p.stdout == ("Trusted Hosts: pipelining False -> True\n"
                        "Trusted Hosts: max_protocol_errors 5 -> 7\n")
    assert ini.read_bytes() == before.replace(
        b"pipelining = no\n", b"pipelining = yes\nmax_protocol_errors = 7\n")


def test_set_invalid_value_leaves_file_untouched(tmp_path):
    ini = write(tmp_path, TWO)
    os.chmod(ini, 0o640)
    before = ini.read_bytes()
    st = os.stat(ini)
    p = run("-c", ini, "set", "Default Frontend", "tarpit_interval=00:11:00")
    assert p.returncode == 1
    assert p.stdout == ""
    line = line_of(TWO, "tarpit_interval = 00:00:05")
    assert p.stderr == f"{ini}:{line}: tarpit_interval: 00:11:00 is above the maximum 00:10:00\n"
    assert ini.read_bytes() == before
    st2 = os.stat(ini)
    assert (st2.st_ino, st2.st_mtime_ns, stat.S_IMODE(st2.st_mode)) == \
        (st.st_ino, st.st_mtime_ns, 0o640)
    assert leftovers(tmp_path) == []


def test_set_exchange_days_quirk(tmp_path):
    ini = write(tmp_path, TWO)
    before = ini.read_bytes()
    p = run("-c", ini, "set", "Trusted Hosts", "tarpit_interval=1.00:00:00")
    assert p.returncode == 1
    line = line_of(TWO, "tarpit_interval = 00:00:00")
    assert p.stderr == f"{ini}:{line}: tarpit_interval: 1.00:00:00 is above the maximum 00:10:00\n"
    assert ini.read_bytes() == before
    p = run("-c", ini, "set", "Trusted Hosts", "tarpit_interval=0.00:09:00")
    assert p.returncode == 0, p.stderr
    assert p.stdout == "Trusted Hosts: tarpit_interval 00:00:00 -> 00:09:00\n"
    assert ini.read_bytes() == before.replace(b"tarpit_interval = 00:00:00\n",
                                              b"tarpit_interval = 0.00:09:00\n")


def test_set_all(tmp_path):
    ini = write(tmp_path, TWO)
    before = ini.read_bytes()
    p = run("-c", ini, "set", "--all", "tarpit_interval=00:00:03", "fqdn=relay.test")
    assert p.returncode == 0, p.stderr
    assert p.stdout == ("Default Frontend: tarpit_interval 00:00:05 -> 00:00:03\n"
                        "Default Frontend: fqdn mx.test -> relay.test\n"
                        "Trusted Hosts: tarpit_interval 00:00:00 -> 00:00:03\n"
                        "Trusted Hosts: fqdn mx.test -> relay.test\n")
    want = before.replace(b"tarpit_interval = 00:00:05 ", b"tarpit_interval = 00:00:03 ")
    want = want.replace(b"max_message_size = 10MB\n", b"max_message_size = 10MB\nfqdn = relay.test\n")
    want = want.replace(b"tarpit_interval = 00:00:00\n", b"tarpit_interval = 00:00:03\n")
    want = want.replace(b"pipelining = no\n", b"pipelining = no\nfqdn = relay.test\n")
    assert ini.read_bytes() == want


def test_set_all_reports_and_writes_only_real_changes(tmp_path):
    ini = write(tmp_path, TWO)
    before = ini.read_bytes()
    # Default Frontend already has 00:00:05 (explicitly); Trusted Hosts
    # has the default 5 protocol errors but no line for it.
    p = run("-c", ini, "set", "--all", "tarpit_interval=00:00:05", "max_protocol_errors=5")
    assert p.returncode == 0, p.stderr
    assert p.stdout == "Trusted Hosts: tarpit_interval 00:00:00 -> 00:00:05\n"
    assert ini.read_bytes() == before.replace(b"tarpit_interval = 00:00:00\n",
                                              b"tarpit_interval = 00:00:05\n")


def test_set_nothing_changes_no_rewrite(tmp_path):
    ini = write(tmp_path, TWO)
    st = os.stat(ini)
    p = run("-c", ini, "set", "Default Frontend", "TarpitInterval=0.00:00:05", "max_recipients_per_message=200")
    assert p.returncode == 0, p.stderr
    assert p.stdout == ""
    st2 = os.stat(ini)
    assert (st2.st_ino, st2.st_mtime_ns) == (st.st_ino, st.st_mtime_ns)
    assert leftovers(tmp_path) == []


def test_set_inserts_absent_key_after_last_key(tmp_path):
    ini = write(tmp_path, TWO)
    before = ini.read_bytes()
    p = run("-c", ini, "set", "Default Frontend", "banner=mx.test ESMTP tarpit")
    assert p.returncode == 0, p.stderr
    assert p.stdout == "Default Frontend: banner mx.test ESMTP -> mx.test ESMTP tarpit\n"
    assert ini.read_bytes() == before.replace(
        b"max_message_size = 10MB\n", b"max_message_size = 10MB\nbanner = mx.test ESMTP tarpit\n")


def test_set_list_drops_continuation_lines(tmp_path):
    ini = write(tmp_path, TWO)
    before = ini.read_bytes()
    p = run("-c", ini, "set", "Trusted Hosts", "RemoteIPRanges=10.0.0.0/8, 172.16.0.0/12")
    assert p.returncode == 0, p.stderr
    assert p.stdout == ("Trusted Hosts: remote_ip_ranges 10.0.0.0/8, 192.168.0.0/16 -> "
                        "10.0.0.0/8, 172.16.0.0/12\n")
    assert ini.read_bytes() == before.replace(
        b"remote_ip_ranges = 10.0.0.0/8,     ; the LAN\n"
        b"    192.168.0.0/16                 # and the other LAN\n",
        b"remote_ip_ranges = 10.0.0.0/8, 172.16.0.0/12     ; the LAN\n")


def test_set_overlap_refused(tmp_path):
    ini = write(tmp_path, TWO)
    before = ini.read_bytes()
    p = run("-c", ini, "set", "Trusted Hosts", "remote_ip_ranges=0.0.0.0/0")
    assert p.returncode == 1
    line = line_of(TWO, "remote_ip_ranges = 10.0.0.0/8")
    assert p.stderr.startswith(
        f'{ini}:{line}: remote_ip_ranges: 0.0.0.0/0 of connector "Trusted Hosts" is the same as '
        f'0.0.0.0/0 of connector "Default Frontend" on 0.0.0.0:2525'), p.stderr
    assert ini.read_bytes() == before


def test_set_crlf_and_mode_kept(tmp_path):
    text = TWO.replace("\n", "\r\n").encode()
    ini = write(tmp_path, text)
    os.chmod(ini, 0o600)
    p = run("-c", ini, "set", "Trusted Hosts", "greeting_delay=00:00:02")
    assert p.returncode == 0, p.stderr
    assert p.stdout == "Trusted Hosts: greeting_delay 00:00:00 -> 00:00:02\n"
    assert ini.read_bytes() == text.replace(b"pipelining = no\r\n",
                                            b"pipelining = no\r\ngreeting_delay = 00:00:02\r\n")
    assert stat.S_IMODE(os.stat(ini).st_mode) == 0o600


def test_set_through_symlink_keeps_link(tmp_path):
    real = write(tmp_path, TWO, name="real.ini")
    link = tmp_path / "link.ini"
    link.symlink_to("real.ini")
    p = run("-c", link, "set", "Default Frontend", "tarpit_interval=00:00:04")
    assert p.returncode == 0, p.stderr
    assert link.is_symlink()
    assert b"tarpit_interval = 00:00:04 " in real.read_bytes()


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"),
                    reason="needs root (to run set as nobody) and setpriv")
def test_set_unsyncable_directory_still_succeeds():
    """The file is replaced and a reload would read it: a directory that
    cannot be opened for its fsync (write and search rights only) is a
    warning, not a failure (SPEC §2: status 1 means the file is untouched)."""
    d = Path(tempfile.mkdtemp(prefix="tarpitd-set-"))
    try:
        ini = write(d, TWO)
        for f in (d, ini, d / "recipients"):
            os.chown(f, 65534, 65534)
        os.chmod(d, 0o333)
        p = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                            str(BIN), "-c", str(ini), "set", "Default Frontend",
                            "tarpit_interval=00:00:09"],
                           capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        assert p.returncode == 0, p.stderr
        assert p.stdout == "Default Frontend: tarpit_interval 00:00:05 -> 00:00:09\n"
        assert "could not be synced" in p.stderr, p.stderr
        assert b"tarpit_interval = 00:00:09 " in ini.read_bytes()
    finally:
        os.chmod(d, 0o700)
        shutil.rmtree(d)


def test_set_unknown_connector_exit_1(tmp_path):
    ini = write(tmp_path, TWO)
    before = ini.read_bytes()
    p = run("-c", ini, "set", "Nobody", "tarpit_interval=00:00:01")
    assert p.returncode == 1
    assert p.stderr == "tarpitd: no connector named 'Nobody'\n"
    assert ini.read_bytes() == before


@pytest.mark.parametrize("args", [
    [],
    ["Default Frontend"],
    ["--all"],
    ["Default Frontend", "tarpit_interval"],
    ["Default Frontend", "colour=blue"],
    ["Default Frontend", "hostname=x"],
    ["Default Frontend", "Name=Other"],
    ["Default Frontend", "=5"],
    ["Default Frontend", "tarpit_interval=1", "TarpitInterval=2"],
    ["Default Frontend", "banner=a ; b"],
    ["Default Frontend", "banner=a\nb"],
    ["--all", "Default Frontend", "tarpit_interval=00:00:01"],
    ["--frobnicate", "Default Frontend", "tarpit_interval=00:00:01"],
], ids=["nothing", "no-kv", "all-no-kv", "no-equals", "unknown-key", "server-key", "name",
        "empty-key", "twice", "comment", "newline", "all-and-name", "option"])
def test_set_usage_errors_exit_2(tmp_path, args):
    ini = write(tmp_path, TWO)
    before = ini.read_bytes()
    p = run("-c", ini, "set", *args)
    assert p.returncode == 2, (p.stdout, p.stderr)
    assert p.stdout == ""
    assert len(p.stderr.splitlines()) == 1, p.stderr
    assert ini.read_bytes() == before


def test_set_require_tls_without_tls_is_refused(tmp_path):
    ini = write(tmp_path, TWO)
    before = ini.read_bytes()
    p = run("-c", ini, "set", "Default Frontend", "RequireTLS=yes")
    assert p.returncode == 1
    assert re.fullmatch(r"%s:\d+: require_tls needs a \[tls\] section\n" % re.escape(str(ini)), p.stderr)
    assert ini.read_bytes() == before


@needs_tls
def test_set_tls_and_auth_keys(tmp_path):
    """With [tls] configured, RequireTLS and the AUTH keys are ordinary
    connector settings for set and show."""
    text = TWO.replace("; end of file\n", "[tls]\ncertificate = cert.pem\nkey = key.pem\n")
    ini = write(tmp_path, text)
    p = run("-c", ini, "set", "Default Frontend", "RequireTLS=yes", "max_auth_failures=0",
            "auth_requires_tls=no")
    assert p.returncode == 0, p.stderr
    assert p.stdout == ("Default Frontend: require_tls False -> True\n"
                        "Default Frontend: max_auth_failures 3 -> 0\n"
                        "Default Frontend: auth_requires_tls True -> False\n")
    p = run("-c", ini, "show", "--fields", "Name,RequireTLS,starttls,auth,AuthRequiresTLS,MaxAuthFailures")
    assert p.returncode == 0, p.stderr
    assert p.stdout == (
        "Name              RequireTLS  starttls  auth  auth_requires_tls  max_auth_failures\n"
        "----              ----------  --------  ----  -----------------  -----------------\n"
        "Default Frontend  True        True      True  False              0\n"
        "Trusted Hosts     False       True      True  True               3\n")
    # require_tls with starttls off on the same connector is refused.
    before = ini.read_bytes()
    p = run("-c", ini, "set", "Default Frontend", "starttls=no")
    assert p.returncode == 1
    assert "require_tls needs starttls = yes" in p.stderr
    assert ini.read_bytes() == before


def test_set_can_repair_a_broken_value(tmp_path):
    text = TWO.replace("tarpit_interval = 00:00:00", "tarpit_interval = 00:99:00")
    ini = write(tmp_path, text)
    p = run("-c", ini, "set", "Trusted Hosts", "tarpit_interval=00:01:00")
    assert p.returncode == 0, p.stderr
    assert p.stdout == "Trusted Hosts: tarpit_interval 00:99:00 -> 00:01:00\n"
    assert run("-c", ini, "check").returncode == 0


def test_set_tells_running_server_to_reload(tmp_path):
    """`set` signals the server the pidfile names, and only that server (a
    real tarpitd: a stale pidfile is never signalled, SPEC §2)."""
    port = free_port()
    ini = write(tmp_path, TWO.replace("2525", str(port)).replace(
        "log = stderr\n", "log = stderr\npidfile = tarpitd.pid\ncontrol = ctl.sock\n"))
    (tmp_path / "spool").mkdir()
    log = open(tmp_path / "stderr.log", "wb")
    srv = subprocess.Popen([str(BIN), "-c", str(ini), "run"], cwd=str(tmp_path),
                           stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    pidfile = tmp_path / "tarpitd.pid"

    def reloads():
        return (tmp_path / "stderr.log").read_text(errors="replace").count("event=reload connectors=")

    try:
        end = time.monotonic() + 10
        while not (pidfile.exists() and pidfile.read_text().strip() == str(srv.pid)):
            assert srv.poll() is None and time.monotonic() < end, (tmp_path / "stderr.log").read_text()
            time.sleep(0.02)
        p = run("-c", ini, "set", "Trusted Hosts", "tarpit_interval=00:00:01")
        assert p.returncode == 0, p.stderr
        assert p.stdout == ("Trusted Hosts: tarpit_interval 00:00:00 -> 00:00:01\n"
                            f"tarpitd: told the server (pid {srv.pid}) to reload\n")
        # The server logs its reload: wait for the line.
        end = time.monotonic() + 5
        while reloads() == 0 and time.monotonic() < end:
            time.sleep(0.02)
        assert reloads() == 1
        # Nothing changed: nobody is disturbed.
        p = run("-c", ini, "set", "Trusted Hosts", "tarpit_interval=00:00:01")
        assert p.returncode == 0 and p.stdout == ""
        time.sleep(0.2)
        assert reloads() == 1
        assert srv.poll() is None
    finally:
        srv.terminate()
        srv.wait(10)
        log.close()


def test_set_without_running_server_is_quiet(tmp_path):
    # A pid that no process has: pid_max is at most 2^22.
    (tmp_path / "tarpitd.pid").write_text("4194305\n")
    ini = write(tmp_path, TWO.replace("log = stderr\n", "log = stderr\npidfile = tarpitd.pid\n"))
    p = run("-c", ini, "set", "Trusted Hosts", "tarpit_interval=00:00:01")
    assert p.returncode == 0, p.stderr
    assert p.stdout == "Trusted Hosts: tarpit_interval 00:00:00 -> 00:00:01\n"
    assert p.stderr == ""
    (tmp_path / "tarpitd.pid").unlink()
    p = run("-c", ini, "set", "Trusted Hosts", "tarpit_interval=00:00:02")
    assert p.returncode == 0 and p.stderr == ""


# ---------------------------------------------------------------- check across connectors

def test_check_duplicate_connector_name_line(tmp_path):
    text = TWO + '\n[connector "trusted hosts"]\nbindings = 127.0.0.1:2599\n'
    ini = write(tmp_path, text)
    p = run("-c", ini, "check")
    assert p.returncode == 1
    dup = line_of(text, '[connector "trusted hosts"]')
    first = line_of(text, '[connector "Trusted Hosts"]')
    assert p.stderr == (f"{ini}:{dup}: duplicate connector name 'trusted hosts' (first at line {first})\n")


def test_check_nested_entries_ok(tmp_path):
    # Inside 10.0.0.0/8, around 192.168.0.0/16, apart from the rest, and
    # all inside Default Frontend's 0.0.0.0/0: nesting only.
    text = TWO + ('\n[connector "Partner"]\nbindings = 0.0.0.0:2525\n'
                  'remote_ip_ranges = 172.16.0.0/12,\n    10.0.0.0-10.0.0.255,\n    192.168.0.0/15\n')
    ini = write(tmp_path, text)
    p = run("-c", ini, "check")
    assert p.returncode == 0, p.stderr
    assert "3 connectors" in p.stdout


def test_check_overlap_errors(tmp_path):
    text = TWO + ('\n[connector "Partner"]\nbindings = 0.0.0.0:2525\n'
                  'remote_ip_ranges = 172.16.0.0/12,\n    10.0.0.0/8,\n    192.168.128.0-192.169.0.255\n')
    ini = write(tmp_path, text)
    p = run("-c", ini, "check")
    assert p.returncode == 1
    assert p.stderr.splitlines() == [
        f'{ini}:{line_of(text, "    10.0.0.0/8,")}: remote_ip_ranges: 10.0.0.0/8 of connector "Partner" '
        'is the same as 10.0.0.0/8 of connector "Trusted Hosts" on 0.0.0.0:2525 (entries of connectors '
        'that share a binding may overlap only when one contains the other)',
        f'{ini}:{line_of(text, "192.168.128.0-")}: remote_ip_ranges: 192.168.128.0-192.169.0.255 of '
        'connector "Partner" partly overlaps 192.168.0.0/16 of connector "Trusted Hosts" on 0.0.0.0:2525 '
        '(entries of connectors that share a binding may overlap only when one contains the other)',
    ]


def test_check_overlap_ignores_disabled_and_other_bindings(tmp_path):
    base = TWO + '\n[connector "Partner"]\nbindings = {b}\nremote_ip_ranges = 10.0.0.0/8\n{extra}'
    ini = write(tmp_path, base.format(b="0.0.0.0:2525", extra="enabled = no\n"))
    p = run("-c", ini, "check")
    assert p.returncode == 0, p.stderr
    ini = write(tmp_path, base.format(b="0.0.0.0:2526", extra=""))
    p = run("-c", ini, "check")
    assert p.returncode == 0, p.stderr
    assert "3 connectors" in p.stdout


def test_check_wildcard_and_specific_address(tmp_path):
    text = TWO + '\n[connector "Local"]\nbindings = 127.0.0.1:2525\nremote_ip_ranges = 127.0.0.1\n'
    ini = write(tmp_path, text)
    p = run("-c", ini, "check")
    assert p.returncode == 1
    assert p.stderr == (
        f'{ini}:{line_of(text, "127.0.0.1:2525")}: bindings: 127.0.0.1:2525 of connector "Local" and '
        '0.0.0.0:2525 of connector "Default Frontend" cannot both be bound: the kernel refuses a '
        'wildcard and a specific address on one port\n')


def test_check_connector_without_bindings(tmp_path):
    text = TWO + '\n[connector "Empty"]\nenabled = no\n'
    ini = write(tmp_path, text)
    p = run("-c", ini, "check")
    assert p.returncode == 1
    assert p.stderr == (f'{ini}:{line_of(text, "Empty")}: bindings: at least one ip:port is required\n')


# ---------------------------------------------------------------- stats

def test_stats_without_control_socket(tmp_path):
    ini = write(tmp_path, TWO)
    p = run("-c", ini, "stats")
    assert p.returncode == 1
    assert p.stdout == ""
    assert p.stderr == "tarpitd: no control socket configured ([server] control)\n"


def test_stats_server_not_running(tmp_path):
    ini = write(tmp_path, TWO.replace("log = stderr\n", "log = stderr\ncontrol = ctl.sock\n"))
    sock = tmp_path / "ctl.sock"
    p = run("-c", ini, "stats")
    assert p.returncode == 1
    assert p.stderr == (f"tarpitd: the server is not running (control socket {sock}: "
                        "No such file or directory)\n")
    # A socket file nobody listens on any more.
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(sock))
    s.close()
    p = run("-c", ini, "stats")
    assert p.returncode == 1
    assert p.stderr == f"tarpitd: the server is not running (control socket {sock}: Connection refused)\n"


def test_stats_prints_the_answer_unchanged(tmp_path):
    # This process plays the server: the pidfile names it, as a server's
    # names the server (stats talks only to the process it names, SPEC §2).
    (tmp_path / "tarpitd.pid").write_text(f"{os.getpid()}\n")
    ini = write(tmp_path, TWO.replace("log = stderr\n", "log = stderr\ncontrol = ctl.sock\npidfile = tarpitd.pid\n"))
    answer = (b'scope=server connections_total=3 connections_current=0\n'
              b'scope=connector name="Default Frontend" connections_total=2\n'
              b'scope=connector name="Trusted Hosts" connections_total=1\n')
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(str(tmp_path / "ctl.sock"))
    srv.listen(1)
    got = []

    def serve():
        c, _ = srv.accept()
        c.settimeout(5)
        got.append(c.recv(100))
        for i in range(0, len(answer), 7):   # in small pieces
            c.sendall(answer[i:i + 7])
            time.sleep(0.005)
        c.close()

    t = threading.Thread(target=serve)
    t.start()
    try:
        p = run("-c", ini, "stats")
    finally:
        t.join(10)
        srv.close()
    assert p.returncode == 0, p.stderr
    assert got == [b"stats\n"]
    assert p.stdout.encode() == answer


def test_stats_takes_no_arguments(tmp_path):
    ini = write(tmp_path, TWO)
    p = run("-c", ini, "stats", "now")
    assert p.returncode == 2
