"""SPEC §7: one test (or parametrized case) per in-scope reply row.

The tarpit is off here (tarpit_interval 00:00:00); test_tarpit.py checks
the timing. Each case checks the code and the enhanced code.
"""

import socket
import time

import pytest

from conftest import Closed, IMMEDIATE


def session(srv, ehlo="client.test", **kw):
    c = srv.client(**kw)
    c.expect(220)
    if ehlo:
        c.expect(250, line=f"EHLO {ehlo}")
    return c


def in_mail(srv):
    c = session(srv)
    c.expect(250, "2.1.0", "MAIL FROM:<sender@origin.test>")
    return c


# ---------------------------------------------------------------- greeting

def test_greeting_banner(server):
    srv = server(banner="mx.test ESMTP tarpit test")
    with srv.client() as c:
        r = c.reply()
        assert r.code == 220
        assert r.lines == ["220 mx.test ESMTP tarpit test"]


def test_greeting_default_mentions_fqdn(shared):
    with shared.client() as c:
        r = c.expect(220)
        assert len(r.lines) == 1
        assert "mx.test" in r.text


# ---------------------------------------------------------------- EHLO / HELO

def ehlo_keywords(r):
    assert r.code == 250
    return {ln.split(" ")[0].upper(): ln for ln in r.texts[1:]}


def test_ehlo_keywords(shared):
    with shared.client() as c:
        c.expect(220)
        r = c.cmd("EHLO client.test")
        assert r.code == 250
        assert len(r.lines) >= 5
        assert all(ln.startswith("250-") for ln in r.lines[:-1]), r.lines
        assert r.lines[-1].startswith("250 ")
        assert r.texts[0].split(" ")[0] == "mx.test"
        kw = ehlo_keywords(r)
        assert kw.get("SIZE") == "SIZE 1048576", r.lines
        for k in ("PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES"):
            assert k in kw, r.lines
        # No TLS or AUTH configured, no CHUNKING offered.
        for k in ("STARTTLS", "AUTH", "CHUNKING", "BINARYMIME", "SMTPUTF8"):
            assert k not in kw, r.lines


def test_ehlo_without_pipelining(server):
    srv = server(pipelining="no", fqdn="relay.test", max_message_size="512 KB")
    with srv.client() as c:
        c.expect(220)
        r = c.cmd("EHLO client.test")
        kw = ehlo_keywords(r)
        assert r.texts[0].split(" ")[0] == "relay.test"
        assert "PIPELINING" not in kw, r.lines
        assert kw.get("SIZE") == "SIZE 524288", r.lines
        assert "8BITMIME" in kw and "ENHANCEDSTATUSCODES" in kw


def test_ehlo_lower_case_and_twice(shared):
    with shared.client() as c:
        c.expect(220)
        c.expect(250, line="ehlo client.test")
        c.expect(250, "2.1.0", "MAIL FROM:<a@origin.test>")
        # A second EHLO resets the transaction (RFC 5321 4.1.4).
        c.expect(250, line="EHLO client.test")
        c.expect(503, "5.5.1", "RCPT TO:<alice@example.org>")


def test_helo(shared):
    with shared.client() as c:
        c.expect(220)
        r = c.cmd("HELO client.test")
        assert r.code == 250
        assert len(r.lines) == 1
        c.expect(250, "2.1.0", "MAIL FROM:<a@origin.test>")


@pytest.mark.parametrize("line", ["EHLO", "HELO", "EHLO ", "HELO  "])
def test_helo_without_argument(shared, line):
    with shared.client() as c:
        c.expect(220)
        c.expect(501, "5.5.4", line)
        # Still no HELO given.
        c.expect(503, "5.5.1", "MAIL FROM:<a@origin.test>")


@pytest.mark.parametrize("verb", ["EHLO", "HELO"])
def test_helo_argument_too_long(shared, verb):
    with shared.client() as c:
        c.expect(220)
        c.expect(501, "5.5.4", f"{verb} " + "h" * 256)
        c.expect(250, line=f"{verb} " + "h" * 255)


