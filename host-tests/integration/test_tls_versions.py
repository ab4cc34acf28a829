"""SPEC §1 (2.28 and 3.6 builds; TLS 1.3 with 3.6), §3 [tls] min_version and
session_tickets: the real OpenSSL client (`openssl s_client -starttls smtp`)
against either build.

Whether this build has TLS 1.3 is asked of the binary itself: `check` with
`min_version = 1.3` passes where the mbedTLS it was built with serves TLS
1.3 (3.6) and is a configuration error with FILE:LINE where it does not
(Debian's 2.28). The TLS 1.3 tests are skipped on the latter, saying so.
"""

import re
import shutil
import subprocess

import pytest

from conftest import BIN, WITH_TLS, Server, free_port, render_ini, stop_all

OPENSSL = shutil.which("openssl")

pytestmark = [
    pytest.mark.skipif(not WITH_TLS, reason="built without TLS (TLS=0)"),
    pytest.mark.skipif(not OPENSSL, reason="openssl not installed"),
]


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A throwaway self-signed EC certificate: (cert, key)."""
    d = tmp_path_factory.mktemp("pki13")
    p = subprocess.run([OPENSSL, "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "key.pem",
                        "-out", "cert.pem", "-days", "2", "-subj", "/CN=localhost"],
                       cwd=str(d), capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    return d / "cert.pem", d / "key.pem"


def tls_section(pki, **keys):
    cert, key = pki
    lines = ["", "[tls]", f"certificate = {cert}", f"key = {key}"]
    lines += [f"{k} = {v}" for k, v in keys.items()]
    return "\n".join(lines) + "\n"


class TLSServer(Server):
    def __init__(self, *a, extra="", **kw):
        self.extra = extra
        super().__init__(*a, **kw)

    def write_ini(self):
        self.ini.write_text(render_ini(self.port, self.connector, self.server_overrides,
                                       extra=self.extra))


@pytest.fixture(scope="module")
def has_tls13(pki, tmp_path_factory):
    """True when `check` accepts min_version = 1.3; on a build without TLS
    1.3 the refusal must name the INI file and the key's line."""
    d = tmp_path_factory.mktemp("probe13")
    (d / "recipients").write_text("alice@example.org\n")
    (d / "spool").mkdir()
    ini = d / "tarpitd.ini"
    ini.write_text(render_ini(free_port(), server={"spool": str(d / "spool")},
                              extra=tls_section(pki, min_version="1.3")))
    p = subprocess.run([str(BIN), "-c", str(ini), "check"], capture_output=True, text=True,
                       timeout=60)
    if p.returncode == 0:
        return True
    line = ini.read_text().splitlines().index("min_version = 1.3") + 1
    assert p.returncode == 1, (p.stdout, p.stderr)
    assert re.search(re.escape(f"{ini}:{line}: min_version: 1.3:") + r".* has no TLS 1\.3",
                     p.stderr), p.stderr
    return False


needs13 = "this tarpitd's mbedTLS has no TLS 1.3 server (Debian 12's 2.28; build with MBEDTLS=3.6)"


@pytest.fixture
def tls_server(tmp_path, pki):
    started = []

    def make(**tls_keys):
        port = free_port()
        srv = TLSServer(tmp_path / f"srv{len(started)}", port, {"bindings": f"127.0.0.1:{port}"},
                        None, "alice@example.org\n", extra=tls_section(pki, **tls_keys))
        started.append(srv)
        return srv.start()

    yield make
    stop_all(started)


def s_client(port, *args, timeout=30):
    """One STARTTLS session by openssl s_client that says QUIT: its output.
    -ign_eof: it reads on until the server closes after 221, so a TLS 1.3
    ticket (sent after the handshake) is always read before it exits."""
    p = subprocess.run([OPENSSL, "s_client", "-ign_eof", "-starttls", "smtp", "-connect",
                        f"127.0.0.1:{port}", *args],
                       input="QUIT\r\n", capture_output=True, text=True, timeout=timeout)
    return p.stdout + p.stderr


def test_check_min_version_13(has_tls13):
    """Either outcome is right for its build; the fixture checks the
    error's FILE:LINE on a build without TLS 1.3."""
    assert has_tls13 in (True, False)


def test_tls13_negotiated(tls_server, has_tls13):
    if not has_tls13:
        pytest.skip(needs13)
    srv = tls_server()
    out = s_client(srv.port, "-tls1_3")
    assert re.search(r"^New, TLSv1\.3, Cipher is TLS_", out, re.M), out
    assert "221 2.0.0" in out, out


def test_tls12_still_served(tls_server):
    srv = tls_server()
    out = s_client(srv.port, "-tls1_2")
    assert re.search(r"^New, TLSv1\.2, Cipher is ECDHE-", out, re.M), out


def test_min_version_13_refuses_12(tls_server, has_tls13):
    if not has_tls13:
        pytest.skip(needs13)
    srv = tls_server(min_version="1.3")
    out = s_client(srv.port, "-tls1_2")
    assert not re.search(r"^New, TLSv1\.2", out, re.M), out
    out = s_client(srv.port, "-tls1_3")
    assert re.search(r"^New, TLSv1\.3", out, re.M), out


@pytest.mark.parametrize("version", ["tls1_2", "tls1_3"])
def test_session_resumed_from_ticket(tls_server, has_tls13, tmp_path, version):
    """-sess_out, then -sess_in: the second session is "Reused" (a ticket:
    the server keeps no session cache)."""
    if version == "tls1_3" and not has_tls13:
        pytest.skip(needs13)
    srv = tls_server()
    sess = tmp_path / f"{version}.sess"
    out = s_client(srv.port, f"-{version}", "-sess_out", str(sess))
    assert re.search(r"^New, TLSv1\.[23]", out, re.M), out
    assert sess.exists(), out
    out = s_client(srv.port, f"-{version}", "-sess_in", str(sess))
    assert re.search(r"^Reused, TLSv1\.[23]", out, re.M), out
    assert "221 2.0.0" in out, out
    # A restart draws a new ticket key: the old ticket is worth nothing.
    srv.restart()
    out = s_client(srv.port, f"-{version}", "-sess_in", str(sess))
    assert re.search(r"^New, TLSv1\.[23]", out, re.M), out
