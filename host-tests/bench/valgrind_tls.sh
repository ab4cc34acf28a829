#!/bin/sh
# valgrind_tls: STARTTLS and AUTH run clean under valgrind memcheck.
#
# Starts tarpitd with [tls] (a throwaway self-signed EC certificate) and
# [auth] (a users file written by `tarpitd passwd`) under
#   valgrind --leak-check=full --errors-for-leak-kinds=definite,indirect
# and drives these TLS sessions against it:
#   1. swaks --tls --auth PLAIN: an authenticated delivery (must be stored);
#   2. swaks --tls --auth LOGIN with a wrong password (535, nothing stored);
#   3. a session that resets mid-handshake: ClientHello sent, the server's
#      first flight read, then a TCP RST (swaks cannot cut a handshake
#      short, so a few lines of Python do this one);
#   4. swaks --tls offering TLS 1.2 with AES128-SHA only (no forward
#      secrecy, no AEAD), which the server refuses with either mbedTLS
#      (2.28 and 3.6, where TLS 1.3 would be served): a handshake that
#      fails on the server's side.
# Then SIGTERM. The TLS pool has one context, so each session reuses the
# context the previous one released.
#
#   sh host-tests/bench/valgrind_tls.sh [BIN]
#   env: PYTHON=/usr/bin/python3 KEEP=1 (keep the temp dir)
# Exit: 0 when valgrind reports no errors and no definite/indirect leaks,
# the server exited 0 and every session behaved; 1 otherwise; 2 setup error.
set -u

here=$(cd "$(dirname "$0")" && pwd)
BIN=${1:-$here/../../build/host/tarpitd}
PYTHON=${PYTHON:-/usr/bin/python3}

die() { echo "valgrind_tls: $*" >&2; exit 2; }
[ -x "$BIN" ] || die "no server binary at $BIN (make first)"
for tool in valgrind swaks openssl timeout "$PYTHON"; do
	command -v "$tool" >/dev/null 2>&1 || die "$tool is not installed"
done

