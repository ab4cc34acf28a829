"""The next hops of the gateway's tests (issue 15, SPEC §10), proven
without tarpitd: each peer of peers.py is started, driven by swaks and
openssl s_client, and stopped with none of its processes left."""

import subprocess

import pytest

import peers

SENDER = "sender@origin.test"


def swaks(*args, to="alice@office.test"):
    """swaks' exit code and the server's reply lines ("<-"/"<~" sent,
    "<**" errors)."""
    peers.require("swaks")
    r = subprocess.run([peers.which("swaks"), "--from", SENDER, "--to", to, "--timeout", "10",
                        "--helo", "client.test"] + list(args),
                       capture_output=True, text=True, timeout=60)
    return r.returncode, [ln for ln in r.stdout.splitlines() if ln.startswith("<")], r.stdout


def tcp(port):
    return ["--server", "127.0.0.1", "--port", str(port)]


def none_left(pids):
    assert pids, "no processes seen"
    assert not [p for p in pids if peers.alive(p)], pids


def s_client(port, ca, name):
    peers.require("openssl")
    return subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port,
                           "-starttls", "smtp", "-CAfile", ca, "-verify_return_error",
                           "-verify_hostname", name, "-servername", name],
                          input="QUIT\r\n", capture_output=True, text=True, timeout=30)


# -------------------------------------------------------------------- Postfix

def test_postfix_delivers_to_maildir(postfix_peer):
    """Known users of the test domains land in their Maildir; an unknown
    user is refused with 550 at RCPT; Postfix stops with every process."""
    peers.require("postfix", "swaks")
    p = postfix_peer(users=("alice", "bob"), domains=("office.test", "branch.test"))
    rc, lines, out = swaks(*tcp(p.port))
    assert rc == 0, out
    assert any(ln.startswith("<-  250 2.0.0 Ok: queued") for ln in lines), out
    (f,) = p.wait_for_messages(1, addr="alice@office.test")
    assert "Subject: test" in open(f).read()
    rc, _, out = swaks(*tcp(p.port), to="bob@branch.test")
    assert rc == 0, out
    assert len(p.wait_for_messages(2)) == 2
    rc, lines, out = swaks(*tcp(p.port), to="nobody@office.test")
    assert rc != 0 and any(ln.startswith("<** 550 5.1.1") for ln in lines), out
    pids = peers.descendants(p.master)
    p.stop()
    none_left(pids)


def test_postfix_starttls_verifies_with_test_ca(postfix_peer):
    """STARTTLS is offered; the certificate verifies against peer.ca_pem
    for mail.office.test (openssl with hostname check, swaks with
    --tls-verify) and fails for another name; mail sent inside TLS is
    delivered."""
    peers.require("postfix", "swaks", "openssl")
    p = postfix_peer()
    r = s_client(p.port, p.ca_pem, p.tls_name)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Verify return code: 0 (ok)" in r.stdout, r.stdout
    r = s_client(p.port, p.ca_pem, "wrong.office.test")
    assert r.returncode != 0, r.stdout
    assert "hostname mismatch" in r.stdout + r.stderr, r.stdout + r.stderr
    rc, lines, out = swaks(*tcp(p.port), "-tls", "--tls-verify", "--tls-ca-path", p.ca_pem,
                           "--tls-sni", p.tls_name)
    assert rc == 0, out
    assert "TLS started" in out and '/CN=mail.office.test' in out, out
    p.wait_for_messages(1, addr="alice@office.test")
    assert "TLS connection established from" in p.log_text()


