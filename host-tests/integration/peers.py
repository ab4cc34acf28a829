"""Real next-hop servers for the gateway's tests (issue 15, SPEC §10).

tarpitd forwards mail over SMTP (STARTTLS, AUTH PLAIN) or LMTP (TCP or a
unix socket). The tests forward to the real thing, never to a stand-in we
wrote, so this module starts private instances of:

* ``PostfixPeer``: a Postfix (``postfix -c DIR``) whose only job is
  smtpd -> virtual(8) delivery into Maildirs under its temp dir, with
  STARTTLS from a throwaway CA (``peer.ca_pem``; the server's name is
  ``mail.office.test``) and, with ``auth={user: password}``, AUTH PLAIN
  through a private Dovecot auth server (Postfix has no SASL of its own).
* ``SmtpSink``: Postfix's ``smtp-sink``, the fault server: soft and hard
  rejects per command, disconnects, LMTP mode, one dump file per message.
* ``DovecotLmtp``: a Dovecot LMTP server on a unix socket and a TCP port,
  delivering into ``DIR/mail/<user@domain>/Maildir``.

Nothing outside the temp dirs is touched: the system's Postfix (installed
with "No configuration") and Dovecot are never started or read from
(their binaries only). Every peer is on 127.0.0.1 and a free high port.

API (all also usable without pytest; ``stop()`` is idempotent and ends
every process; ``halt()`` takes a peer down, its port refusing, and
``resume()`` brings it back on the same port with its mail kept: "next hop
down, then up")::

    p = PostfixPeer(domains=("office.test",), users=("alice", "bob"),
                    auth=None, tls=True).start()
    p.port, p.ca_pem, p.tls_name, p.dir, p.log_text()
    p.maildir("alice@office.test")      # delivered files (new/ and cur/)
    p.wait_for_messages(n, timeout=10, addr=None)   # all addrs if None
    p.queue_files()                     # files still in Postfix's queue
    p.stop()

    s = SmtpSink(hard=("RCPT",), soft=(), disconnect=(), disconnect_421=(),
                 lmtp=False, extra=()).start()
    s.port (s.socket_path with unix=True), s.count(), s.messages(),
    s.wait_for_messages(n, timeout), s.output()
    s.stop()

    d = DovecotLmtp(domains=("office.test",), users=None).start()
    d.socket_path, d.port, d.maildir("alice@office.test"),
    d.wait_for_messages(n, timeout=10, user=None), d.log_text(), d.stop()

    missing("postfix", "swaks")  # name of the first binary not installed
    require("dovecot")           # pytest.skip("... not installed") if absent

Fixtures (factories that stop what they started at teardown):
``postfix_peer``, ``smtp_sink``, ``dovecot_lmtp``. A test module gets them
with ``from peers import postfix_peer, smtp_sink, dovecot_lmtp``.

smtp-sink flags, as checked with swaks against smtp-sink of Postfix 3.7
(test_peers.py exercises the ones marked *):

  -f CMD,...  * hard reject: "500 5.3.0 Error: command failed" (-B text
                replaces it). CMD is CONNECT, HELO, EHLO, LHLO, MAIL,
                RCPT, DATA, "." (the end of data), RSET, NOOP, QUIT.
                Implies -p (no PIPELINING announced).
  -r CMD,...  * soft reject: "450 4.3.0 Error: command failed" (-b text).
                Implies -p.
  -q CMD,...  * disconnect without a reply after the command.
  -Q CMD,...  * "421 4.0.0 Server closing connection" and disconnect.
  -L          * LMTP instead of SMTP (LHLO; one reply per RCPT after ".").
  -d TEMPLATE * one file per transaction: strftime(TEMPLATE) + a random
                hex suffix; "dir/" makes dir/<hex>. It holds X-Client-*,
                X-Mail-Args, one X-Rcpt-Args per RCPT, a Received: and the
                message. Created at MAIL, written as DATA arrives, removed
                on RSET; a "." rejected with -f/-r is still dumped, and a
                client that drops mid-DATA leaves a partial file.
                As root, -u USER is required and the dump dir must be
                writable by USER.
  -c          * "sess=N quit=N mesg=N" on stdout, a line at once at each
                session end, QUIT and "." (rejected or not): count().
  -A DELAY      after DATA's 354 wait DELAY s, then 550 and stop reading.
  -w DELAY      wait DELAY s before the reply to DATA.
  -W CMD:DELAY[:ODDS] wait before the reply to CMD.
  -M N / -n N   exit after N messages / N sessions.
  -e, -E, -8, -N, -p, -a: do not announce ESMTP, ENHANCEDSTATUSCODES,
                8BITMIME, DSN, PIPELINING, AUTH.
smtp-sink announces no STARTTLS; it offers "AUTH PLAIN LOGIN" and accepts
any. A rejected EHLO (-r EHLO) makes swaks fall back to HELO. Its EHLO
reply ends with an empty "250 " line. In LMTP mode -r/-f "." gives one
450/500 per recipient.
"""