tmp=$(mktemp -d /tmp/valgrind_tls.XXXXXX) || exit 2
vgpid=
cleanup() {
	if [ -n "$vgpid" ] && kill -0 "$vgpid" 2>/dev/null; then
		kill -KILL "$vgpid" 2>/dev/null
		wait "$vgpid" 2>/dev/null
	fi
	if [ -n "${KEEP:-}" ]; then echo "valgrind_tls: kept $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

fail=0
bad() { echo "valgrind_tls: FAIL: $*" >&2; fail=1; }

cd "$tmp" || exit 2
timeout 60 openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
	-keyout key.pem -out cert.pem -days 2 -subj /CN=localhost >openssl.log 2>&1 ||
	die "openssl req failed: $(tail -n 3 openssl.log)"
printf 'alice@example.org\n' >recipients
mkdir spool
port=$("$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])') ||
	die "no free port"
cat >tarpitd.ini <<EOF
[server]
hostname = mx.valgrind
max_connections = 16
recipients = recipients
spool = spool
log = stderr
log_level = debug

[tls]
certificate = cert.pem
key = key.pem
max_sessions = 1

[auth]
users = users

[connector "Default Frontend"]
bindings = 127.0.0.1:$port
tarpit_interval = 00:00:00
EOF
PASSWORD='valgrind pw 1'
printf '%s\n' "$PASSWORD" | timeout 60 "$BIN" -c tarpitd.ini passwd alice >passwd.log 2>&1 ||
	die "tarpitd passwd failed: $(cat passwd.log)"

valgrind --tool=memcheck --leak-check=full --errors-for-leak-kinds=definite,indirect \
	--error-exitcode=9 --trace-children=no --log-file="$tmp/valgrind.log" \
	"$BIN" -c "$tmp/tarpitd.ini" run >server.log 2>&1 &
vgpid=$!

# valgrind takes a few seconds to bring the server up.
i=0
until grep -q 'event=start' server.log 2>/dev/null; do
	if ! kill -0 "$vgpid" 2>/dev/null; then
		cat server.log valgrind.log >&2
		die "the server exited at start"
	fi
	[ $i -lt 600 ] || die "the server did not start within 60 s"
	sleep 0.1
	i=$((i + 1))
done

SWAKS="timeout 120 swaks --server 127.0.0.1:$port --from sender@origin.test --to alice@example.org --helo valgrind.test --timeout 60"

echo "valgrind_tls: session 1: swaks --tls --auth PLAIN, delivery"
$SWAKS --tls --auth PLAIN --auth-user alice --auth-password "$PASSWORD" >swaks1.log 2>&1 ||
	bad "authenticated delivery: swaks exit $? ($(grep -E '^(<~\*|\*\*\*)' swaks1.log | head -n 3))"
grep -Eq '<~ +235 2\.7\.0' swaks1.log || bad "session 1: no 235 2.7.0"
grep -Eq '<~ +250 2\.0\.0' swaks1.log || bad "session 1: message not accepted"

echo "valgrind_tls: session 2: swaks --tls --auth LOGIN, wrong password"
$SWAKS --tls --auth LOGIN --auth-user alice --auth-password 'not the password' >swaks2.log 2>&1 &&
	bad "failed AUTH: swaks exited 0"
grep -Eq '<~\* +535 5\.7\.8' swaks2.log || bad "session 2: no 535 5.7.8 ($(grep -E '^(<~|\*\*\*)' swaks2.log | tail -n 2))"

echo "valgrind_tls: session 3: reset mid-handshake"
timeout 120 "$PYTHON" - "$port" >reset.log 2>&1 <<'EOF' || bad "reset session: $(tail -n 2 reset.log)"
import select, socket, ssl, struct, sys
port = int(sys.argv[1])
s = socket.create_connection(("127.0.0.1", port), timeout=60)
f = s.makefile("rb")
def reply():
    while True:
        line = f.readline()
        if not line:
            sys.exit("server closed")
        if line[3:4] == b" ":
            return line
assert reply().startswith(b"220"), "no greeting"
s.sendall(b"EHLO reset.test\r\n")
reply()
s.sendall(b"STARTTLS\r\n")
r = reply()
assert r.startswith(b"220 2.0.0"), r
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
obj = ctx.wrap_bio(inc, out)
try:
    obj.do_handshake()
except ssl.SSLWantReadError:
    pass
s.sendall(out.read())
readable, _, _ = select.select([s], [], [], 60)
assert readable, "no ServerHello"
first = s.recv(65536)
assert first[:1] == b"\x16", first[:16]
s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
s.close()
print("reset after %d octets of the server's first flight" % len(first))
EOF

echo "valgrind_tls: session 4: swaks --tls, TLS 1.2 with AES128-SHA only (refused handshake)"
$SWAKS --tls --tls-protocol tlsv1_2 --tls-cipher AES128-SHA >swaks4.log 2>&1
grep -q 'TLS startup failed' swaks4.log || bad "session 4: the handshake did not fail ($(tail -n 2 swaks4.log))"

# The pool slot of sessions 3 and 4 must be back: one more STARTTLS works.
echo "valgrind_tls: session 5: swaks --tls, plain TLS delivery (pool slot reused)"
$SWAKS --tls >swaks5.log 2>&1 || bad "delivery after the failed handshakes: swaks exit $? ($(grep -E '^(<~\*|<\*\*|\*\*\*)' swaks5.log | head -n 3))"

kill -TERM "$vgpid"
i=0
while kill -0 "$vgpid" 2>/dev/null && [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done
if kill -0 "$vgpid" 2>/dev/null; then
	bad "the server did not stop within 60 s of SIGTERM"
	kill -KILL "$vgpid" 2>/dev/null
fi
wait "$vgpid"
status=$?
vgpid=
[ "$status" -eq 0 ] || bad "server exit status $status (9 = valgrind found errors)"

stored=$(find spool -path '*/new/*' -type f | wc -l)
[ "$stored" -eq 2 ] || bad "$stored messages stored, expected 2"
if grep -q "$PASSWORD" server.log; then bad "the password is in the server log"; fi
tls=$(grep -c 'event=tls ' server.log)
[ "$tls" -eq 3 ] || bad "$tls completed TLS handshakes logged, expected 3"

summary=$(grep 'ERROR SUMMARY' valgrind.log | tail -n 1)
definite=$(sed -n 's/.*definitely lost: \([0-9,]*\) bytes.*/\1/p' valgrind.log | tail -n 1)
indirect=$(sed -n 's/.*indirectly lost: \([0-9,]*\) bytes.*/\1/p' valgrind.log | tail -n 1)
echo "valgrind_tls: ${summary#==*== }"
echo "valgrind_tls: definitely lost: ${definite:-0} bytes, indirectly lost: ${indirect:-0} bytes"
case $summary in
*"ERROR SUMMARY: 0 errors"*) ;;
*) bad "valgrind reported errors" ;;
esac
[ "${definite:-0}" = 0 ] || bad "definite leaks"
[ "${indirect:-0}" = 0 ] || bad "indirect leaks"

if [ $fail -ne 0 ]; then
	echo "---- valgrind.log (errors and leaks) ----" >&2
	grep -v '^==[0-9]*== *$' valgrind.log | sed -n '/Invalid\|uninitialised\|Conditional\|definitely\|indirectly\|by 0x\|at 0x/p' | head -n 80 >&2
	echo "---- server.log (tail) ----" >&2
	tail -n 30 server.log >&2
	exit 1
fi
echo "valgrind_tls: OK"
exit 0
