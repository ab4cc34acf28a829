#!/usr/bin/env python3
"""Regenerates the seed corpora in host-tests/fuzz/corpus/<target>/.

The seeds come from the integration tests' transcripts: the string and
bytes constants of host-tests/integration/*.py (command lines, smuggling
separators, INI texts and lines, recipient files, addresses) are read with
the ast module, never imported, and turned into inputs in each target's
format (see the comment at the top of each fuzz_<target>.c), plus a few
dialogs written here for what the tests do over several sends (DATA,
STARTTLS, AUTH). Output is deterministic; run it after changing the
tests or an input format:

    python3 host-tests/fuzz/make_corpus.py
"""

import ast
import base64
import hashlib
import re
import shutil
import struct
from pathlib import Path

HERE = Path(__file__).resolve().parent
INTEGRATION = HERE.parent / "integration"
OUT = HERE / "corpus"

CRLF = b"\r\n"
VERBS = re.compile(rb"^(EHLO|HELO|MAIL|RCPT|DATA|RSET|NOOP|QUIT|VRFY|EXPN|HELP|STARTTLS|AUTH|BDAT|"
                   rb"GET|POST|HEAD|PUT|CONNECT|FOO|XYZZY)\b", re.I)
CLOSERS = re.compile(rb"^(QUIT|BDAT|GET|POST|HEAD|PUT|CONNECT)\b", re.I)


def test_constants():
    """Every str/bytes constant of the integration tests, as bytes, in
    file order, without duplicates."""
    seen, out = set(), []
    for path in sorted(INTEGRATION.glob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, (str, bytes)):
                v = node.value.encode() if isinstance(node.value, str) else node.value
                if v and v not in seen:
                    seen.add(v)
                    out.append(v)
    return out


class Corpus:
    def __init__(self, target):
        self.dir = OUT / target
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir.mkdir(parents=True)
        self.names = set()

    def add(self, name, data):
        name = re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:60]
        base, n = name, 1
        while name in self.names:
            n += 1
            name = f"{base}-{n}"
        self.names.add(name)
        (self.dir / name).write_bytes(data)


# ---------------------------------------------------------------- session

def hdr(h0=0, h1=0, seed=0):
    return bytes([h0, h1, seed >> 8 & 255, seed & 255])


EHLO = b"EHLO client.test\r\n"
MAIL = b"MAIL FROM:<sender@origin.test>\r\n"
RCPT = b"RCPT TO:<alice@example.org>\r\n"
PLAIN_OK = base64.b64encode(b"\0u\0p")
PLAIN_ALICE = base64.b64encode(b"\0alice@example.org\0correct horse")


def lines(*ls):
    return b"".join((x.encode() if isinstance(x, str) else x) + CRLF for x in ls)


