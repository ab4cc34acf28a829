"""SPEC §2-§4: the command line, `check` and its error lines."""

import base64
import hashlib
import re
import stat
import subprocess

import pytest

from conftest import BIN, DEFAULT_RECIPIENTS, needs_tls

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


def run_input(*args, input="", timeout=10):
    """run() with input on stdin (a pipe, not a terminal)."""
    return subprocess.run([str(BIN), *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, input=input)


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
    "starttls = yes",
    "starttls = no",
    "require_tls = no",
    "auth = no",
    "auth_requires_tls = no",
    "max_auth_failures = 0",
    "max_auth_failures = 1000",
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
    ("starttls = maybe", ["starttls"]),
    ("auth = 2", ["auth"]),
    ("max_auth_failures = 1001", ["max_auth_failures", "1000"]),
    ("require_tls = yes", ["require_tls", "[tls]"]),
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


@pytest.mark.parametrize("section", [
    "[harvest]",
    "[harvest]\ntable_size = 0",
    "[harvest]\ntable_size = 1000000\nthreshold = 1\nwindow = 7.00:00:00",
    "[harvest]\nwindow = 00:00:01\n"
    "ban_command = /usr/sbin/nft add element inet fw4 tarpitd_ban { %a timeout 1h }",
])
def test_check_harvest_ok(tmp_path, section):
    ini = write(tmp_path, BASE + "\n" + section + "\n")
    p = run("-c", ini, "check")
    assert p.returncode == 0, p.stderr
    assert "OK" in p.stdout


@pytest.mark.parametrize("bad, words", [
    ("table_size = 1000001", ["table_size", "maximum 1000000"]),
    ("threshold = 0", ["threshold", "minimum 1"]),
    ("window = 00:00:00", ["window", "minimum 00:00:01"]),
    ("window = 7.00:00:01", ["window", "maximum 7.00:00:00"]),
    ("ban_command = nft add element inet fw4 tarpitd_ban { %a }", ["ban_command", "absolute path"]),
    ("ban_command = /usr/sbin/nft add element inet fw4 tarpitd_ban {%a}", ["ban_command", "{%a}"]),
    ("ban_command = /bin/ban", ["ban_command", "%a is missing"]),
    ('ban_command = /bin/sh -c "ban %a"', ["ban_command", "quotes"]),
    ("colour = blue", ["colour", "[harvest]"]),
])
def test_check_harvest_errors(tmp_path, bad, words):
    text = BASE + "\n[harvest]\n" + bad + "\n"
    ini = write(tmp_path, text)
    p = run("-c", ini, "check")
    assert_error_at(p, ini, line_of(text, bad), *words)


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
    assert_error_at(p, ini, line_of(text, "[tls]"), "[tls] needs key = FILE")


@pytest.mark.parametrize("section, words", [
    ("[tls]", ["[tls] needs certificate = FILE", "[tls] needs key = FILE"]),
    ("[tls]\ncertificate = cert.pem", ["[tls] needs key = FILE"]),
    ("[tls]\nkey = key.pem", ["[tls] needs certificate = FILE"]),
    ("[auth]", ["[auth] needs users = FILE"]),
])
def test_check_sections_need_their_files(tmp_path, section, words):
    text = BASE + "\n" + section + "\n"
    ini = write(tmp_path, text)
    p = run("-c", ini, "check")
    hits = assert_error_at(p, ini, line_of(text, section.split("\n")[0]))
    for w in words:
        assert any(h.endswith(w) for h in hits), (w, hits)


# ---------------------------------------------------------------- [auth] and passwd

AUTH_BASE = BASE + "\n[auth]\nusers = users\n"


def parse_users(path):
    """{name: (iterations, salt, hash)} of a users file (SPEC §6)."""
    out = {}
    for ln in path.read_text().splitlines():
        if not ln.strip() or ln.lstrip().startswith("#"):
            continue
        name, rest = ln.split(":", 1)
        empty, scheme, it, salt, h = rest.split("$")
        assert empty == "" and scheme == "pbkdf2-sha256", ln
        out[name] = (int(it), base64.b64decode(salt, validate=True), base64.b64decode(h, validate=True))
    return out


def verifies(entry, password):
    it, salt, h = entry
    return hashlib.pbkdf2_hmac("sha256", password.encode(), salt, it) == h


def test_passwd_creates_a_0600_file_that_verifies(tmp_path):
    ini = write(tmp_path, AUTH_BASE)
    users = tmp_path / "users"
    p = run_input("-c", ini, "passwd", "alice@example.org", input="correct horse\nnot this line\n")
    assert p.returncode == 0, p.stderr
    assert p.stdout == f"tarpitd: password for alice@example.org set in {users}\n"
    assert p.stderr == ""
    st = users.stat()
    assert stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600
    entries = parse_users(users)
    assert list(entries) == ["alice@example.org"]
    it, salt, h = entries["alice@example.org"]
    assert it >= 1000 and len(salt) == 16 and len(h) == 32
    assert verifies(entries["alice@example.org"], "correct horse")
    assert not verifies(entries["alice@example.org"], "correct horse\n")
    # The file check reads is the file passwd wrote.
    p = run("-c", ini, "check")
    assert p.returncode == 0, p.stderr
    assert "OK" in p.stdout and "1 user" in p.stdout


def test_passwd_crlf_and_no_newline(tmp_path):
    ini = write(tmp_path, AUTH_BASE)
    assert run_input("-c", ini, "passwd", "a", input="pw one\r\n").returncode == 0
    assert run_input("-c", ini, "passwd", "b", input="pw two").returncode == 0
    entries = parse_users(tmp_path / "users")
    assert verifies(entries["a"], "pw one")
    assert verifies(entries["b"], "pw two")


def test_passwd_replaces_and_keeps_other_lines(tmp_path):
    ini = write(tmp_path, AUTH_BASE)
    users = tmp_path / "users"
    assert run_input("-c", ini, "passwd", "alice@example.org", input="first\n").returncode == 0
    assert run_input("-c", ini, "passwd", "bob@example.org", input="bobs\n").returncode == 0
    # A hand-edited comment and blank line survive too.
    users.write_bytes(b"# mail users\n\n" + users.read_bytes())
    users.chmod(0o600)
    before = users.read_bytes().splitlines(keepends=True)
    p = run_input("-c", ini, "passwd", "alice@example.org", input="second\n")
    assert p.returncode == 0, p.stderr
    after = users.read_bytes().splitlines(keepends=True)
    assert len(after) == len(before) == 4
    assert after[0] == before[0] and after[1] == before[1] and after[3] == before[3]
    assert after[2] != before[2] and after[2].startswith(b"alice@example.org:$pbkdf2-sha256$")
    entries = parse_users(users)
    assert verifies(entries["alice@example.org"], "second")
    assert not verifies(entries["alice@example.org"], "first")
    assert verifies(entries["bob@example.org"], "bobs")
    assert stat.S_IMODE(users.stat().st_mode) == 0o600
    assert not [f for f in tmp_path.iterdir() if f.name.startswith(".")], "temporary file left"


@pytest.mark.parametrize("args, stdin, status, message", [
    (["alice"], "", 1, "tarpitd: empty password\n"),
    (["alice"], "\n", 1, "tarpitd: empty password\n"),
    (["alice"], "x" * 257 + "\n", 1, "tarpitd: password longer than 256 octets\n"),
    (["al ice"], "pw\n", 1, "tarpitd: 'al ice' is not a valid user name (1 to 64 printable ASCII octets "
                           "without ':' or white space, not starting with '#')\n"),
    (["al:ice"], "pw\n", 1, None),
    (["#alice"], "pw\n", 1, None),
    (["a" * 65], "pw\n", 1, None),
    ([], "pw\n", 2, "tarpitd: passwd needs a USER\n"),
    (["alice", "bob"], "pw\n", 2, "tarpitd: passwd takes one USER ('bob' is extra)\n"),
], ids=["eof", "empty-line", "too-long", "space", "colon", "hash", "65-octets", "no-user", "two-users"])
def test_passwd_refusals(tmp_path, args, stdin, status, message):
    ini = write(tmp_path, AUTH_BASE)
    p = run_input("-c", ini, "passwd", *args, input=stdin)
    assert p.returncode == status, (p.stdout, p.stderr)
    assert p.stdout == ""
    if message is not None:
        assert p.stderr == message
    else:
        assert len(p.stderr.splitlines()) == 1 and "user name" in p.stderr
    assert not (tmp_path / "users").exists()


def test_passwd_needs_auth_section(tmp_path):
    ini = write(tmp_path, BASE)
    p = run_input("-c", ini, "passwd", "alice", input="pw\n")
    assert p.returncode == 1
    assert p.stderr == "tarpitd: no [auth] users file configured\n"


def test_passwd_with_invalid_config(tmp_path):
    text = AUTH_BASE + "bogus = 1\n"
    ini = write(tmp_path, text)
    p = run_input("-c", ini, "passwd", "alice", input="pw\n")
    assert_error_at(p, ini, line_of(text, "bogus"), "bogus")
    assert not (tmp_path / "users").exists()


def test_check_users_file_mode(tmp_path):
    ini = write(tmp_path, AUTH_BASE)
    assert run_input("-c", ini, "passwd", "alice", input="pw\n").returncode == 0
    users = tmp_path / "users"
    users.chmod(0o644)
    p = run("-c", ini, "check")
    assert p.returncode == 1
    assert p.stderr == f"{users}: mode 0644 is too open; chmod 600 {users}\n"
    # passwd writes the file anew with mode 0600, which repairs it.
    assert run_input("-c", ini, "passwd", "bob", input="pw\n").returncode == 0
    assert stat.S_IMODE(users.stat().st_mode) == 0o600
    assert run("-c", ini, "check").returncode == 0


def test_check_users_file_errors(tmp_path):
    ini = write(tmp_path, AUTH_BASE)
    users = tmp_path / "users"
    users.write_text("# users\nalice@example.org\n"
                     "bob:$pbkdf2-sha256$100$c2FsdHNhbHQ=$NIyJ28vTKy8y2BS4EW6EzysXNH68GAAYHE4qH7jdU+E=\n")
    users.chmod(0o600)
    p = run("-c", ini, "check")
    assert p.returncode == 1
    assert p.stderr.splitlines() == [
        f"{users}:2: expected name:$pbkdf2-sha256$ITERATIONS$SALT$HASH",
        f"{users}:3: iterations '100' must be a number from 1000 to 10000000"]
    users.unlink()
    p = run("-c", ini, "check")
    assert p.returncode == 1
    assert p.stderr == f"{users}: cannot open: No such file or directory\n"


# ---------------------------------------------------------------- [tls]

def make_pair(directory, name, cn="localhost"):
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", str(directory / f"{name}.key"),
                    "-out", str(directory / f"{name}.crt"), "-days", "2", "-subj", f"/CN={cn}"],
                   check=True, capture_output=True)