# ---------------------------------------------------------------- MAIL

def test_mail_before_helo(shared):
    with shared.client() as c:
        c.expect(220)
        c.expect(503, "5.5.1", "MAIL FROM:<a@origin.test>")


def test_mail_nested(shared):
    with in_mail(shared) as c:
        c.expect(503, "5.5.1", "MAIL FROM:<b@origin.test>")


LONG_DOMAIN_OK = ".".join(["a" * 60, "b" * 60, "c" * 60]) + ".test"   # 187
DOMAIN_256 = ".".join(["d" * 50] * 5) + ".x"                           # 256
assert len(LONG_DOMAIN_OK) == 187 and len(DOMAIN_256) == 256


@pytest.mark.parametrize("line", [
    "MAIL FROM:<>",
    "MAIL FROM:<sender@origin.test>",
    "MAIL FROM:sender@origin.test",
    "MAIL FROM: <sender@origin.test>",
    "MAIL FROM: sender@origin.test",
    "mail from:<sender@origin.test>",
    "MAIL FROM:<@relay.test:sender@origin.test>",
    "MAIL FROM:<@r1.test,@r2.test:sender@origin.test>",
    'MAIL FROM:<"john doe"@origin.test>',
    'MAIL FROM:<"a\\"b"@origin.test>',
    "MAIL FROM:<sender@[192.0.2.1]>",
    "MAIL FROM:<sender@[IPv6:2001:db8::1]>",
    "MAIL FROM:<%s@origin.test>" % ("l" * 64),
    "MAIL FROM:<%s@%s>" % ("l" * 60, LONG_DOMAIN_OK),                 # path 250
    "MAIL FROM:<sender@origin.test> SIZE=1000",
    "MAIL FROM:<sender@origin.test> SIZE=1048576",
    "MAIL FROM:<sender@origin.test> BODY=8BITMIME",
    "MAIL FROM:<sender@origin.test> BODY=7BIT",
    "MAIL FROM:<sender@origin.test> size=10 body=8bitmime",
    "MAIL FROM:<> SIZE=100",
], ids=lambda s: s[:60])
def test_mail_accepted(shared, line):
    with session(shared) as c:
        c.expect(250, "2.1.0", line)
        c.expect(250, "2.1.5", "RCPT TO:<alice@example.org>")


@pytest.mark.parametrize("line", [
    "MAIL FROM:<senderorigin.test>",
    "MAIL FROM:senderorigin.test",
    "MAIL FROM:<sender@origin.test",
    "MAIL FROM:<sender@>",
    "MAIL FROM:<@origin.test>",
    "MAIL FROM:<send er@origin.test>",
    'MAIL FROM:<"unterminated@origin.test>',
    "MAIL FROM:<%s@origin.test>" % ("l" * 65),                        # local part 65
    "MAIL FROM:<s@%s>" % DOMAIN_256,                                   # domain 256
    "MAIL FROM:<%s@%s>" % ("l" * 64, ".".join(["e" * 60] * 3) + ".example"),  # path 259+2
], ids=lambda s: s[:60])
def test_mail_syntax_error(shared, line):
    with session(shared) as c:
        c.expect(501, "5.1.7", line)
        # The transaction was not opened.
        c.expect(503, "5.5.1", "RCPT TO:<alice@example.org>")


@pytest.mark.parametrize("line", ["MAIL", "MAIL FROM", "MAIL TO:<a@origin.test>", "MAIL FROM:"])
def test_mail_malformed_command(shared, line):
    with session(shared) as c:
        r = c.cmd(line)
        assert r.code == 501, r.lines
        assert r.enh in ("5.1.7", "5.5.4", "5.5.2"), r.lines


@pytest.mark.parametrize("size", ["1048577", "2000000000"])
def test_mail_size_over_limit(shared, size):
    with session(shared) as c:
        c.expect(552, "5.3.4", f"MAIL FROM:<sender@origin.test> SIZE={size}")
        c.expect(250, "2.1.0", "MAIL FROM:<sender@origin.test> SIZE=1024")


