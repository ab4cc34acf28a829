"""SPEC §3 `[relay "NAME"]`, §10: `check` and `run` refuse a relay domain
that is not a local domain of the recipient file and a password file
readable by others; a valid relay passes both; a reload (SIGHUP, or the
recipient file changing) that would break the rule keeps the old
configuration."""

import os
import re
import signal
import subprocess
import time

from conftest import BIN, DEFAULT_RECIPIENTS, WITH_TLS, Client, free_port, needs_tls, render_ini

# A TLS=0 build refuses auth_user (AUTH only inside TLS): the tests that
# are not about the password file leave it out there.

# DEFAULT_RECIPIENTS' local domains are example.org and example.net.
RELAY = """
[relay "Office"]
host = 127.0.0.1:{hop}
domains = {domains}
"""
AUTH = "auth_user = gateway\nauth_password_file = relay.secret\n"


def make_files(tmp_path, domains="example.net", auth=False, mode=0o600, recipients=DEFAULT_RECIPIENTS):
    port = free_port()
    extra = RELAY.format(hop=free_port(), domains=domains) + (AUTH if auth else "")
    text = render_ini(port, extra=extra)
    ini = tmp_path / "tarpitd.ini"
    ini.write_text(text)
    (tmp_path / "recipients").write_text(recipients)
    (tmp_path / "spool").mkdir(exist_ok=True)
    secret = tmp_path / "relay.secret"
    secret.write_text("s3cret\n")
    os.chmod(secret, mode)
    return ini, text, port


def line_of(text, needle):
    return next(i for i, l in enumerate(text.splitlines(), 1) if l.startswith(needle))


def tarpitd(ini, *args, timeout=20):
    return subprocess.run([str(BIN), "-c", str(ini), *args], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL, cwd=str(ini.parent))


def not_local(ini, text, domain):
    return (f'{ini}:{line_of(text, "domains =")}: relay "Office": domain {domain} '
            "is not a local domain of the recipient file")


def test_check_valid_relay(tmp_path):
    ini, _, _ = make_files(tmp_path, domains="Example.NET", auth=WITH_TLS)
    p = tarpitd(ini, "check")
    assert p.returncode == 0, p.stderr
    assert p.stdout == f"{ini}: OK (1 connector, 1 relay)\n"
    assert p.stderr == ""


def test_check_smarthost_needs_no_local_domain(tmp_path):
    ini, _, _ = make_files(tmp_path, domains="*")
    p = tarpitd(ini, "check")
    assert p.returncode == 0, p.stderr


def test_check_refuses_domain_not_local(tmp_path):
    ini, text, _ = make_files(tmp_path, domains="example.net, example.com")
    p = tarpitd(ini, "check")
    assert p.returncode == 1
    assert p.stdout == ""
    assert p.stderr == not_local(ini, text, "example.com") + "\n"


@needs_tls
def test_check_refuses_password_file_0644(tmp_path):
    ini, text, _ = make_files(tmp_path, auth=True, mode=0o644)
    p = tarpitd(ini, "check")
    assert p.returncode == 1
    line = line_of(text, "auth_password_file")
    assert p.stderr == (f"{ini}:{line}: auth_password_file {tmp_path / 'relay.secret'}: "
                        "mode 0644, must be 0600\n")


def test_check_refuses_dns_name(tmp_path):
    ini, text, _ = make_files(tmp_path)
    text = text.replace("host = 127.0.0.1:", "host = mail.example.net:")
    ini.write_text(text)
    p = tarpitd(ini, "check")
    assert p.returncode == 1
    assert f"{ini}:{line_of(text, 'host =')}: host: 'mail.example.net:" in p.stderr
    assert "tarpitd does no DNS" in p.stderr


def test_run_refuses_domain_not_local(tmp_path):
    ini, text, port = make_files(tmp_path, domains="example.com")
    p = tarpitd(ini, "run")
    assert p.returncode == 1
    assert not_local(ini, text, "example.com") in p.stderr
    assert "event=start" not in p.stderr


@needs_tls
def test_run_refuses_password_file_0644(tmp_path):
    ini, _, _ = make_files(tmp_path, auth=True, mode=0o640)
    p = tarpitd(ini, "run")
    assert p.returncode == 1
    assert "mode 0640, must be 0600" in p.stderr
    assert "event=start" not in p.stderr


class Running:
    """tarpitd run on a valid relay configuration, its stderr in a file."""

    def __init__(self, tmp_path):
        self.ini, self.text, self.port = make_files(tmp_path, auth=WITH_TLS)
        self.dir = tmp_path
        self.log = tmp_path / "stderr.log"
        self.err = open(self.log, "wb")
        self.proc = subprocess.Popen([str(BIN), "-c", str(self.ini), "run"], stdin=subprocess.DEVNULL,
                                     stdout=self.err, stderr=self.err, cwd=str(tmp_path))
        self.wait_log(r"event=start")

    def stderr(self):
        return self.log.read_text(errors="replace")

    def wait_log(self, pattern, count=1, timeout=10.0):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if len(re.findall(pattern, self.stderr())) >= count:
                return
            assert self.proc.poll() is None, self.stderr()
            time.sleep(0.02)
        raise AssertionError(f"{pattern!r} not in log:\n{self.stderr()}")

    def rcpt(self, addr):
        with Client(self.port) as c:
            c.greet()
            c.expect(250, None, "MAIL FROM:<s@origin.test>")
            return c.cmd(f"RCPT TO:<{addr}>").code

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=5)
        self.err.close()


def test_reload_keeps_old_config_when_domain_not_local(tmp_path):
    s = Running(tmp_path)
    try:
        # The relay's domain moves to one the recipient file lacks, and a
        # new connector setting comes with it: neither takes effect.
        s.ini.write_text(s.text.replace("domains = example.net", "domains = example.com")
                         .replace("tarpit_interval = 00:00:00", "max_recipients_per_message = 1"))
        s.proc.send_signal(signal.SIGHUP)
        s.wait_log(r"event=reload_failed \(keeping the old configuration\)")
        assert "relay \"Office\": domain example.com is not a local domain" in s.stderr()
        with Client(s.port) as c:
            c.greet()
            c.expect(250, None, "MAIL FROM:<s@origin.test>")
            c.expect(250, None, "RCPT TO:<alice@example.org>")
            c.expect(250, None, "RCPT TO:<bob@example.org>")  # the old limit of 200
        # Made valid again, the reload goes through.
        s.ini.write_text(s.text)
        s.proc.send_signal(signal.SIGHUP)
        s.wait_log(r"event=reload connectors=1")
        assert s.proc.poll() is None
    finally:
        s.stop()


def test_recipient_file_without_relay_domain_keeps_old_list(tmp_path):
    s = Running(tmp_path)
    try:
        rcpts = tmp_path / "recipients"
        # example.net (the relay's) leaves the file: the old list stays.
        rcpts.write_text("alice@example.org\nnew@example.org\n")
        st = os.stat(rcpts)
        os.utime(rcpts, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
        s.wait_log(r"event=reload_failed file=recipients")
        assert "relay \"Office\": domain example.net is not a local domain" in s.stderr()
        assert s.rcpt("anyone@example.net") == 250   # the old catch-all
        assert s.rcpt("new@example.org") == 550      # not the new list
    finally:
        s.stop()