def test_postfix_auth_plain_through_dovecot(postfix_peer):
    """auth={user: password}: AUTH PLAIN is offered only inside TLS
    (Dovecot's auth socket behind Postfix's SASL), the right password is
    accepted, a wrong one gets 535; the auth Dovecot stops with Postfix."""
    peers.require("postfix", "swaks", "dovecot")
    p = postfix_peer(auth={"relayuser": "s3cret"})
    rc, lines, out = swaks(*tcp(p.port))
    assert rc == 0 and not any("AUTH" in ln for ln in lines), out
    rc, lines, out = swaks(*tcp(p.port), "-tls", "-a", "PLAIN", "-au", "relayuser",
                           "-ap", "s3cret", to="bob@office.test")
    assert rc == 0, out
    assert "<~  250-AUTH PLAIN" in out and "<~  235 2.7.0" in out, out
    p.wait_for_messages(1, addr="bob@office.test")
    rc, lines, out = swaks(*tcp(p.port), "-tls", "-a", "PLAIN", "-au", "relayuser",
                           "-ap", "wrong")
    assert rc != 0 and "<~* 535 5.7.8" in out, out
    pids = peers.descendants(p.master) + peers.descendants(p.sasl.master)
    p.stop()
    none_left(pids)


# ------------------------------------------------------------------ smtp-sink

@pytest.mark.parametrize("kw,code", [
    (dict(hard=("RCPT",)), "<** 500 5.3.0 Error: command failed"),
    (dict(soft=("MAIL",)), "<** 450 4.3.0 Error: command failed"),
    (dict(soft=(".",)), "<** 450 4.3.0 Error: command failed"),
    (dict(disconnect_421=("RCPT",)), "<** 421 4.0.0 Server closing connection"),
])
def test_sink_rejects_what_it_is_told(smtp_sink, kw, code):
    """-f/-r/-Q per command: the named command gets 500, 450 or 421."""
    peers.require("smtp-sink", "swaks")
    s = smtp_sink(**kw)
    rc, lines, out = swaks(*tcp(s.port))
    assert rc != 0 and code in lines, out
    # the end of data is dumped before its reply: a "." rejected is counted
    assert s.count() == (1 if kw.get("soft") == (".",) else 0)


def test_sink_disconnect_and_count(smtp_sink):
    """-q DATA closes without a reply; an undisturbed sink dumps one file
    per message, with the envelope in X-Mail-Args/X-Rcpt-Args."""
    peers.require("smtp-sink", "swaks")
    s = smtp_sink(disconnect=("DATA",))
    rc, lines, out = swaks(*tcp(s.port))
    assert rc != 0 and lines[-1] == "<-  250 2.1.5 Ok" and "354" not in out, out
    assert s.count() == 0
    s = smtp_sink()
    for _ in range(3):
        assert swaks(*tcp(s.port))[0] == 0
    fs = s.wait_for_messages(3)
    text = open(fs[0]).read()
    assert "X-Mail-Args: <%s>" % SENDER in text and "X-Rcpt-Args: <alice@office.test>" in text
    proc = s.proc
    s.stop()
    assert proc.poll() is not None


def test_sink_lmtp_one_reply_per_recipient(smtp_sink):
    """-L: LMTP, one reply per recipient after the end of data (a soft
    reject of "." gives one 450 each)."""
    peers.require("smtp-sink", "swaks")
    s = smtp_sink(lmtp=True)
    rc, lines, out = swaks(*tcp(s.port), "--protocol", "LMTP", to="a@office.test,b@office.test")
    assert rc == 0 and lines.count("<-  250 2.2.0 Ok") == 2, out
    assert s.count() == 1
    s = smtp_sink(lmtp=True, soft=(".",))
    rc, lines, out = swaks(*tcp(s.port), "--protocol", "LMTP", to="a@office.test,b@office.test")
    assert lines.count("<** 450 4.3.0 Error: command failed") == 2, out


def test_sink_unix_socket(smtp_sink):
    peers.require("smtp-sink", "swaks")
    s = smtp_sink(lmtp=True, unix=True)
    rc, _, out = swaks("--socket", s.socket_path, "--protocol", "LMTP")
    assert rc == 0, out
    assert s.count() == 1


# -------------------------------------------------------------------- Dovecot