@pytest.mark.parametrize("param", [
    "FOO=BAR", "SMTPUTF8", "BODY=BINARYMIME", "AUTH=<>", "RET=HDRS", "ENVID=abc", "XYZ",
])
def test_mail_unknown_parameter(shared, param):
    with session(shared) as c:
        c.expect(555, "5.5.4", f"MAIL FROM:<sender@origin.test> {param}")
        c.expect(250, "2.1.0", "MAIL FROM:<sender@origin.test>")


# ---------------------------------------------------------------- RCPT

@pytest.mark.parametrize("line", [
    "RCPT TO:<alice@example.org>",
    "RCPT TO:alice@example.org",
    "RCPT TO: <alice@example.org>",
    "rcpt to:<ALICE@EXAMPLE.ORG>",
    "RCPT TO:<Bob@Example.Org>",
    "RCPT TO:<anyone@example.net>",
    "RCPT TO:<ANYONE.Else@EXAMPLE.NET>",
    "RCPT TO:<@relay.test:alice@example.org>",
    "RCPT TO:<postmaster@example.org>",
    "RCPT TO:<PostMaster@EXAMPLE.ORG>",
    "RCPT TO:<postmaster@example.net>",
    "RCPT TO:<postmaster>",
    "RCPT TO:<POSTMASTER>",
], ids=lambda s: s[:60])
def test_rcpt_accepted(shared, line):
    with in_mail(shared) as c:
        c.expect(250, "2.1.5", line)


@pytest.mark.parametrize("addr", [
    "carol@example.org",
    "alice.x@example.org",
    "alicex@example.org",
    "robert@example.org",          # a mailbox name is not an address
    '"john doe"@example.org',
])
def test_rcpt_unknown_user(shared, addr):
    with in_mail(shared) as c:
        c.expect(550, "5.1.1", f"RCPT TO:<{addr}>")
        c.expect(250, "2.1.5", "RCPT TO:<alice@example.org>")


@pytest.mark.parametrize("addr", [
    "alice@example.com",
    "alice@sub.example.org",
    "alice@example.org.evil.test",
    "postmaster@other.test",
    "alice@[192.0.2.1]",
    "alice@[IPv6:2001:db8::1]",
])
def test_rcpt_foreign_domain(shared, addr):
    with in_mail(shared) as c:
        c.expect(550, "5.7.1", f"RCPT TO:<{addr}>")


@pytest.mark.parametrize("line", [
    "RCPT TO:<>",
    "RCPT TO:<alice>",
    "RCPT TO:alice",
    "RCPT TO:<alice@example.org",
    "RCPT TO:<@example.org>",
    "RCPT TO:<al ice@example.org>",
    "RCPT TO:<%s@example.org>" % ("l" * 65),
], ids=lambda s: s[:60])
def test_rcpt_syntax_error(shared, line):
    with in_mail(shared) as c:
        c.expect(501, "5.1.3", line)


@pytest.mark.parametrize("param", ["NOTIFY=NEVER", "ORCPT=rfc822;alice@example.org", "FOO"])
def test_rcpt_parameter(shared, param):
    with in_mail(shared) as c:
        c.expect(555, "5.5.4", f"RCPT TO:<alice@example.org> {param}")


def test_rcpt_before_mail(shared):
    with session(shared) as c:
        c.expect(503, "5.5.1", "RCPT TO:<alice@example.org>")


def test_rcpt_before_helo(shared):
    with shared.client() as c:
        c.expect(220)
        c.expect(503, "5.5.1", "RCPT TO:<alice@example.org>")


