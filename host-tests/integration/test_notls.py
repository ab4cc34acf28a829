"""A build without TLS (make TLS=0, src/tls_none.c): a [tls] section is a
configuration error at its line, for `check` and for `run`; STARTTLS is
never offered. AUTH without TLS is covered by test_tls_auth.py's
with_tls=False cases, which run against this build too.

These tests run only against a TLS=0 binary (TARPITD_TLS=0, set by
`make test TLS=0`); the TLS suite covers the other builds.
"""

import subprocess

import pytest

from conftest import WITH_TLS
from test_cli import BASE, assert_error_at, line_of, run, write

pytestmark = pytest.mark.skipif(WITH_TLS, reason="for a build without TLS (TLS=0)")

TLS_INI = BASE + "\n[tls]\ncertificate = a.crt\nkey = a.key\n"


def test_check_refuses_tls_section_at_its_line(tmp_path):
    ini = write(tmp_path, TLS_INI)
    p = run("-c", ini, "check")
    assert_error_at(p, ini, line_of(TLS_INI, "[tls]"), "[tls]", "without TLS")


def test_run_refuses_tls_section(tmp_path):
    ini = write(tmp_path, TLS_INI)
    p = run("-c", ini, "run")
    assert_error_at(p, ini, line_of(TLS_INI, "[tls]"), "without TLS")


def test_check_without_tls_section_ok(tmp_path):
    ini = write(tmp_path, BASE)
    p = run("-c", ini, "check")
    assert p.returncode == 0, p.stderr


def test_starttls_not_offered(server):
    srv = server()
    with srv.client() as c:
        c.expect(220)
        r = c.expect(250, None, "EHLO client.test")
        assert not any(t.upper().startswith("STARTTLS") for t in r.texts), r.texts
        c.expect(454, "4.7.0", "STARTTLS")
        c.expect(250, "2.0.0", "NOOP")


def test_binary_links_no_ssl_code():
    """The point of the variant: no SSL/X.509 code in the binary."""
    from conftest import BIN
    p = subprocess.run(["nm", str(BIN)], capture_output=True, text=True)
    if p.returncode != 0 or not p.stdout:
        pytest.skip("binary has no symbol table")
    assert "mbedtls_ssl_handshake" not in p.stdout
    assert "mbedtls_x509_crt_parse" not in p.stdout
