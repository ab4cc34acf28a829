"""The TLS client of the gateway role (src/tls_client.c) against a real
counterpart: `openssl s_server -www` on a free 127.0.0.1 port, with a test
CA and a server certificate for mail.test made here. tlsc_probe (built
beside tarpitd from host-tests/unit/tlsc_probe.c) connects, handshakes with
or without verification, sends a GET and prints one line. Run once per
mbedTLS build (make integration, make integration MBEDTLS=3.6); skipped in
a TLS=0 build, which has no probe.
"""

import shutil
import subprocess

import pytest

from conftest import BIN, free_port, needs_tls

PROBE = BIN.parent / "tlsc_probe"
# The 3.6 build has TLS 1.3; Debian's 2.28 stops at 1.2.
HAS_13 = "mbedtls3.6" in BIN.parent.name

pytestmark = [
    needs_tls,
    pytest.mark.skipif(not PROBE.exists(), reason=f"no {PROBE} (make {PROBE})"),
    pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl"),
]


def sh(cmd, cwd):
    subprocess.run(cmd, shell=True, cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("tlsc")
    ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
    sh(f"openssl req -x509 {ec} -keyout ca.key -out ca.pem -days 2 -subj '/CN=test CA'", d)
    sh(f"openssl req -x509 {ec} -keyout other.key -out other.pem -days 2 -subj '/CN=other CA'", d)
    (d / "srv.ext").write_text("subjectAltName=DNS:mail.test\nbasicConstraints=CA:FALSE\n")
    for kind, newkey in (("ec", ec), ("rsa", "-newkey rsa:2048 -nodes")):
        sh(f"openssl req -new {newkey} -keyout {kind}.key -out {kind}.csr -subj /CN=mail.test", d)
        sh(f"openssl x509 -req -in {kind}.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
           f"-out {kind}.pem -days 2 -extfile srv.ext", d)
    return d


class SServer:
    """openssl s_server -www for n connections, ready once it says ACCEPT."""

    def __init__(self, certs, kind="ec", n=1, extra=()):
        self.port = free_port()
        self.proc = subprocess.Popen(
            ["openssl", "s_server", "-accept", f"127.0.0.1:{self.port}",
             "-cert", str(certs / f"{kind}.pem"), "-key", str(certs / f"{kind}.key"),
             "-www", "-naccept", str(n), *extra],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True)
        for line in self.proc.stdout:
            if line.startswith("ACCEPT"):
                break
        else:
            raise RuntimeError(f"s_server did not start (exit {self.proc.wait()})")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
        self.proc.wait(timeout=10)


@pytest.fixture
def server(certs):
    started = []

    def start(**kw):
        s = SServer(certs, **kw)
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()


def probe(port, *args):
    r = subprocess.run([str(PROBE), str(port), *args], capture_output=True, text=True,
                       timeout=30)
    return r.returncode, r.stdout.strip()


@pytest.mark.parametrize("kind", ["ec", "rsa"])
@pytest.mark.parametrize("version", ["default", "tls1_2"])
def test_verified_ok(certs, server, kind, version):
    s = server(kind=kind, extra=() if version == "default" else ("-tls1_2",))
    rc, out = probe(s.port, "-c", str(certs / "ca.pem"), "-n", "mail.test")
    assert rc == 0, out
    assert out.startswith("ok TLSv1."), out
    assert "HTTP/1.0 200 ok" in out, out
    want = "TLSv1.3" if version == "default" and HAS_13 else "TLSv1.2"
    assert out.split()[1] == want, out
    assert "GCM" in out or "CHACHA" in out, out


@pytest.mark.parametrize("version", ["default", "tls1_2"])
def test_wrong_name_fails(certs, server, version):
    s = server(extra=() if version == "default" else ("-tls1_2",))
    rc, out = probe(s.port, "-c", str(certs / "ca.pem"), "-n", "other.test")
    assert rc == 1, out
    assert out == "error certificate verification failed: name mismatch (expected other.test)"


def test_untrusted_ca_fails(certs, server):
    s = server()
    rc, out = probe(s.port, "-c", str(certs / "other.pem"), "-n", "mail.test")
    assert rc == 1, out
    assert out == "error certificate verification failed: not trusted"


def test_no_ca_takes_any_certificate(certs, server):
    # opportunistic: encryption without verification, whatever the name
    s = server(n=2)
    rc, out = probe(s.port, "-n", "other.test")
    assert rc == 0 and "HTTP/1.0 200 ok" in out, out
    rc, out = probe(s.port)
    assert rc == 0 and "HTTP/1.0 200 ok" in out, out


def test_sni_is_sent(certs, server):
    # s_server aborts a handshake whose SNI is not its -servername
    sni = ("-servername", "mail.test", "-servername_fatal",
           "-cert2", str(certs / "ec.pem"), "-key2", str(certs / "ec.key"))
    s = server(n=2, extra=sni)
    rc, out = probe(s.port, "-n", "mail.test")
    assert rc == 0, out
    rc, out = probe(s.port, "-n", "other.test")
    assert rc == 1 and out.startswith("error handshake failed: "), out


def test_slot_reused(certs, server):
    s = server(n=3)
    rc, out = probe(s.port, "-c", str(certs / "ca.pem"), "-n", "mail.test", "-s", "3")
    lines = out.splitlines()
    assert rc == 0, out
    assert len(lines) == 3 and all("HTTP/1.0 200 ok" in l for l in lines), out