def test_rcpt_over_max_recipients(shared):
    # shared: max_recipients_per_message = 3
    with in_mail(shared) as c:
        c.expect(250, "2.1.5", "RCPT TO:<alice@example.org>")
        c.expect(250, "2.1.5", "RCPT TO:<bob@example.org>")
        c.expect(250, "2.1.5", "RCPT TO:<x@example.net>")
        c.expect(452, "4.5.3", "RCPT TO:<y@example.net>")
        c.expect(452, "4.5.3", "RCPT TO:<postmaster@example.org>")
        # The transaction goes on with its 3 recipients.
        c.expect(354, None, "DATA")
        c.expect(250, "2.0.0", "Subject: t\r\n\r\nhi\r\n.")


def test_postmaster_mailbox_used_when_listed(server):
    srv = server(recipients="alice@example.org\npostmaster@example.org  pm\n")
    with in_mail(srv) as c:
        c.expect(250, "2.1.5", "RCPT TO:<postmaster@example.org>")
        c.expect(354, None, "DATA")
        c.expect(250, "2.0.0", "\r\nhi\r\n.")
    assert len(srv.new_files("pm")) == 1
    assert srv.new_files("postmaster") == []


# ---------------------------------------------------------------- DATA

def test_data_without_mail(shared):
    with session(shared) as c:
        c.expect(503, "5.5.1", "DATA")


def test_data_before_helo(shared):
    with shared.client() as c:
        c.expect(220)
        c.expect(503, "5.5.1", "DATA")


def test_data_without_accepted_recipient(shared):
    with in_mail(shared) as c:
        c.expect(550, "5.1.1", "RCPT TO:<nobody@example.org>")
        c.expect(554, "5.5.1", "DATA")


def test_data_with_argument(shared):
    with in_mail(shared) as c:
        c.expect(250, "2.1.5", "RCPT TO:<alice@example.org>")
        c.expect(501, "5.5.4", "DATA now")
        c.expect(354, None, "DATA")


def test_data_go_ahead_and_stored(shared):
    with in_mail(shared) as c:
        c.expect(250, "2.1.5", "RCPT TO:<alice@example.org>")
        c.expect(354, None, "DATA")
        r = c.expect(250, "2.0.0", "Subject: x\r\n\r\nbody\r\n.")
        assert len(r.text.split()) >= 2, "250 after data must carry the queue id"


def test_data_message_too_big(server):
    srv = server(max_message_size="1KB")
    with in_mail(srv) as c:
        c.expect(250, "2.1.5", "RCPT TO:<alice@example.org>")
        c.expect(354, None, "DATA")
        c.send(("x" * 70 + "\r\n") * 40)
        c.no_reply(0.3)
        c.expect(552, "5.3.4", ".")
        c.expect(250, "2.0.0", "NOOP")
    assert srv.all_new_files() == []


@pytest.mark.parametrize("bad", [b"bare\nLF", b"bare\rCR"], ids=["LF", "CR"])
def test_data_bare_eol(server, bad):
    srv = server()
    with in_mail(srv) as c:
        c.expect(250, "2.1.5", "RCPT TO:<alice@example.org>")
        c.expect(354, None, "DATA")
        c.send(b"Subject: x\r\n\r\n" + bad + b"\r\nmore\r\n")
        c.no_reply(0.3)
        c.expect(550, "5.5.2", ".")
        c.expect(250, "2.0.0", "NOOP")
    assert srv.all_new_files() == []


# ---------------------------------------------------------------- other commands

def test_rset(shared):
    with in_mail(shared) as c:
        c.expect(250, "2.1.5", "RCPT TO:<alice@example.org>")
        c.expect(250, "2.0.0", "RSET")
        c.expect(503, "5.5.1", "RCPT TO:<alice@example.org>")
        c.expect(250, "2.1.0", "MAIL FROM:<a@origin.test>")


def test_rset_with_argument(shared):
    with in_mail(shared) as c:
        c.expect(501, "5.5.4", "RSET now")
        # The transaction is still open.
        c.expect(250, "2.1.5", "RCPT TO:<alice@example.org>")


def test_rset_before_helo(shared):
    with shared.client() as c:
        c.expect(220)
        c.expect(250, "2.0.0", "RSET")