TLS_BASE = BASE + "\n[tls]\ncertificate = a.crt\nkey = a.key\n"


@needs_tls
def test_check_tls_good_pair(tmp_path):
    make_pair(tmp_path, "a")
    ini = write(tmp_path, TLS_BASE)
    p = run("-c", ini, "check")
    assert p.returncode == 0, p.stderr
    assert "OK" in p.stdout


@needs_tls
def test_check_tls_mismatched_key(tmp_path):
    make_pair(tmp_path, "a")
    make_pair(tmp_path, "b", cn="other")
    ini = write(tmp_path, TLS_BASE.replace("key = a.key", "key = b.key"))
    p = run("-c", ini, "check")
    assert p.returncode == 1
    assert len(p.stderr.splitlines()) == 1, p.stderr
    assert str(tmp_path / "b.key") in p.stderr and "match" in p.stderr


@needs_tls
@pytest.mark.parametrize("which, content", [
    ("key", None), ("key", "not a key\n"), ("crt", None), ("crt", "not a certificate\n")],
    ids=["key-missing", "key-garbage", "cert-missing", "cert-garbage"])
def test_check_tls_bad_files(tmp_path, which, content):
    make_pair(tmp_path, "a")
    bad = tmp_path / f"a.{which}"
    if content is None:
        bad.unlink()
    else:
        bad.write_text(content)
    ini = write(tmp_path, TLS_BASE)
    p = run("-c", ini, "check")
    assert p.returncode == 1
    assert len(p.stderr.splitlines()) == 1, p.stderr
    # FILE:LINE of the INI key that names the file, then the file (SPEC §2).
    key = "certificate" if which == "crt" else "key"
    line = TLS_BASE.splitlines().index(f"{key} = a.{which}") + 1
    assert p.stderr.startswith(f"{ini}:{line}: {bad}:"), p.stderr


@needs_tls
def test_check_reports_users_and_tls_together(tmp_path):
    make_pair(tmp_path, "a")
    make_pair(tmp_path, "b", cn="other")
    ini = write(tmp_path, TLS_BASE.replace("key = a.key", "key = b.key") + "[auth]\nusers = users\n")
    (tmp_path / "users").write_text("")
    (tmp_path / "users").chmod(0o640)
    p = run("-c", ini, "check")
    assert p.returncode == 1
    lines = p.stderr.splitlines()
    assert len(lines) == 2, p.stderr
    assert lines[0].startswith(f"{tmp_path / 'users'}: mode 0640")
    line = TLS_BASE.splitlines().index("key = a.key") + 1
    assert lines[1].startswith(f"{ini}:{line}: {tmp_path / 'b.key'}:"), lines


def test_stats_without_control_socket(tmp_path):
    ini = write(tmp_path, BASE)
    p = run("-c", ini, "stats")
    assert p.returncode == 1
    assert p.stderr.strip()


COUNTERS = ("connections_total connections_current connections_refused messages_accepted "
            "recipients_accepted recipients_unknown replies_tarpitted tarpit_disconnects "
            "protocol_errors tls_sessions tls_refused auth_success auth_failure").split()


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