import os
import pwd
import grp
import shutil
import signal
import socket
import subprocess
import tempfile
import time

try:
    import pytest
except ImportError:  # the module works without pytest too
    pytest = None

SBIN = ("/usr/sbin", "/usr/bin", "/sbin", "/bin")
TLS_NAME = "mail.office.test"
DOMAINS = ("office.test",)
USERS = ("alice", "bob", "carol", "postmaster")


def which(name):
    p = shutil.which(name)
    if p:
        return p
    for d in SBIN:  # /usr/sbin is not on every user's PATH
        if os.access(os.path.join(d, name), os.X_OK):
            return os.path.join(d, name)
    return None


def missing(*names):
    """The first of the binaries NAMES that is not installed, else None."""
    for n in names:
        if not which(n):
            return n
    return None


def skip(why):
    if pytest is None:
        raise RuntimeError(why)
    pytest.skip(why)


def require(*names):
    """Skip (under pytest; else raise) naming the first missing binary."""
    m = missing(*names)
    if m:
        skip(m + " not installed")


def free_port():
    """conftest's per-worker port block when run under pytest (parallel
    workers never share a port), else any free port."""
    try:
        from conftest import free_port as worker_port
    except ImportError:
        worker_port = None
    if worker_port:
        return worker_port()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(cond, timeout, what):
    """Poll COND (no fixed sleep: it returns as soon as COND holds)."""
    end = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > end:
            raise TimeoutError("timed out after %.1f s waiting for %s" % (timeout, what))
        time.sleep(0.02)


def wait_listening(port, timeout, what):
    def up():
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return True
        except OSError:
            return False
    wait_until(up, timeout, what + " to listen on 127.0.0.1:%d" % port)


def maildir_files(path):
    """Delivered files of the Maildir PATH (new/ and cur/), sorted by name
    (Maildir names start with the delivery time)."""
    out = []
    for sub in ("new", "cur"):
        d = os.path.join(path, sub)
        try:
            out += [os.path.join(d, f) for f in os.listdir(d)]
        except FileNotFoundError:
            pass
    return sorted(out, key=os.path.basename)


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def descendants(pid):
    """PID and all its descendants (from /proc), so a stop can check that
    none is left."""
    kids = {}
    for e in os.listdir("/proc"):
        if not e.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % e) as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        kids.setdefault(ppid, []).append(int(e))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += kids.get(p, [])
    return out


def kill_tree(pids, timeout=5):
    for p in pids:
        if alive(p):
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
    wait_until(lambda: not any(alive(p) for p in pids), timeout, "processes %s to die" % pids)


def private_dir(prefix):
    """A temp dir the peers' unprivileged daemons (postfix, nobody, dovecot)
    can traverse: pytest's tmp_path is mode 0700 and root's."""
    d = tempfile.mkdtemp(prefix=prefix)
    os.chmod(d, 0o755)
    return d


def mail_ids():
    """uid, gid the delivered mail belongs to: the running user, or nobody
    when that is root (Postfix's virtual(8) and Dovecot refuse root)."""
    if os.geteuid() != 0:
        return os.geteuid(), os.getegid()
    pw = pwd.getpwnam("nobody")
    return pw.pw_uid, pw.pw_gid


def run(cmd, timeout=30, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)


