#!/bin/sh
# alloc_check: tarpitd allocates nothing per connection or per message.
#
# Runs the server under valgrind memcheck twice, serving SMALL and then
# LARGE full sessions (EHLO, MAIL, RCPT valid, RCPT unknown, DATA, QUIT),
# and compares the "total heap usage: N allocs" lines. Equal counts (the
# start-up allocations only) mean the steady state allocates nothing. On a
# difference the valgrind xtree files of both runs are summarised by
# callgrind_annotate, so the allocating call stacks show.
#
#   sh host-tests/bench/alloc_check.sh [BIN]
#   env: SMALL=100 LARGE=2000 PARALLEL=4 PYTHON=/usr/bin/python3 KEEP=1
# Exit: 0 equal, 1 different or a run failed, 2 usage/setup error.
set -u

here=$(cd "$(dirname "$0")" && pwd)
BIN=${1:-$here/../../build/host/tarpitd}
SMALL=${SMALL:-100}
LARGE=${LARGE:-2000}
PARALLEL=${PARALLEL:-4}
PYTHON=${PYTHON:-/usr/bin/python3}

[ -x "$BIN" ] || { echo "alloc_check: no server binary at $BIN (make first)" >&2; exit 2; }
command -v valgrind >/dev/null || { echo "alloc_check: valgrind is not installed" >&2; exit 2; }

tmp=$(mktemp -d /tmp/alloc_check.XXXXXX) || exit 2
vgpid=
cleanup() {
	if [ -n "$vgpid" ] && kill -0 "$vgpid" 2>/dev/null; then
		kill -KILL "$vgpid" 2>/dev/null
		wait "$vgpid" 2>/dev/null
	fi
	if [ -n "${KEEP:-}" ]; then echo "alloc_check: kept $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# One run: $1 = label, $2 = sessions. Prints the alloc count on stdout.
run() {
	label=$1 n=$2 dir=$tmp/$1
	mkdir -p "$dir/spool"
	printf 'alice@example.org\n' >"$dir/recipients"
	port=$("$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
	cat >"$dir/alloc.ini" <<EOF
[server]
hostname = mx.alloc
max_connections = 64
recipients = recipients
spool = spool
log = stderr
log_level = warning
[connector "Default Frontend"]
bindings = 127.0.0.1:$port
tarpit_interval = 00:00:00
max_inbound_connections = 64
max_inbound_connections_per_source = 64
EOF
	valgrind --tool=memcheck --trace-children=no --log-file="$dir/valgrind.log" \
		--xtree-memory=full --xtree-memory-file="$dir/xtmemory.kcg" \
		"$BIN" -c "$dir/alloc.ini" run >"$dir/server.log" 2>&1 &
	vgpid=$!
	if ! timeout 600 "$PYTHON" - "$port" "$n" "$PARALLEL" "$vgpid" >"$dir/client.log" 2>&1 <<'EOF'
import os, smtplib, socket, sys, threading, time
port, n, par, pid = (int(x) for x in sys.argv[1:5])
deadline = time.monotonic() + 60
while True:  # valgrind takes a moment to start the server
    try:
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
        break
    except OSError:
        if time.monotonic() > deadline or not os.path.exists("/proc/%d" % pid):
            sys.exit("server did not start")
        time.sleep(0.1)
msg = (b"From: a@b.org\r\nTo: alice@example.org\r\nSubject: alloc check\r\n\r\n"
       b"line one\r\n.dot-stuffed line\r\nline three\r\n")
lock = threading.Lock()
todo = [n]
bad = []
def session():
    with smtplib.SMTP("127.0.0.1", port, local_hostname="client.test", timeout=60) as s:
        got = [s.ehlo("client.test")[0], s.mail("a@b.org")[0], s.rcpt("alice@example.org")[0],
               s.rcpt("nobody@example.org")[0], s.data(msg)[0], s.quit()[0]]
    if got != [250, 250, 250, 550, 250, 221]:
        raise RuntimeError("replies %s" % got)
def worker():
    while True:
        with lock:
            if todo[0] == 0 or len(bad) > 5:
                return
            todo[0] -= 1
        try:
            session()
        except Exception as e:  # reported below, counted as a failure
            with lock:
                bad.append(repr(e))
ts = [threading.Thread(target=worker) for _ in range(par)]
for t in ts: t.start()
for t in ts: t.join()
print("sessions %d failed %d %s" % (n, len(bad), bad[:3]))
sys.exit(1 if bad else 0)
EOF
	then
		echo "alloc_check: $label: client failed: $(tail -n 3 "$dir/client.log")" >&2
		return 1
	fi
	kill -TERM "$vgpid"
	i=0
	while kill -0 "$vgpid" 2>/dev/null && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
	if kill -0 "$vgpid" 2>/dev/null; then
		echo "alloc_check: $label: server did not stop on SIGTERM" >&2
		return 1
	fi
	wait "$vgpid"; status=$?
	vgpid=
	[ "$status" -eq 0 ] || echo "alloc_check: $label: server exit status $status" >&2
	stored=$(find "$dir/spool" -path '*/new/*' -type f | wc -l)
	[ "$stored" -eq "$n" ] || echo "alloc_check: $label: $stored messages stored, expected $n" >&2
	if [ -s "$dir/server.log" ]; then
		echo "alloc_check: $label: server log:" >&2
		head -n 5 "$dir/server.log" >&2
	fi
	sed -n 's/.*total heap usage: \([0-9,]*\) allocs, \([0-9,]*\) frees, \([0-9,]*\) bytes allocated.*/\1 \2 \3/p' \
		"$dir/valgrind.log" | tr -d , >"$dir/usage"
	[ -s "$dir/usage" ] || { echo "alloc_check: $label: no heap summary in valgrind.log" >&2; return 1; }
	errs=$(sed -n 's/.*ERROR SUMMARY: \([0-9]*\) errors.*/\1/p' "$dir/valgrind.log")
	[ "${errs:-0}" -eq 0 ] || echo "alloc_check: $label: valgrind reports $errs errors" >&2
}

run small "$SMALL" || exit 1
run large "$LARGE" || exit 1
read -r a_small f_small b_small <"$tmp/small/usage"
read -r a_large f_large b_large <"$tmp/large/usage"
echo "alloc_check: $SMALL sessions: $a_small allocs, $f_small frees, $b_small bytes allocated"
echo "alloc_check: $LARGE sessions: $a_large allocs, $f_large frees, $b_large bytes allocated"
if [ "$a_small" = "$a_large" ]; then
	echo "alloc_check: OK, the allocation count does not depend on the number of sessions"
	exit 0
fi
echo "alloc_check: FAIL, $((a_large - a_small)) more allocations for $((LARGE - SMALL)) more sessions"
if command -v callgrind_annotate >/dev/null; then
	for r in small large; do
		echo "--- allocating call stacks, $r run (xtree, inclusive)"
		callgrind_annotate --inclusive=yes --sort=totBk "$tmp/$r/xtmemory.kcg" 2>/dev/null | sed -n '1,40p'
	done
fi
exit 1