@pytest.mark.parametrize("line", ["NOOP", "noop", "NOOP some argument"])
def test_noop(shared, line):
    with shared.client() as c:
        c.expect(220)
        c.expect(250, "2.0.0", line)


@pytest.mark.parametrize("arg", ["alice", "alice@example.org", "nobody@example.org", "x@foreign.test"])
def test_vrfy(shared, arg):
    with session(shared) as c:
        c.expect(252, "2.5.2", f"VRFY {arg}")


def test_expn(shared):
    with session(shared) as c:
        c.expect(502, "5.5.1", "EXPN staff")


def test_help(shared):
    with shared.client() as c:
        c.expect(220)
        c.expect(214, None, "HELP")
        c.expect(214, None, "HELP MAIL")


def test_quit(shared):
    with session(shared) as c:
        c.expect(221, "2.0.0", "QUIT")
        assert c.closed(2.0)


def test_quit_closes_pipelined_rest(shared):
    with session(shared) as c:
        c.send("QUIT\r\nNOOP\r\n")
        c.expect(221, "2.0.0")
        assert c.closed(2.0)


@pytest.mark.parametrize("line", ["FOO", "MAILFROM:<a@b.org>", "XYZZY arg", "EHLOclient"])
def test_unknown_command(shared, line):
    with session(shared) as c:
        c.expect(500, "5.5.1", line)
        c.expect(250, "2.0.0", "NOOP")


def test_starttls_without_tls(shared):
    with session(shared) as c:
        c.expect(454, "4.7.0", "STARTTLS")
        c.expect(250, "2.0.0", "NOOP")


@pytest.mark.parametrize("line", ["AUTH PLAIN", "AUTH LOGIN", "AUTH PLAIN AGFsaWNlAHNlY3JldA=="])
def test_auth_not_offered(shared, line):
    """No [auth] section: AUTH is not offered and answers 502 5.5.1."""
    with session(shared) as c:
        c.expect(502, "5.5.1", line)
        c.expect(250, "2.0.0", "NOOP")


def test_command_bare_lf_tolerated(shared):
    with shared.client() as c:
        c.expect(220)
        c.send(b"EHLO client.test\n")
        c.expect(250)
        c.send(b"NOOP\n")
        c.expect(250, "2.0.0")


# ---------------------------------------------------------------- line limits and octets

def test_line_512_octets_ok(shared):
    with session(shared) as c:
        line = "NOOP " + "x" * (512 - 5 - 2)
        assert len(line) + 2 == 512
        c.expect(250, "2.0.0", line)


def test_line_513_octets(shared):
    with session(shared) as c:
        line = "NOOP " + "x" * (513 - 5 - 2)
        assert len(line) + 2 == 513
        c.expect(500, "5.5.2", line)
        c.expect(250, "2.0.0", "NOOP")
        c.expect(250, "2.1.0", "MAIL FROM:<a@origin.test>")


def test_long_line_tail_is_not_a_command(shared):
    with session(shared) as c:
        head = "NOOP " + "x" * (512 - 5)
        assert len(head) == 512
        c.send(head + "QUIT\r\n")
        c.expect(500, "5.5.2")
        # The tail "QUIT" was consumed with the line: the session goes on.
        c.expect(250, "2.0.0", "NOOP")


def test_long_line_tail_rcpt_not_processed(shared):
    with in_mail(shared) as c:
        c.send("X" * 600 + "RCPT TO:<alice@example.org>\r\n")
        c.expect(500, "5.5.2")
        c.expect(554, "5.5.1", "DATA")  # no recipient was accepted


def test_very_long_line_consumed(shared):
    with session(shared) as c:
        # 100 kB of one line, sent in pieces, then more commands.
        for _ in range(10):
            c.send("A" * 10000)
        c.send("\r\nNOOP\r\n")
        c.expect(500, "5.5.2")
        c.expect(250, "2.0.0")
        c.no_reply(0.3)