def session_corpus(consts):
    c = Corpus("session")
    # Command lines of the tests, each after what makes it meaningful.
    snippets, closers = [], []
    for v in consts:
        if not VERBS.match(v) or len(v) > 2000:
            continue
        raw = v if v.endswith(b"\n") else v + CRLF
        if CLOSERS.match(v):
            closers.append(raw)
        elif v[:4].upper() == b"MAIL":
            snippets.append(b"RSET\r\n" + raw + RCPT)
        elif v[:4].upper() == b"RCPT":
            snippets.append(b"RSET\r\n" + MAIL + raw)
        else:
            snippets.append(raw)
    for i in range(0, len(snippets), 12):
        c.add(f"tests-cmds-{i // 12:02d}", hdr(seed=i) + EHLO + b"".join(snippets[i:i + 12]))
    for i, raw in enumerate(closers):
        c.add(f"tests-close-{i:02d}", hdr() + EHLO + MAIL + RCPT + raw + b"NOOP\r\n")

    # Smuggling: the separators of test_delivery.py inside a message.
    seps = [v for v in consts if re.fullmatch(rb"[\r\n.]+", v) and b"." in v and len(v) <= 8]
    for i, sep in enumerate(seps):
        body = b"Subject: smuggled\r\n\r\nbody" + sep + b"MAIL FROM:<evil@x.test>\r\n" + RCPT
        c.add(f"smuggle-{i:02d}", hdr(seed=3) + EHLO + MAIL + RCPT + b"DATA\r\n" + body +
              b"DATA\r\nx\r\n.\r\n" + b"\r\n.\r\nQUIT\r\n")

    # Dialogs over several sends (each reply awaited in the tests).
    c.add("deliver", hdr(seed=1) + lines(
        "EHLO client.test", "MAIL FROM:<sender@origin.test> SIZE=100 BODY=8BITMIME",
        "RCPT TO:<alice@example.org>", "RCPT TO:<Bob@Example.Org>", "RCPT TO:<anyone@example.net>",
        "DATA", "Subject: x", "", "line one", "..leading dot", "...two dots", ".", "QUIT"))
    c.add("deliver-twice", hdr(seed=2) + lines(
        "HELO client.test", "MAIL FROM:<>", "RCPT TO:<postmaster>", "DATA", "hi", ".",
        "MAIL FROM:<a@origin.test>", "RCPT TO:<bob@example.org>", "RCPT TO:<bob@example.org>", "DATA",
        "x" * 70, ".", "RSET", "NOOP"))
    c.add("too-big", hdr(h1=8) + EHLO + MAIL + RCPT + b"DATA\r\n" + (b"x" * 70 + CRLF) * 4 +
          b".\r\nNOOP\r\n")
    for name, bad in (("bare-lf", b"bare\nLF"), ("bare-cr", b"bare\rCR")):
        c.add(f"data-{name}", hdr(h1=1) + EHLO + MAIL + RCPT + b"DATA\r\nSubject: x\r\n\r\n" + bad +
              b"\r\nmore\r\n.\r\nNOOP\r\n")
    c.add("pipe-before-354", hdr(h0=4) + EHLO + MAIL + RCPT +
          b"DATA\r\nSubject: x\r\n\r\nsmuggled\r\n.\r\nQUIT\r\n")
    c.add("pipe-before-220", hdr(h0=4, seed=2) + EHLO + b"STARTTLS\r\nEHLO x\r\n")
    c.add("max-recipients", hdr(h1=64) + EHLO + MAIL + lines(
        *[f"RCPT TO:<u{i}@example.net>" for i in range(8)], "DATA", "hi", "."))
    c.add("unknown-flood", hdr(seed=5) + EHLO + MAIL + lines(
        "RCPT TO:<carol@example.org>", "RCPT TO:<alice@example.org>", "RCPT TO:<nobody@example.org>",
        "RCPT TO:<x@example.com>", "RCPT TO:<y@example.org>", "RCPT TO:<z@example.org>", "NOOP"))
    c.add("unknown-no-tarpit", hdr(h0=2, h1=16) + EHLO + MAIL + lines(
        "RCPT TO:<carol@example.org>", "RCPT TO:<alice@example.org>", "DATA", "x", "."))
    c.add("errors-limit", hdr(h0=1) + lines("FOO", "EHLO", "DATA", "NOOP", "RSET x", "BAR", "NOOP"))
    c.add("require-tls", hdr(h0=128, seed=4) + EHLO + MAIL + lines("STARTTLS", "EHLO again") + MAIL + RCPT)
    for seed in (0, 1, 7):
        c.add(f"starttls-{seed}", hdr(seed=seed) + EHLO + lines(
            "STARTTLS x", "STARTTLS", "EHLO client.test", "STARTTLS", "MAIL FROM:<a@origin.test>",
            "RCPT TO:<alice@example.org>", "STARTTLS"))
    c.add("auth-plain", hdr() + EHLO + lines(
        b"AUTH PLAIN " + PLAIN_OK, "MAIL FROM:<a@origin.test>", "RCPT TO:<nobody@example.org>",
        "AUTH PLAIN", "FOO"))
    c.add("auth-plain-alice", hdr(h0=64, seed=1) + EHLO + lines(
        "STARTTLS", "EHLO client.test", "AUTH PLAIN", PLAIN_ALICE, "AUTH LOGIN"))
    c.add("auth-login", hdr() + EHLO + lines(
        "AUTH LOGIN", base64.b64encode(b"u"), base64.b64encode(b"wrong"),
        b"AUTH LOGIN " + base64.b64encode(b"u"), base64.b64encode(b"p"), "MAIL FROM:<>"))
    c.add("auth-failures", hdr() + EHLO + lines(
        "AUTH PLAIN " + base64.b64encode(b"\0u\0x").decode(), "AUTH LOGIN =", "AUTH PLAIN", "*",
        "AUTH CRAM-MD5", "AUTH PLAIN !!!!", "AUTH PLAIN " + base64.b64encode(b"u\0u\0x").decode(),
        "AUTH PLAIN " + base64.b64encode(b"x\0u\0p").decode(), "NOOP"))
    c.add("auth-long", hdr() + EHLO + b"AUTH PLAIN " + b"QUFB" * 200 + CRLF + b"AUTH PLAIN\r\n" +
          b"QUFB" * 300 + CRLF + b"AUTH LOGIN\r\n" + b"A" * 1100 + b"\r\nNOOP\r\n")
    c.add("mail-params", hdr(h0=64) + EHLO + lines(
        "MAIL FROM:<a@origin.test> SIZE=abc", "MAIL FROM:<a@origin.test> SIZE=" + "9" * 21,
        "MAIL FROM:<a@origin.test> SIZE=" + "9" * 20, "MAIL FROM:<a@origin.test> AUTH=a+zz",
        "MAIL FROM:<a@origin.test> AUTH=<> SIZE=10 BODY=8BITMIME", 'RCPT TO:<"alice"@example.org>',
        'RCPT TO:<"al ice"@example.org>', "RCPT TO:<a@foo->", "NOOP"))
    c.add("auth-no-users", hdr(h0=8 | 16) + EHLO + lines(
        "AUTH PLAIN AGFsaWNlAHNlY3JldA==", "STARTTLS", "NOOP"))
    c.add("long-lines", hdr(h0=32) + EHLO + b"NOOP " + b"x" * 505 + CRLF + b"NOOP " + b"x" * 506 +
          CRLF + b"X" * 600 + RCPT + b"A" * 3000 + b"\r\nY" + b"y" * 700 + b"\nNOOP\r\nEHLO " +
          b"h" * 255 + CRLF + b"HELO " + b"h" * 256 + CRLF)
    c.add("bad-octets", hdr() + EHLO + b"NOOP a\0b\r\n\0NOOP\r\nNOOP a\rb\r\nNOOP caf\xc3\xa9\r\n"
          b"EHLO cli\x80ent\r\nNOOP\rQUIT\r\nEHLO a<b>\"c\r\n")
    return c


