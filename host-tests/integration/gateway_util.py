"""What the gateway role's tests share (test_gateway.py, the receiving
side; test_relay.py, forwarding; test_faults_relay.py): tarpitd with
[relay] sections and a control socket, its command line, one message over
SMTP, the queue's files, the 452 of a full queue. Not a test module."""
import base64
import subprocess

from conftest import BIN


def relay_section(host, name="Office", domains="office.test", **keys):
    """A [relay "NAME"] section for HOST and DOMAINS, then KEYS in order."""
    lines = ["", f'[relay "{name}"]', f"host = {host}", f"domains = {domains}"]
    lines += [f"{k} = {v}" for k, v in keys.items()]
    return "\n".join(lines) + "\n"


def gateway_server(server, relays, recipients, server_overrides=None, start=True, **connector):
    """tarpitd (the `server` fixture's factory) with RELAYS (INI sections
    after the connector) and a control socket, started unless START is
    false."""
    overrides = {"control": "ctl.sock"}
    overrides.update(server_overrides or {})
    srv = server(recipients=recipients, server_overrides=overrides, start=False, **connector)
    srv.extra = relays
    srv.write_ini()
    if start:
        srv.start()
    return srv


def tarpitd(srv, *args, stdin=None):
    """`tarpitd -c <srv's INI> ARGS...`, from srv's directory."""
    return subprocess.run([str(BIN), "-c", str(srv.ini), *args], input=stdin, cwd=str(srv.dir),
                          capture_output=True, text=True, timeout=60)


def add_user(srv, users, name, password):
    """USERS (srv's [auth] users file) created empty, 0600, then NAME added
    with `tarpitd passwd`."""
    users.write_text("")
    users.chmod(0o600)
    p = tarpitd(srv, "passwd", name, stdin=password + "\n")
    assert p.returncode == 0, p.stderr


def send_message(srv, rcpts, data, sender, auth=None):
    """DATA (the message, without the final dot) to RCPTS in one session,
    after AUTH PLAIN with AUTH ("\\0user\\0password") when given: the
    queue id of its 250."""
    with srv.client() as c:
        c.greet()
        if auth:
            c.expect(235, "2.7.0", "AUTH PLAIN " + base64.b64encode(auth.encode()).decode())
        c.mail_rcpt(sender, rcpts)
        c.expect(354, line="DATA")
        c.send(data + b".\r\n")
        r = c.reply()
        assert r.code == 250, r
        c.expect(221, line="QUIT")
    return r.text.split()[-1]


def queue_files(srv):
    """The names of the files in srv's queue/ (not its tmp/), sorted."""
    d = srv.spool / "queue"
    return sorted(p.name for p in d.iterdir() if p.is_file()) if d.is_dir() else []


def full_queue_452(srv, forwarded, local, data):
    """With the queue full: FORWARDED gets 452 4.3.1 at RCPT, LOCAL 250 in
    the same transaction, and DATA (the message, without the final dot)
    is accepted for LOCAL."""
    with srv.client() as c:
        c.greet()
        c.expect(250, line="MAIL FROM:<s@origin.test>")
        t = c.cmd(f"RCPT TO:<{forwarded}>")
        assert (t.code, t.enh) == (452, "4.3.1"), t
        c.expect(250, "2.1.5", f"RCPT TO:<{local}>")
        c.expect(354, line="DATA")
        c.send(data + b".\r\n")
        assert c.reply().code == 250