def test_long_line_bare_lf_end(shared):
    with session(shared) as c:
        c.send("Y" * 700 + "\nNOOP\r\n")
        c.expect(500, "5.5.2")
        c.expect(250, "2.0.0")


@pytest.mark.parametrize("line", [
    b"NOOP a\x00b",
    b"\x00NOOP",
    b"NOOP a\rb",
    b"NOOP caf\xc3\xa9",
    b"NOOP \xff",
    b"MAIL FROM:<caf\xe9@origin.test>",
    b"EHLO cli\x80ent",
], ids=["nul", "nul-first", "bare-cr", "utf8", "0xff", "8bit-mail", "8bit-ehlo"])
def test_bad_octets_in_command(shared, line):
    with session(shared) as c:
        c.expect(500, "5.5.2", line)
        c.expect(250, "2.0.0", "NOOP")


def test_bare_cr_command_no_split(shared):
    """NOOP\\rQUIT is one bad line, not two commands."""
    with session(shared) as c:
        c.expect(500, "5.5.2", b"NOOP\rQUIT")
        c.expect(250, "2.0.0", "NOOP")


# ---------------------------------------------------------------- closing errors

@pytest.mark.parametrize("ehlo", [True, False])
@pytest.mark.parametrize("line", ["BDAT 10 LAST", "BDAT 0"])
def test_bdat(shared, ehlo, line):
    with session(shared, ehlo="client.test" if ehlo else None) as c:
        c.expect(502, "5.5.1", line)
        assert c.closed(2.0)


@pytest.mark.parametrize("line", [
    "GET / HTTP/1.1",
    "POST /cgi-bin/x HTTP/1.0",
    "HEAD / HTTP/1.1",
    "PUT /x HTTP/1.1",
    "CONNECT mx.example.com:25 HTTP/1.1",
    "get / HTTP/1.0",
])
def test_http_proxy_lines(shared, line):
    with shared.client() as c:
        c.expect(220)
        c.send(line + "\r\nHost: mx.test\r\n\r\n")
        c.expect(502, "5.5.1")
        assert c.closed(2.0)


def test_bytes_before_354(server):
    srv = server()
    with in_mail(srv) as c:
        c.expect(250, "2.1.5", "RCPT TO:<alice@example.org>")
        c.send("DATA\r\nSubject: x\r\n\r\nsmuggled\r\n.\r\nQUIT\r\n")
        replies = []
        try:
            while True:
                replies.append(c.reply(3.0))
        except Closed:
            pass
        codes = [(r.code, r.enh) for r in replies]
        assert codes and codes[-1] == (554, "5.5.0"), codes
        assert all(r.code in (354, 554) for r in replies), codes
    time.sleep(0.2)
    assert srv.all_new_files() == []
    assert srv.tmp_files() == []


def test_bytes_before_354_commands_not_read(server):
    srv = server()
    with in_mail(srv) as c:
        c.expect(250, "2.1.5", "RCPT TO:<alice@example.org>")
        c.send("DATA\r\nNOOP\r\n")
        replies = []
        try:
            while True:
                replies.append(c.reply(3.0))
        except Closed:
            pass
        codes = [(r.code, r.enh) for r in replies]
        assert codes and codes[-1] == (554, "5.5.0"), codes
        assert (250, "2.0.0") not in codes, codes


def test_early_talker(server):
    srv = server(greeting_delay="00:00:02")
    with srv.client() as c:
        c.send("EHLO client.test\r\n")
        r = c.reply(6)
        assert (r.code, r.enh) == (554, "5.5.1"), r.lines
        assert c.closed(2.0)


def test_greeting_delay_patient_client(server):
    srv = server(greeting_delay="00:00:01")
    with srv.client() as c:
        r = c.expect(220, timeout=5)
        assert r.t - c.t_connect >= 0.9
        c.expect(250, line="EHLO client.test")


# ---------------------------------------------------------------- timeouts and limits