# ---------------------------------------------------------------- address

def address_corpus(consts):
    c = Corpus("address")
    args = []
    for v in consts:
        m = re.match(rb"^(?:MAIL FROM|RCPT TO):(.*)$", v, re.I | re.S)
        if m and m.group(1) not in args and len(m.group(1)) < 400:
            args.append(m.group(1))
    step = max(1, len(args) // 36)  # a few dozen, spread over all the tests
    for i, a in enumerate(args[::step]):
        c.add(f"tests-{i:02d}", a)
    for i, a in enumerate([b"<>", b" <a@b.c> SIZE=10", b"<@r1.test,@r2.test:u@x.test>",
                           b'<"quoted \\" local"@x.test>', b"<u@[IPv6:2001:db8::1]>",
                           b"<u@[192.0.2.1]> BODY=7BIT", b"postmaster", b"<a.b..c@d-e_f.g>",
                           b'<"alice"@example.org>', b'<"al\\ice"@x.test> AUTH=<>', b'"a.b"@x-y.test',
                           b'<"a..b"@x.test>', b"<a@xn--->", b"<a@-foo>", b"<a@foo.-bar.org>"]):
        c.add(f"extra-{i:02d}", a)
    return c


# ---------------------------------------------------------------- config

def parametrized(path, func):
    """The first argument values of func's @pytest.mark.parametrize lists
    in path (the first element of each tuple)."""
    tree = ast.parse(path.read_text(), str(path))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name == func:
            for d in node.decorator_list:
                if isinstance(d, ast.Call) and getattr(d.func, "attr", "") == "parametrize":
                    for e in getattr(d.args[1], "elts", []):
                        v = e.elts[0] if isinstance(e, ast.Tuple) else e
                        if isinstance(v, ast.Constant) and isinstance(v.value, str):
                            out.append(v.value.encode())
    return out


def module_string(path, name):
    tree = ast.parse(path.read_text(), str(path))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == name for t in node.targets):
            if isinstance(node.value, ast.Constant):
                return node.value.value.encode()
    return None


def with_lines(base, new_lines, section=b""):
    """base with new_lines set, as test_cli.py's connector_line() does: a
    line replaces the lines of its key; section: add them after it."""
    text = base
    for ln in new_lines:
        key = ln.split(b"=")[0].strip()
        if b"=" in ln:
            text = re.sub(rb"(?m)^" + re.escape(key) + rb"\s*=.*\n", b"", text)
    add = b"".join(ln + b"\n" for ln in new_lines)
    if section:
        return text.replace(section + b"\n", section + b"\n" + add, 1)
    return text + add