def test_dovecot_lmtp_tcp_and_unix(dovecot_lmtp):
    """LMTP over TCP and over the unix socket deliver to
    mail/<user@domain>/Maildir, one reply per recipient after the data."""
    peers.require("dovecot", "swaks")
    d = dovecot_lmtp()
    rc, lines, out = swaks(*tcp(d.port), "--protocol", "LMTP",
                           to="alice@office.test,bob@office.test")
    assert rc == 0, out
    assert len([ln for ln in lines if ln.startswith("<-  250 2.0.0 <")]) == 2, out
    rc, _, out = swaks("--socket", d.socket_path, "--protocol", "LMTP", to="carol@office.test")
    assert rc == 0, out
    assert len(d.wait_for_messages(3)) == 3
    assert len(d.maildir("alice@office.test")) == 1
    assert "Subject: test" in open(d.maildir("carol@office.test")[0]).read()
    pids = peers.descendants(d.master)
    d.stop()
    none_left(pids)


def test_dovecot_lmtp_known_users_only(dovecot_lmtp):
    """users=[...]: other recipients get 550 5.1.1 at RCPT, the known one
    is delivered."""
    peers.require("dovecot", "swaks")
    d = dovecot_lmtp(users=["alice@office.test"])
    rc, lines, out = swaks("--socket", d.socket_path, "--protocol", "LMTP",
                           to="alice@office.test,zed@office.test")
    assert any(ln.startswith("<** 550 5.1.1 <zed@office.test>") for ln in lines), out
    d.wait_for_messages(1, user="alice@office.test")
    assert not d.maildir("zed@office.test")


def test_sink_count_is_messages_not_dump_files(smtp_sink):
    """A transaction the client drops mid-DATA leaves a partial dump file
    but is not counted; RSET removes the file; "." counts."""
    import socket
    s = smtp_sink()
    c = socket.create_connection(("127.0.0.1", s.port), timeout=10)
    f = c.makefile("rb")

    def say(line, code):
        c.sendall(line)
        r = f.readline()
        assert r.startswith(code), r
    assert f.readline().startswith(b"220")
    say(b"HELO client.test\r\n", b"250")
    say(b"MAIL FROM:<a@origin.test>\r\n", b"250")
    say(b"RSET\r\n", b"250")
    assert s.messages() == []
    say(b"MAIL FROM:<a@origin.test>\r\n", b"250")
    say(b"RCPT TO:<b@office.test>\r\n", b"250")
    say(b"DATA\r\n", b"354")
    c.sendall(b"Subject: half\r\n\r\n" + b"x" * 30000 + b"\r\n")
    c.close()
    assert swaks(*tcp(s.port))[0] == 0
    s.wait_for_messages(1)
    assert s.count() == 1 and len(s.messages()) == 2


def test_halt_and_resume_keep_port_and_mail(postfix_peer, smtp_sink, dovecot_lmtp):
    """halt(): the port refuses and no process is left; resume(): the same
    port serves again and the mail delivered before is still there."""
    import socket
    peers.require("postfix", "smtp-sink", "dovecot", "swaks")
    pf, sink, dv = postfix_peer(), smtp_sink(), dovecot_lmtp()
    assert swaks(*tcp(pf.port))[0] == 0
    assert swaks(*tcp(sink.port))[0] == 0
    assert swaks(*tcp(dv.port), "--protocol", "LMTP")[0] == 0
    pf.wait_for_messages(1)
    dv.wait_for_messages(1)
    pids = peers.descendants(pf.master) + peers.descendants(dv.master) + [sink.proc.pid]
    for p in (pf, sink, dv):
        p.halt()
    none_left(pids)
    for port in (pf.port, sink.port, dv.port):
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=5)
    for p in (pf, sink, dv):
        p.resume()
    assert swaks(*tcp(pf.port))[0] == 0
    assert swaks(*tcp(sink.port))[0] == 0
    assert swaks(*tcp(dv.port), "--protocol", "LMTP")[0] == 0
    assert len(pf.wait_for_messages(2, addr="alice@office.test")) == 2
    assert len(dv.wait_for_messages(2, user="alice@office.test")) == 2
    sink.wait_for_messages(2)
    assert sink.count() == 2