def test_inactivity_timeout(server):
    srv = server(connection_inactivity_timeout="00:00:02")
    with srv.client() as c:
        c.expect(220)
        c.expect(250, line="EHLO client.test")
        t0 = time.monotonic()
        r = c.reply(6)
        assert (r.code, r.enh) == (421, "4.4.2"), r.lines
        assert r.t - t0 >= 1.8
        assert c.closed(2.0)


def test_session_timeout(server):
    srv = server(connection_timeout="00:00:03", connection_inactivity_timeout="00:05:00")
    with srv.client() as c:
        c.expect(220)
        t0 = c.t_connect
        # Keep the session busy: only the whole-session limit can end it.
        while True:
            c.send("NOOP\r\n")
            r = c.reply(3)
            if r.code != 250:
                break
            assert time.monotonic() - t0 < 6, "session never timed out"
            time.sleep(0.25)
        assert (r.code, r.enh) == (421, "4.4.2"), r.lines
        assert r.t - t0 >= 2.8
        assert c.closed(2.0)


def test_max_protocol_errors(server):
    srv = server(max_protocol_errors="2")
    with session(srv) as c:
        c.expect(500, "5.5.1", "FOO")
        c.expect(503, "5.5.1", "DATA")
        c.expect(250, "2.0.0", "NOOP")       # not an error: the count goes on
        c.expect(501, "5.5.4", "RSET x")     # the third error
        c.expect(421, "4.7.0")
        assert c.closed(2.0)


def test_max_protocol_errors_zero_is_unlimited(server):
    srv = server(max_protocol_errors="0")
    with session(srv) as c:
        for _ in range(12):
            c.expect(500, "5.5.1", "FOO")
        c.expect(250, "2.0.0", "NOOP")


def test_max_protocol_errors_pipelined(server):
    srv = server(max_protocol_errors="1")
    with session(srv) as c:
        c.send("FOO\r\nBAR\r\nNOOP\r\nNOOP\r\n")
        c.expect(500, "5.5.1")
        c.expect(500, "5.5.1")
        c.expect(421, "4.7.0")
        assert c.closed(2.0)


def test_max_unknown_recipients(server):
    srv = server(max_unknown_recipients="2")
    with in_mail(srv) as c:
        c.expect(550, "5.1.1", "RCPT TO:<u1@example.org>")
        c.expect(250, "2.1.5", "RCPT TO:<alice@example.org>")
        c.expect(550, "5.1.1", "RCPT TO:<u2@example.org>")
        c.expect(550, "5.1.1", "RCPT TO:<u3@example.org>")
        c.expect(421, "4.7.0")
        assert c.closed(2.0)


def test_max_unknown_recipients_across_transactions(server):
    srv = server(max_unknown_recipients="1")
    with in_mail(srv) as c:
        c.expect(550, "5.1.1", "RCPT TO:<u1@example.org>")
        c.expect(250, "2.0.0", "RSET")
        c.expect(250, "2.1.0", "MAIL FROM:<a@origin.test>")
        c.expect(550, "5.1.1", "RCPT TO:<u2@example.org>")
        c.expect(421, "4.7.0")
        assert c.closed(2.0)


def wait_refused(srv, source, code, enh):
    """Connects from source; the refusal must come at once and close."""
    c = srv.client(source=source)
    t0 = c.t_connect
    r = c.reply(3)
    assert (r.code, r.enh) == (code, enh), r.lines
    assert r.t - t0 < IMMEDIATE
    assert c.closed(2.0)
    c.close()


def retry_connect_greeted(srv, source, deadline=3.0):
    """A slot freed by a hang-up is free again soon: retries until a 220."""
    end = time.monotonic() + deadline
    while True:
        c = srv.client(source=source)
        r = c.reply(3)
        if r.code == 220:
            return c
        c.close()
        assert time.monotonic() < end, f"still refused: {r.lines}"
        time.sleep(0.05)