def make_pki(d, name=TLS_NAME):
    """A throwaway CA and a server certificate for NAME (CN and SAN) signed
    by it, in D: returns (ca.pem, server.pem, server.key)."""
    ca, cakey = os.path.join(d, "ca.pem"), os.path.join(d, "ca.key")
    crt, key = os.path.join(d, "server.pem"), os.path.join(d, "server.key")
    csr, ext = os.path.join(d, "server.csr"), os.path.join(d, "server.ext")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    p = run(["openssl", "req", "-x509"] + ec + ["-keyout", cakey, "-out", ca, "-days", "2",
            "-subj", "/CN=tarpitd test CA", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
    assert p.returncode == 0, p.stderr
    p = run(["openssl", "req", "-new"] + ec + ["-keyout", key, "-out", csr,
            "-subj", "/CN=" + name])
    assert p.returncode == 0, p.stderr
    with open(ext, "w") as f:
        f.write("subjectAltName=DNS:%s\nbasicConstraints=CA:FALSE\n"
                "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n" % name)
    p = run(["openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", cakey,
             "-CAcreateserial", "-days", "2", "-out", crt, "-extfile", ext])
    assert p.returncode == 0, p.stderr
    os.chmod(key, 0o644)  # read by the peers' unprivileged processes; test-only key
    return ca, crt, key


# ------------------------------------------------------------------ Postfix

POSTFIX_MASTER = """\
# smtpd on the test port; Debian's service list without chroot.
127.0.0.1:{port} inet n - n - - smtpd
pickup    unix  n - n 60 1 pickup
cleanup   unix  n - n - 0 cleanup
qmgr      unix  n - n 300 1 qmgr
tlsmgr    unix  - - n 1000? 1 tlsmgr
rewrite   unix  - - n - - trivial-rewrite
bounce    unix  - - n - 0 bounce
defer     unix  - - n - 0 bounce
trace     unix  - - n - 0 bounce
verify    unix  - - n - 1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n - - proxymap
smtp      unix  - - n - - smtp
relay     unix  - - n - - smtp
showq     unix  n - n - - showq
error     unix  - - n - - error
retry     unix  - - n - - error
discard   unix  - - n - - discard
virtual   unix  - n n - - virtual
anvil     unix  - - n - 1 anvil
scache    unix  - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
"""

POSTFIX_MAIN = """\
compatibility_level = 3.6
queue_directory = {d}/queue
data_directory = {d}/data
mail_owner = postfix
setgid_group = postdrop
maillog_file = {d}/maillog
maillog_file_prefixes = {d}
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = {name}
mydomain = office.test
myorigin = $myhostname
mynetworks = 127.0.0.0/8
mydestination =
relay_domains =
local_recipient_maps =
alias_maps =
alias_database =
biff = no
smtputf8_enable = no
smtp_dns_support_level = disabled
smtpd_peername_lookup = no
# Mail for the test domains goes to Maildirs (the trailing / of each map
# entry) under mail/<domain>/<user>/; unknown users get 550 at RCPT.
virtual_mailbox_domains = {domains}
virtual_mailbox_maps = texthash:{d}/etc/mailboxes
virtual_mailbox_base = {d}/mail
virtual_uid_maps = static:{uid}
virtual_gid_maps = static:{gid}
virtual_minimum_uid = 1
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
# Test time, not production: errors never slow a session down.
smtpd_error_sleep_time = 0
smtpd_soft_error_limit = 1000
smtpd_hard_error_limit = 1000
"""

POSTFIX_TLS = """\
smtpd_tls_security_level = may
smtpd_tls_cert_file = {crt}
smtpd_tls_key_file = {key}
smtpd_tls_loglevel = 1
smtpd_tls_received_header = yes
"""

POSTFIX_SASL = """\
# AUTH through the private Dovecot's auth socket, only inside TLS.
smtpd_sasl_auth_enable = yes
smtpd_sasl_type = dovecot
smtpd_sasl_path = {sock}
smtpd_tls_auth_only = yes
"""


class _Peer:
    """What the peers share: a private temp dir (``dir``), set up by the
    subclass's start(), which ends with _launch(); halt() and resume() of
    their own; stop(), idempotent, which halts, stops the helper peers and
    removes the dir. For the daemons with a master process (Postfix,
    Dovecot): its pid file awaited, its process tree ended, and the
    Maildirs they deliver to awaited."""

    dir = None
    master = None

    def _launch(self, timeout):
        """The end of start(): resume(), or stop() and the error."""
        try:
            self.resume(timeout)
        except Exception:
            self.stop()
            raise
        return self

    def stop(self):
        if self.dir is None:
            return
        self.halt()
        self._stop_helpers()
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir = None

    def _stop_helpers(self):
        """Other peers this one started for itself (none by default)."""

    def _text(self, name):
        """The file NAME in dir ("" before start() or after stop())."""
        try:
            with open(os.path.join(self.dir, name), errors="replace") as f:
                return f.read()
        except (OSError, TypeError):
            return ""

    def _wait_master(self, pidfile, timeout, what):
        """The master's pid, once PIDFILE names a live process."""
        def master_pid():
            try:
                with open(pidfile) as f:
                    return int(f.read().strip())
            except (OSError, ValueError):
                return None
        self.master = wait_until(lambda: (lambda p: p if p and alive(p) else None)(master_pid()),
                                 timeout, what)

    def _halt_master(self, ask):
        """Every process of the master's tree ends: ASK(pids) asks the
        master to stop and waits; whatever is left after it is killed."""
        if self.master and alive(self.master):
            pids = descendants(self.master)
            ask(pids)
            left = [p for p in pids if alive(p)]
            if left:
                kill_tree(left)
        self.master = None

    @staticmethod
    def _wait_files(get, n, timeout, what):
        """Wait until GET() returns at least N files; the files."""
        return wait_until(lambda: (lambda f: f if len(f) >= n else None)(get()), timeout,
                          "%d message(s) in %s" % (n, what))


class PostfixPeer(_Peer):
    """A private Postfix as the internal mail server (SMTP next hop)."""

    def __init__(self, domains=DOMAINS, users=USERS, auth=None, tls=True, main_extra=""):
        self.domains = tuple(domains)
        self.users = tuple(users)
        self.auth = dict(auth or {})
        self.tls = tls
        self.main_extra = main_extra
        self.dir = None
        self.port = None
        self.ca_pem = None
        self.tls_name = TLS_NAME
        self.sasl = None  # the Dovecot auth server when auth is set

    def postfix(self, *words, timeout=60):
        return run([which("postfix"), "-c", self.etc] + list(words), timeout=timeout)

    def start(self, timeout=20):
        require("postfix")
        if os.geteuid() != 0:
            skip("a private Postfix needs root (its master runs as root)")
        try:
            pwd.getpwnam("postfix")
            grp.getgrnam("postdrop")
        except KeyError:
            skip("no postfix user or postdrop group (the postfix package sets them up)")
        d = self.dir = private_dir("tarpitd-postfix-")
        self.etc = os.path.join(d, "etc")
        for sub in ("etc", "queue", "data", "mail", "pki"):
            os.mkdir(os.path.join(d, sub))
        pf = pwd.getpwnam("postfix")
        os.chown(os.path.join(d, "data"), pf.pw_uid, pf.pw_gid)
        uid, gid = mail_ids()
        os.chown(os.path.join(d, "mail"), uid, gid)
        self.port = free_port()
        main = POSTFIX_MAIN.format(d=d, name=TLS_NAME, domains=", ".join(self.domains),
                                   uid=uid, gid=gid)
        if self.tls:
            self.ca_pem, crt, key = make_pki(os.path.join(d, "pki"))
            main += POSTFIX_TLS.format(crt=crt, key=key)
        if self.auth:
            self.sasl = DovecotLmtp(auth=self.auth, lmtp=False).start()
            main += POSTFIX_SASL.format(sock=self.sasl.auth_socket)
        main += self.main_extra
        with open(os.path.join(self.etc, "main.cf"), "w") as f:
            f.write(main)
        with open(os.path.join(self.etc, "master.cf"), "w") as f:
            f.write(POSTFIX_MASTER.format(port=self.port))
        with open(os.path.join(self.etc, "mailboxes"), "w") as f:
            for dom in self.domains:
                for u in self.users:
                    f.write("%s@%s %s/%s/\n" % (u, dom, dom, u))
        return self._launch(timeout)

    def resume(self, timeout=20):
        """Start (again, after halt()) on the same port and Maildirs."""
        r = self.postfix("start")
        if r.returncode != 0:
            raise RuntimeError("postfix start failed: %s%s\n%s" % (r.stdout, r.stderr, self.log_text()))
        ended = self.log_text().count("disconnect from ")
        self._wait_master(os.path.join(self.dir, "queue", "pid", "master.pid"), timeout,
                          "Postfix's master.pid")
        wait_listening(self.port, timeout, "Postfix's smtpd")
        # The probe is a session in the log too: once its summary is
        # there, a mark taken after the start sees only the tests' own.
        wait_until(lambda: self.log_text().count("disconnect from ") > ended, timeout,
                   "the port probe's session in Postfix's log")
        return self

    def maildir_path(self, addr):
        user, dom = addr.rsplit("@", 1)
        return os.path.join(self.dir, "mail", dom, user)

    def maildir(self, addr):
        return maildir_files(self.maildir_path(addr))

    def all_messages(self):
        return [f for dom in self.domains for u in self.users
                for f in self.maildir("%s@%s" % (u, dom))]

    def wait_for_messages(self, n, timeout=10, addr=None):
        """Wait until at least N messages are delivered (to ADDR, or in all
        mailboxes); returns the files."""
        get = (lambda: self.maildir(addr)) if addr else self.all_messages
        return self._wait_files(get, n, timeout, "Postfix's Maildir (%s)" % (addr or "all"))

    def queue_files(self):
        out = []
        for sub in ("incoming", "active", "deferred", "maildrop", "hold"):
            for root, _, files in os.walk(os.path.join(self.dir, "queue", sub)):
                out += [os.path.join(root, f) for f in files]
        return out

    def log_text(self):
        return self._text("maillog")

    def halt(self):
        """The next hop goes down (every process ends; its port refuses);
        resume() brings it back with its mail and queue."""
        def ask(pids):
            self.postfix("stop")
            try:  # master exits after its children
                wait_until(lambda: not alive(self.master), 10, "Postfix's master to exit")
            except TimeoutError:
                self.postfix("abort")
        self._halt_master(ask)

    def _stop_helpers(self):
        if self.sasl:
            self.sasl.stop()
            self.sasl = None


# ---------------------------------------------------------------- smtp-sink

class SmtpSink(_Peer):
    """Postfix's smtp-sink as the misbehaving next hop. HARD, SOFT,
    DISCONNECT, DISCONNECT_421: commands (see the module comment) that get
    500, 450, a silent close, or 421 and a close. LMTP: speak LMTP. EXTRA:
    more smtp-sink options (e.g. ["-w", "5"]). Every message is dumped to
    its own file in DIR/dump/, so count() is the number of messages
    received through the end of DATA."""

    def __init__(self, hard=(), soft=(), disconnect=(), disconnect_421=(), lmtp=False,
                 extra=(), unix=False):
        self.opts = []
        for flag, cmds in (("-f", hard), ("-r", soft), ("-q", disconnect), ("-Q", disconnect_421)):
            if cmds:
                self.opts += [flag, ",".join(cmds)]
        if lmtp:
            self.opts.append("-L")
        self.opts += list(extra)
        self.unix = unix
        self.proc = None
        self.port = None
        self.socket_path = None

    def start(self, timeout=10):
        require("smtp-sink")
        d = self.dir = private_dir("tarpitd-sink-")
        self.dump = os.path.join(d, "dump")
        os.mkdir(self.dump)
        cmd = [which("smtp-sink"), "-c", "-d", self.dump + "/"] + self.opts
        if os.geteuid() == 0:  # smtp-sink refuses to run as root without -u
            nobody = pwd.getpwnam("nobody")
            os.chown(self.dump, nobody.pw_uid, nobody.pw_gid)
            cmd += ["-u", "nobody"]
        if self.unix:
            self.socket_path = os.path.join(d, "sink.sock")
            cmd += ["unix:" + self.socket_path, "64"]
        else:
            self.port = free_port()
            cmd += ["127.0.0.1:%d" % self.port, "64"]
        self.cmd = cmd
        self.base = 0  # messages counted by the processes before halt()
        return self._launch(timeout)

    def resume(self, timeout=10):
        """Start (again, after halt()) on the same port; count() goes on."""
        cmd = self.cmd
        if self.unix and os.path.exists(self.socket_path):
            os.unlink(self.socket_path)  # left by the killed process
        self.out = open(os.path.join(self.dir, "sink.out"), "w+")
        self.proc = subprocess.Popen(cmd, stdout=self.out, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        if self.unix:
            wait_until(lambda: os.path.exists(self.socket_path) or self.proc.poll() is not None,
                       timeout, "smtp-sink's socket")
        else:
            def up():
                if self.proc.poll() is not None:
                    return True
                try:
                    socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                    return True
                except OSError:
                    return False
            wait_until(up, timeout, "smtp-sink to listen")
        if self.proc.poll() is not None:
            raise RuntimeError("smtp-sink exited: %s\n%s" % (cmd, self.output()))
        return self

    def messages(self):
        """The dump files, oldest first. smtp-sink creates a file at MAIL,
        writes it as DATA arrives and deletes it on RSET, but a client
        that drops mid-DATA leaves its partial file behind: count() is the
        number of messages; these files are for reading the envelope."""
        fs = [os.path.join(self.dump, f) for f in os.listdir(self.dump)]
        return sorted(fs, key=lambda f: os.stat(f).st_mtime_ns)

    def count(self):
        """Messages whose end of data (".") smtp-sink received, rejected
        or not (-c's "mesg=" counter, printed at once as each "." comes)."""
        n = self.base
        for ln in self.output().splitlines():
            if "mesg=" in ln:
                try:
                    n = self.base + int(ln.rsplit("mesg=", 1)[1].split()[0])
                except (ValueError, IndexError):
                    pass
        return n

    def wait_for_messages(self, n, timeout=10):
        """Wait until smtp-sink has received N messages; their dump files."""
        wait_until(lambda: self.count() >= n, timeout, "%d message(s) at smtp-sink" % n)
        return self.messages()

    def output(self):
        """smtp-sink's stdout: the -c counters and any fatal error."""
        try:
            self.out.flush()
            with open(self.out.name, errors="replace") as f:
                return f.read()
        except (OSError, AttributeError):
            return ""

    def halt(self):
        """smtp-sink goes down (its port refuses); resume() restarts it."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        self.base = self.count()
        self.out.close()
        self.proc = None


# ------------------------------------------------------------------ Dovecot

DOVECOT_CONF = """\
# A private Dovecot: everything under {d}; nothing of /etc/dovecot is read.
base_dir = {d}/run
state_dir = {d}/state
instance_name = tarpitd-test-{tag}
log_path = {d}/dovecot.log
info_log_path = {d}/dovecot.log
debug_log_path = {d}/dovecot.log
protocols = {protocols}
listen = 127.0.0.1
hostname = lmtp.office.test
ssl = no
default_internal_user = {internal}
default_internal_group = {internal_group}
default_login_user = {login}
first_valid_uid = 1
first_valid_gid = 1
mail_location = maildir:{d}/mail/%u/Maildir
auth_mechanisms = plain
# test time: a wrong password is answered at once (default 2 s)
auth_failure_delay = 0
disable_plaintext_auth = no
auth_username_format = %u
lmtp_save_to_detail_mailbox = no
{passdb}
{userdb}
service lmtp {{
  unix_listener {d}/lmtp {{
    mode = 0666
  }}
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {port}
  }}
}}
service auth {{
  unix_listener {d}/auth {{
    mode = 0666
  }}
}}
"""


class DovecotLmtp(_Peer):
    """A private Dovecot. LMTP (the default): a unix socket
    (``socket_path``) and a TCP port (``port``); any user of DOMAINS, or
    only USERS (user@domain, 550 for the others) when given, is delivered
    to DIR/mail/<user@domain>/Maildir. AUTH: {user: password} for its auth
    socket (``auth_socket``), which PostfixPeer uses for SASL; LMTP=False
    runs the auth server alone."""

    _n = 0

    def __init__(self, domains=DOMAINS, users=None, auth=None, lmtp=True):
        self.domains = tuple(domains)
        self.users = tuple(users) if users else None
        self.auth = dict(auth or {})
        self.lmtp = lmtp
        self.port = None
        self.socket_path = None
        self.auth_socket = None

    def conf_path(self):
        return os.path.join(self.dir, "dovecot.conf")

    def start(self, timeout=15):
        require("dovecot", "doveadm")
        if self.lmtp and not os.path.exists("/usr/lib/dovecot/lmtp"):
            require("dovecot-lmtp")  # the package dovecot-lmtpd is missing
        d = self.dir = private_dir("tarpitd-dovecot-")
        for sub in ("mail", "state"):
            os.mkdir(os.path.join(d, sub))
        uid, gid = mail_ids()
        os.chown(os.path.join(d, "mail"), uid, gid)
        if os.geteuid() == 0:
            internal = "dovecot" if self._user("dovecot") else "nobody"
            login = "dovenull" if self._user("dovenull") else "nobody"
        else:  # rootless: every service runs as the current user
            internal = login = pwd.getpwuid(os.geteuid()).pw_name
        internal_group = grp.getgrgid(pwd.getpwnam(internal).pw_gid).gr_name
        self.port = free_port()
        DovecotLmtp._n += 1
        tag = "%d-%d" % (os.getpid(), DovecotLmtp._n)
        passwd = os.path.join(d, "passwd")
        with open(passwd, "w") as f:
            for u, pw in self.auth.items():
                f.write("%s:{PLAIN}%s:%d:%d::%s/mail/%s\n" % (u, pw, uid, gid, d, u))
            for u in self.users or ():
                if u not in self.auth:
                    f.write("%s::%d:%d::%s/mail/%s\n" % (u, uid, gid, d, u))
        os.chmod(passwd, 0o644)
        passdb = "passdb {\n  driver = passwd-file\n  args = %s\n}" % passwd
        if self.users:
            userdb = "userdb {\n  driver = passwd-file\n  args = %s\n}" % passwd
        else:
            userdb = ("userdb {\n  driver = static\n  args = uid=%d gid=%d home=%s/mail/%%u "
                      "allow_all_users=yes\n}" % (uid, gid, d))
        with open(self.conf_path(), "w") as f:
            f.write(DOVECOT_CONF.format(d=d, tag=tag, port=self.port,
                                        protocols="lmtp" if self.lmtp else "none",
                                        internal=internal, internal_group=internal_group,
                                        login=login, passdb=passdb, userdb=userdb))
        return self._launch(timeout)

    def resume(self, timeout=15):
        """Start (again, after halt()) with the same sockets and Maildirs."""
        d = self.dir
        # The daemon keeps its stdout: a file, not a pipe we would wait on.
        with open(os.path.join(d, "start.out"), "w+") as out:
            r = subprocess.run([which("dovecot"), "-c", self.conf_path()], stdout=out,
                               stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, timeout=30)
            out.seek(0)
            msg = out.read()
        if r.returncode != 0:
            raise RuntimeError("dovecot failed: %s\n%s" % (msg, self.log_text()))
        self._wait_master(os.path.join(d, "run", "master.pid"), timeout, "Dovecot's master.pid")
        self.auth_socket = os.path.join(d, "auth")
        self.socket_path = os.path.join(d, "lmtp") if self.lmtp else None
        for s in filter(None, (self.auth_socket, self.socket_path)):
            wait_until(lambda: os.path.exists(s), timeout, "Dovecot's socket " + s)
        if self.lmtp:
            wait_listening(self.port, timeout, "Dovecot's LMTP")
        return self

    @staticmethod
    def _user(name):
        try:
            pwd.getpwnam(name)
            return True
        except KeyError:
            return False

    def maildir_path(self, user):
        return os.path.join(self.dir, "mail", user, "Maildir")

    def maildir(self, user):
        """Delivered files of USER (user@domain) in its INBOX."""
        return maildir_files(self.maildir_path(user))

    def all_messages(self):
        base = os.path.join(self.dir, "mail")
        return [f for u in sorted(os.listdir(base)) for f in self.maildir(u)]

    def wait_for_messages(self, n, timeout=10, user=None):
        get = (lambda: self.maildir(user)) if user else self.all_messages
        return self._wait_files(get, n, timeout, "Dovecot's Maildir (%s)" % (user or "all"))

    def log_text(self):
        return self._text("dovecot.log")

    def halt(self):
        """Dovecot goes down (every process ends); resume() restarts it."""
        def ask(pids):
            try:
                os.kill(self.master, signal.SIGTERM)
                wait_until(lambda: not any(alive(p) for p in pids), 10, "Dovecot to exit")
            except (ProcessLookupError, TimeoutError):
                pass
        self._halt_master(ask)


# ----------------------------------------------------------------- fixtures

def _factory(cls):
    def fixture():
        started = []

        def make(**kw):
            p = cls(**kw)
            started.append(p)
            return p.start()
        yield make
        for p in reversed(started):
            p.stop()
    fixture.__name__ = fixture.__qualname__ = cls.__name__
    fixture.__doc__ = "Factory: %s(**kw).start(), stopped at teardown." % cls.__name__
    return fixture


if pytest is not None:
    postfix_peer = pytest.fixture(name="postfix_peer")(_factory(PostfixPeer))
    smtp_sink = pytest.fixture(name="smtp_sink")(_factory(SmtpSink))
    dovecot_lmtp = pytest.fixture(name="dovecot_lmtp")(_factory(DovecotLmtp))
