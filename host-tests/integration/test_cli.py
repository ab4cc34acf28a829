"""SPEC §2-§4: the command line, `check` and its error lines."""

import re
import subprocess

import pytest

from conftest import BIN, DEFAULT_RECIPIENTS

BASE = """\
[server]
hostname = mx.test
max_connections = 64
recipients = recipients
spool = spool
log = stderr
log_level = debug

[connector "Default Frontend"]
bindings = 127.0.0.1:2599
remote_ip_ranges = 0.0.0.0-255.255.255.255, ::/0
tarpit_interval = 00:00:02
"""


def run(*args, timeout=10):
    return subprocess.run([str(BIN), *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def write(tmp_path, ini_text, recipients=DEFAULT_RECIPIENTS):
    ini = tmp_path / "tarpitd.ini"
    ini.write_text(ini_text)
    (tmp_path / "recipients").write_text(recipients)
    return ini


def connector_line(line):
    """BASE with a connector line added, replacing a line of the same key."""
    key = line.split("=")[0].strip()
    text = re.sub(r"(?m)^%s\s*=.*\n" % re.escape(key), "", BASE) if "=" in line else BASE
    return text + line + "\n"


def server_line(line):
    key = line.split("=")[0].strip()
    text = re.sub(r"(?m)^%s\s*=.*\n" % re.escape(key), "", BASE)
    return text.replace("[server]\n", "[server]\n" + line + "\n")


def line_of(text, needle):
    """1-based number of the first line of text containing needle."""
    for n, ln in enumerate(text.splitlines(), 1):
        if needle in ln:
            return n
    raise AssertionError(needle)


def assert_error_at(p, path, line, *words):
    assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
    errs = [ln for ln in p.stderr.splitlines() if ln.strip()]
    hits = [ln for ln in errs if ln.startswith(f"{path}:{line}:")]
    assert hits, f"no '{path}:{line}:' line in stderr:\n{p.stderr}"
    for w in words:
        assert any(w.lower() in h.lower() for h in hits), f"{w!r} not in {hits}"
    return hits


# ---------------------------------------------------------------- basics

def test_version():
    p = run("--version")
    assert p.returncode == 0
    assert re.fullmatch(r"tarpitd \d+\.\d+\.\d+\S*\n", p.stdout), p.stdout


def test_help():
    p = run("--help")
    assert p.returncode == 0
    assert "usage" in p.stdout.lower()
    for word in ("run", "check", "-c FILE", "--version"):
        assert word in p.stdout, word


@pytest.mark.parametrize("args", [["frobnicate"], ["check", "extra"], ["run", "now"]],
                         ids=["unknown", "check-extra", "run-extra"])
def test_usage_errors_exit_2(tmp_path, args):
    ini = write(tmp_path, BASE)
    p = run("-c", ini, *args)
    assert p.returncode == 2, (p.stdout, p.stderr)
    assert p.stderr.strip(), "a usage error says why on stderr"


def test_c_without_file_exit_2():
    p = run("-c")
    assert p.returncode == 2, (p.stdout, p.stderr)
    assert p.stderr.strip()


# ---------------------------------------------------------------- check: valid

def test_check_ok(tmp_path):
    ini = write(tmp_path, BASE)
    p = run("-c", ini, "check")
    assert p.returncode == 0, p.stderr
    assert "OK" in p.stdout


def test_check_c_after_command(tmp_path):
    ini = write(tmp_path, BASE)
    p = run("check", "-c", ini)
    assert p.returncode == 0, p.stderr
    assert "OK" in p.stdout


@pytest.mark.parametrize("extra", [
    "max_message_size = 512 KB",
    "max_message_size = 10mb",
    "max_message_size = 1048576",
    "max_message_size = 2GB",
    "max_message_size = 1kb",
    "tarpit_interval = 0.00:09:00",
    "tarpit_interval = 00:10:00",
    "connection_timeout = 1.00:00:00",
    "pipelining = off",
    "pipelining = 1",
    "enabled = true",
    "tarpit_all_after_unknown = No",
    "fqdn = relay.example.org",
    "banner = relay.example.org ESMTP ready",
    "greeting_delay = 00:00:05",
    "max_protocol_errors = 0",
    "bindings = 127.0.0.1:2599, [::1]:2599",
    "remote_ip_ranges = 10.0.0.0/8, 192.168.1.1, 172.16.0.1-172.16.0.9, 2001:db8::/32",
    "; a comment line",
    "# another comment",
])
def test_check_valid_values(tmp_path, extra):
    ini = write(tmp_path, connector_line(extra))
    p = run("-c", ini, "check")
    assert p.returncode == 0, p.stderr
    assert "OK" in p.stdout


# ---------------------------------------------------------------- check: errors

@pytest.mark.parametrize("bad, words", [
    ("tarpit_interval = 00:11:00", ["tarpit_interval", "00:10:00"]),
    ("tarpit_interval = 1.00:00:00", ["tarpit_interval", "00:10:00"]),
    ("tarpit_interval = soon", ["tarpit_interval"]),
    ("pipelining = maybe", ["pipelining"]),
    ("max_message_size = 10XB", ["max_message_size"]),
    ("max_message_size = 3GB", ["max_message_size"]),
    ("max_recipients_per_message = -1", ["max_recipients_per_message"]),
    ("frobnicate = 1", ["frobnicate"]),
    ("bindings = 127.0.0.1:99999", ["bindings"]),
    ("bindings = nowhere", ["bindings"]),
    ("remote_ip_ranges = 300.1.1.1", ["remote_ip_ranges"]),
    ("remote_ip_ranges = 10.0.0.0/33", ["remote_ip_ranges"]),
    ("starttls = yes", ["not supported"]),
    ("auth = yes", ["not supported"]),
    ("max_auth_failures = 3", ["not supported"]),
    ("this is not a key value line", []),
])
def test_check_connector_errors(tmp_path, bad, words):
    text = connector_line(bad)
    ini = write(tmp_path, text)
    p = run("-c", ini, "check")
    assert_error_at(p, ini, line_of(text, bad), *words)


@pytest.mark.parametrize("bad, words", [
    ("log = file", ["log"]),
    ("log_level = chatty", ["log_level"]),
    ("max_connections = 0", ["max_connections"]),
    ("colour = blue", ["colour"]),
])
def test_check_server_errors(tmp_path, bad, words):
    text = server_line(bad)
    ini = write(tmp_path, text)
    p = run("-c", ini, "check")
    assert_error_at(p, ini, line_of(text, bad), *words)


@pytest.mark.parametrize("section", ["[tls]", "[auth]", "[harvest]"])
def test_check_unsupported_sections(tmp_path, section):
    text = BASE + "\n" + section + "\n"
    ini = write(tmp_path, text)
    p = run("-c", ini, "check")
    assert_error_at(p, ini, line_of(text, section), "not supported")


def test_check_unknown_section(tmp_path):
    text = BASE + "\n[frobnicator]\nkey = value\n"
    ini = write(tmp_path, text)
    p = run("-c", ini, "check")
    assert p.returncode == 1
    assert f"{ini}:{line_of(text, '[frobnicator]')}:" in p.stderr


def test_check_duplicate_connector_name(tmp_path):
    text = BASE + '\n[connector "Default Frontend"]\nbindings = 127.0.0.1:2598\n'
    ini = write(tmp_path, text)
    p = run("-c", ini, "check")
    assert p.returncode == 1
    assert re.search(r"^%s:\d+:" % re.escape(str(ini)), p.stderr, re.M), p.stderr


def test_check_several_errors_one_line_each(tmp_path):
    text = BASE + "pipelining = maybe\nfrobnicate = 2\n"
    ini = write(tmp_path, text)
    p = run("-c", ini, "check")
    assert_error_at(p, ini, line_of(text, "pipelining = maybe"), "pipelining")
    assert_error_at(p, ini, line_of(text, "frobnicate"), "frobnicate")


def test_check_missing_ini(tmp_path):
    p = run("-c", tmp_path / "nope.ini", "check")
    assert p.returncode == 1
    assert "nope.ini" in p.stderr


def test_check_missing_recipients_file(tmp_path):
    ini = write(tmp_path, BASE)
    (tmp_path / "recipients").unlink()
    p = run("-c", ini, "check")
    assert p.returncode == 1
    assert "recipients" in p.stderr


# ---------------------------------------------------------------- recipient file

@pytest.mark.parametrize("bad", [
    "alice@@example.org",
    "@",
    "alice@",
    "evil@example.org  ../../etc",
    "evil@example.org  a/b",
    "alice@example.org  robert  extra",
    "al ice@example.org",
])
def test_check_malformed_recipients(tmp_path, bad):
    rcpts = "# recipients\nalice@example.org\n\n" + bad + "\n@example.net catchall\n"
    ini = write(tmp_path, BASE, rcpts)
    p = run("-c", ini, "check")
    assert p.returncode == 1, (p.stdout, p.stderr)
    assert f"{tmp_path / 'recipients'}:4:" in p.stderr, p.stderr


def test_check_recipients_comments_ok(tmp_path):
    rcpts = ("# a comment\n\n   \nalice@example.org   # trailing comment\n"
             "Bob@Example.Org robert\n@example.net\tcatchall\n")
    ini = write(tmp_path, BASE, rcpts)
    p = run("-c", ini, "check")
    assert p.returncode == 0, p.stderr


def test_run_refuses_malformed_recipients(tmp_path):
    ini = write(tmp_path, BASE, "alice@@example.org\n")
    p = run("-c", ini, "run", timeout=10)
    assert p.returncode == 1
    assert f"{tmp_path / 'recipients'}:1:" in p.stderr


def test_run_refuses_invalid_config(tmp_path):
    text = BASE + "[tls]\ncertificate = cert.pem\n"
    ini = write(tmp_path, text)
    p = run("-c", ini, timeout=10)
    assert_error_at(p, ini, line_of(text, "[tls]"), "not supported")


def test_stats_without_control_socket(tmp_path):
    ini = write(tmp_path, BASE)
    p = run("-c", ini, "stats")
    assert p.returncode == 1
    assert p.stderr.strip()


COUNTERS = ("connections_total connections_current connections_refused messages_accepted "
            "recipients_accepted recipients_unknown replies_tarpitted tarpit_disconnects "
            "protocol_errors tls_sessions auth_success auth_failure").split()


def logfmt(line):
    return dict((m.group(1), m.group(2) if m.group(2) is not None else m.group(3))
                for m in re.finditer(r'(\w+)=(?:"([^"]*)"|(\S*))', line))


def test_stats_counters(server):
    srv = server(server_overrides={"control": "control.sock"})
    c = srv.client().greet().mail_rcpt()
    c.expect(550, "5.1.1", "RCPT TO:<nobody@example.org>")
    c.expect(354, None, "DATA")
    c.expect(250, "2.0.0", "\r\nhi\r\n.")
    c.expect(500, "5.5.1", "FOO")
    p = run("-c", srv.ini, "stats")
    assert p.returncode == 0, p.stderr
    lines = [logfmt(ln) for ln in p.stdout.splitlines() if ln.strip()]
    scopes = [(d.get("scope"), d.get("name")) for d in lines]
    assert ("server", None) in scopes, p.stdout
    assert ("connector", "Default Frontend") in scopes, p.stdout
    for d in lines:
        for k in COUNTERS:
            assert k in d and d[k].isdigit(), (k, d)
        assert d["messages_accepted"] == "1", d
        assert d["recipients_accepted"] == "1", d
        assert d["recipients_unknown"] == "1", d
        assert d["protocol_errors"] == "1", d
        assert int(d["connections_current"]) >= 1, d
        assert int(d["connections_total"]) >= 1, d
    c.close()


def test_stats_server_not_running(tmp_path):
    ini = write(tmp_path, server_line("control = control.sock"))
    p = run("-c", ini, "stats")
    assert p.returncode == 1
    assert p.stderr.strip()