def config_corpus(consts):
    c = Corpus("config")
    test_cli = INTEGRATION / "test_cli.py"
    base = module_string(test_cli, "BASE") or b"[server]\nhostname = mx.test\n"
    inis = [v for v in consts if b"[server]" in v and v.lstrip()[:1] in (b"[", b";", b"#")]
    for i, ini in enumerate(inis):
        c.add(f"ini-{i:02d}", b"\0" + ini)
    # Valid values, packed so no key repeats within one file.
    groups = []
    for ln in parametrized(test_cli, "test_check_valid_values"):
        key = ln.split(b"=")[0].strip()
        for g in groups:
            if key not in g and len(g) < 8:
                g[key] = ln
                break
        else:
            groups.append({key: ln})
    for i, g in enumerate(groups):
        c.add(f"ini-valid-{i:02d}", b"\0" + with_lines(base, list(g.values())))
    for i, ln in enumerate(parametrized(test_cli, "test_check_connector_errors")):
        c.add(f"ini-bad-{i:02d}", b"\0" + with_lines(base, [ln]))
    for i, ln in enumerate(parametrized(test_cli, "test_check_server_errors")):
        c.add(f"ini-bad-server-{i:02d}", b"\0" + with_lines(base, [ln], b"[server]"))
    c.add("ini-full", b"\0" + with_lines(base, [b"starttls = yes", b"require_tls = yes", b"auth = yes"]) +
          b"\n[tls]\ncertificate = cert.pem\nkey = key.pem\nmax_sessions = 4\n[auth]\nusers = users\n"
          b"\n[connector \"Second\"]\nbindings = [::1]:2599, 127.0.0.2:25\n"
          b"remote_ip_ranges = 10.0.0.0/8,\n  192.168.1.1\nfqdn = relay.example.org\n")
    values = {4: [b"00:00:02", b"0.00:09:00", b"1.00:00:00", b"00:11:00", b"soon", b"49710.06:28:15"],
              5: [b"512 KB", b"10mb", b"1048576", b"2GB", b"10XB", b"3GB", b"1kb", b"18446744073709551615"],
              6: [b"yes", b"No", b"off", b"1", b"maybe", b"TRUE"]}
    for sel, vals in values.items():
        for i, v in enumerate(vals):
            c.add(f"value-{sel}-{i}", bytes([sel]) + v)
    for i, (lo, hi, v) in enumerate([(1, 1000, b"1000"), (0, 1000000, b"-1"), (1, 1000, b"1001"),
                                     (0, 0xffffffff, b"4294967295"), (0, 10, b"007")]):
        c.add(f"value-7-{i}", b"\x07" + struct.pack("<II", lo, hi) + v)
    return c


# ---------------------------------------------------------------- iprange

def iprange_corpus(consts):
    c = Corpus("iprange")
    items = set()
    for v in consts:
        m = re.match(rb"^(bindings|remote_ip_ranges) *= *(.*)$", v)
        if m:
            items.update((m.group(1), x.strip()) for x in m.group(2).split(b","))
    n = 0
    for kind, x in sorted(items):
        c.add(f"tests-{n:02d}", (b"\x01" if kind == b"bindings" else b"\x02") + x)
        n += 1
    for i, a in enumerate([b"192.0.2.1", b"2001:db8::1", b"::ffff:192.0.2.1", b"::", b"1.2.3",
                           b"fe80::1%eth0"]):
        c.add(f"ip-{i}", b"\x00" + a)
    for i, a in enumerate([b"[2001:db8::1]:25", b"0.0.0.0:25", b"[::ffff:1.2.3.4]:25", b"::1:25"]):
        c.add(f"binding-{i}", b"\x01" + a)
    for i, a in enumerate([b"::/0", b"192.0.2.7/24", b"2001:db8::/129", b"10.0.0.9 - 10.0.0.1",
                           b"::ffff:1.2.3.4/120"]):
        c.add(f"range-{i}", b"\x02" + a)
    c.add("sockaddr-4", b"\x03" + struct.pack("<H", 2) + struct.pack(">H", 25) + bytes([192, 0, 2, 1]))
    c.add("sockaddr-6", b"\x03" + struct.pack("<H", 10) + struct.pack(">H", 25) + b"\0" * 4 +
          bytes(10) + b"\xff\xff" + bytes([192, 0, 2, 1]))
    return c


# ---------------------------------------------------------------- recipients