def test_per_source_limit(server):
    srv = server(max_inbound_connections_per_source="2")
    held = [session(srv), session(srv)]
    try:
        wait_refused(srv, "127.0.0.1", 421, "4.7.0")
        # Another source is still welcome.
        with srv.client(source="127.0.0.2") as other:
            other.expect(220)
        # The held sessions are not disturbed.
        held[0].expect(250, "2.0.0", "NOOP")
        held[1].close()
        c = retry_connect_greeted(srv, "127.0.0.1")
        c.close()
    finally:
        for c in held:
            c.close()


def test_connector_full(server):
    srv = server(max_inbound_connections="2")
    held = [session(srv, source="127.0.0.2"), session(srv, source="127.0.0.3")]
    try:
        wait_refused(srv, "127.0.0.4", 421, "4.3.2")
        held[0].expect(250, "2.0.0", "NOOP")
        held[0].close()
        c = retry_connect_greeted(srv, "127.0.0.4")
        c.close()
    finally:
        for c in held:
            c.close()


def test_table_full(server):
    srv = server(server_overrides={"max_connections": "2"})
    held = [session(srv, source="127.0.0.2"), session(srv, source="127.0.0.3")]
    try:
        wait_refused(srv, "127.0.0.4", 421, "4.3.2")
        wait_refused(srv, "127.0.0.1", 421, "4.3.2")
        held[1].expect(250, "2.0.0", "NOOP")
        held[1].close()
        c = retry_connect_greeted(srv, "127.0.0.4")
        c.close()
    finally:
        for c in held:
            c.close()


def test_no_matching_connector(server):
    srv = server(remote_ip_ranges="127.0.0.5")
    wait_refused(srv, "127.0.0.1", 421, "4.3.2")
    wait_refused(srv, "127.0.0.6", 421, "4.3.2")
    with srv.client(source="127.0.0.5") as c:
        c.expect(220)
        c.expect(250, line="EHLO client.test")


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for ln in f:
            if ln.startswith("VmRSS:"):
                return int(ln.split()[1])
    return 0


def test_back_pressure_and_inactivity(server):
    """SPEC §7: a client that stops reading its replies is no longer read
    from; the inactivity timeout then ends the session. Others are served
    meanwhile and the server's memory stays bounded."""
    srv = server(connection_inactivity_timeout="00:00:02")
    rss0 = rss_kb(srv.proc.pid)
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    s.connect(("127.0.0.1", srv.port))
    s.setblocking(False)
    chunk = b"NOOP\r\n" * 1000
    sent = 0
    stalled_since = None
    limit = 64 * 1024 * 1024
    pending = chunk
    while True:
        try:
            # A short send must go on where it stopped: gluing the next
            # chunk onto half a line would make bogus commands.
            n = s.send(pending)
            sent += n
            pending = pending[n:] or chunk
            stalled_since = None
        except BlockingIOError:
            if stalled_since is None:
                stalled_since = time.monotonic()
            elif time.monotonic() - stalled_since > 0.5:
                break
            time.sleep(0.01)
        assert sent < limit, "the server kept reading commands whose replies nobody reads"
    # Another client is served at once meanwhile.
    with srv.client() as other:
        r = other.expect(220)
        assert r.t - other.t_connect < IMMEDIATE
        r = other.expect(250, "2.0.0", "NOOP")
        assert r.t - other.t_sent < IMMEDIATE
    assert rss_kb(srv.proc.pid) - rss0 < 8 * 1024, "server memory grew with the flood"
    # After the inactivity timeout the server drops the stuck session.
    time.sleep(3.5)
    s.setblocking(True)
    s.settimeout(3)
    got_eof = False
    end = time.monotonic() + 5
    try:
        while time.monotonic() < end:
            data = s.recv(1 << 20)
            if not data:
                got_eof = True
                break
    except ConnectionResetError:
        got_eof = True
    except socket.timeout:
        pass
    s.close()
    assert got_eof, "the stuck session was not closed by the inactivity timeout"
    assert srv.alive()