def recipients_corpus(consts):
    c = Corpus("recipients")
    files = [v for v in consts if b"@" in v and b"\n" in v and b"[" not in v and len(v) < 2000]
    for i, f in enumerate(files):
        c.add(f"tests-{i:02d}", f)
    # The malformed lines of test_cli.py, inside a valid file.
    bad = [v for v in consts if b"@" in v and b"\n" not in v and re.match(rb"^[\w@. /-]+$", v)
           and len(v) < 100 and not v.startswith((b"MAIL", b"RCPT"))]
    for i in range(0, len(bad), 5):
        c.add(f"tests-lines-{i // 5:02d}", b"# recipients\nalice@example.org\n\n" +
              b"\n".join(bad[i:i + 5]) + b"\n@example.net catchall\n")
    c.add("extra-0", b"A@X.ORG\tbox\r\n\"q@x\"@x.org  q\n@x.org\tcatch # c\npostmaster@x.org pm\n"
          b"tmp@x.org tmp\n.hidden@x.org\n")
    return c


# ---------------------------------------------------------------- users

def users_line(name, password, iterations=1000, salt=b"0123456789abcdef"):
    h = hashlib.pbkdf2_hmac("sha256", password, salt, iterations, 32)
    return (name + b":$pbkdf2-sha256$" + str(iterations).encode() + b"$" + base64.b64encode(salt) +
            b"$" + base64.b64encode(h))


def users_corpus(consts):
    c = Corpus("users")
    alice = users_line(b"alice@example.org", b"correct horse")
    c.add("one", alice + b"\n")
    c.add("two-crlf", b"# mail users\n\n" + alice + b"\r\n" + users_line(b"u", b"p", 2000) + b"\r\n")
    c.add("no-newline", users_line(b"b", b"pw two", 1500, b"saltsaltsaltsalt"))
    c.add("duplicate", alice + b"\n" + alice + b"\n")
    head, _, rest = alice.partition(b"$1000$")
    salt, _, h = rest.partition(b"$")
    for i, bad in enumerate([
            head + b"$999$" + rest, head + b"$10000001$" + rest, head + b"$01000$" + rest,
            head + b"$1000$" + b"c2FsdA==$" + h, head + b"$1000$" + salt + b"$" + h[:-4],
            head + b"$1000$" + salt + b"$" + h[:-1] + b"!", b"alice:$md5$1000$x$y",
            b"al ice:" + alice.split(b":", 1)[1], b"x" * 65 + b":" + alice.split(b":", 1)[1],
            b":" + alice.split(b":", 1)[1], b"alice@example.org", b"alice:$pbkdf2-sha256$1000$"]):
        c.add(f"bad-{i:02d}", b"ok:" + alice.split(b":", 1)[1] + b"\n" + bad + b"\n")
    return c


# ---------------------------------------------------------------- auth_b64

def auth_b64_corpus(consts):
    c = Corpus("auth_b64")
    b64 = [v for v in consts if re.fullmatch(rb"[A-Za-z0-9+/]{4,}={0,2}", v) and len(v) % 4 == 0]
    for i, v in enumerate(b64[:20]):
        c.add(f"tests-{i:02d}", b"\0" + v)
    for i, v in enumerate([PLAIN_OK, PLAIN_ALICE, b"", b"QQ==", b"QR==", b"QUI=", b"QUJ=", b"AB=C",
                           b"A===", b"=", b"*", b"QUJD\nRA==", base64.b64encode(b"u\0u\0p")]):
        c.add(f"decode-{i:02d}", b"\0" + v)
    for i, v in enumerate([b"", b"\0", b"\0u\0p", b"\xff\xfe\xfd\x00\x01"]):
        c.add(f"encode-{i}", b"\x01" + v)
    for i, v in enumerate([b"\0u\0p", b"u\0u\0p", b"x\0u\0p", b"\0\0p", b"\0u\0", b"\0u\0p\0q",
                           b"u\0p", b"\0alice@example.org\0correct horse"]):
        c.add(f"sasl-{i}", b"\x02" + v)
    return c


def main():
    consts = test_constants()
    for make in (session_corpus, address_corpus, config_corpus, iprange_corpus, recipients_corpus,
                 users_corpus, auth_b64_corpus):
        corpus = make(consts)
        files = list(corpus.dir.iterdir())
        size = sum(f.stat().st_size for f in files)
        print(f"{corpus.dir.relative_to(HERE.parents[1])}: {len(files)} files, {size} bytes")


if __name__ == "__main__":
    main()
