#!/bin/sh
# Checks a board's .ipk and the procd init script (make test-package):
# the init script parses (sh -n) and does what procd needs with the
# packaged INI; the .ipk is an ar archive of debian-binary, control.tar.gz
# and data.tar.gz with the members opkg expects; the packaged INI passes
# `tarpitd check` with the packaged binary (through RUNNER, which may run
# it under qemu-user); and, where the TLS=0 build exists, its tarpitd-nossl
# package.
#
# usage: test-package.sh OUT_DIR PKG_ARCH RUNNER
set -u
out=$(cd "$1" && pwd) arch=$2 runner=$3
root=$(cd "$(dirname "$0")/.." && pwd)
init=$root/firmware/openwrt/tarpitd/files/tarpitd.init
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }
check() { # description command...
	d=$1; shift
	if "$@" >/dev/null 2>&1; then ok; else bad "$d"; fi
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM

# --- init script -----------------------------------------------------------------
check "sh -n $init" sh -n "$init"
for pat in '^#!/bin/sh /etc/rc.common' '^USE_PROCD=1' '^START=[0-9]' \
	'procd_set_param command "\$PROG" -c "\$CONF" run' 'procd_set_param respawn' \
	'procd_set_param file "\$CONF"' 'procd_set_param limits nofile=' \
	'^reload_service()' 'procd_send_signal tarpitd .* HUP' 'mkdir -p "\$spool"'; do
	check "init script has: $pat" grep -q -- "$pat" "$init"
done

# --- the .ipk ---------------------------------------------------------------------
ipk=$(ls "$out"/tarpitd_*_"$arch".ipk 2>/dev/null | head -n 1)
if [ -z "$ipk" ]; then
	bad "no $out/tarpitd_*_$arch.ipk"
	echo "test-package: $pass passed, $fail failed"
	exit 1
fi
echo "test-package: $ipk"
echo "  ar t:"; ar t "$ipk" | sed 's/^/    /'
members=$(ar t "$ipk" | tr '\n' ' ')
check "ar members in order: $members" test "$members" = "debian-binary control.tar.gz data.tar.gz "
mkdir -p "$tmp/ar" "$tmp/control" "$tmp/data"
(cd "$tmp/ar" && ar x "$ipk")
check "debian-binary is 2.0" test "$(cat "$tmp/ar/debian-binary")" = "2.0"
check "control.tar.gz is gzip" gzip -t "$tmp/ar/control.tar.gz"
check "data.tar.gz is gzip" gzip -t "$tmp/ar/data.tar.gz"

echo "  tar tzf control.tar.gz:"; tar tzf "$tmp/ar/control.tar.gz" | sed 's/^/    /'
echo "  tar tzvf data.tar.gz:"; tar tzvf "$tmp/ar/data.tar.gz" | sed 's/^/    /'
ctl=$(tar tzf "$tmp/ar/control.tar.gz" | sort | tr '\n' ' ')
check "control members: $ctl" test "$ctl" = "./ ./conffiles ./control ./postinst ./prerm "
for m in ./usr/sbin/tarpitd ./etc/init.d/tarpitd ./etc/tarpitd/tarpitd.ini ./etc/tarpitd/recipients ./etc/tarpitd/; do
	check "data has $m" sh -c "tar tzf '$tmp/ar/data.tar.gz' | grep -qx '$m'"
done
check "data is owned by root" sh -c "! tar tzvf '$tmp/ar/data.tar.gz' | awk '{print \$2}' | grep -vE '^(0/0|root/root)$'"
tar xzf "$tmp/ar/control.tar.gz" -C "$tmp/control"
tar xzf "$tmp/ar/data.tar.gz" -C "$tmp/data"
c=$tmp/control/control
for f in Package Version Architecture Depends Description; do
	check "control has $f" grep -q "^$f: ." "$c"
done
check "Package: tarpitd" grep -qx 'Package: tarpitd' "$c"
check "control is one paragraph" sh -c "! grep -qx '' '$c'"
check "Architecture: $arch" grep -qx "Architecture: $arch" "$c"
check "conffiles" test "$(cat "$tmp/control/conffiles")" = "/etc/tarpitd/tarpitd.ini
/etc/tarpitd/recipients"
check "postinst parses" sh -n "$tmp/control/postinst"
check "prerm parses" sh -n "$tmp/control/prerm"
check "tarpitd is executable" test -x "$tmp/data/usr/sbin/tarpitd"
check "init script is executable" test -x "$tmp/data/etc/init.d/tarpitd"
check "packaged binary is build/.../tarpitd" cmp "$tmp/data/usr/sbin/tarpitd" "$out/tarpitd"
check "packaged init script is the feed's" cmp "$tmp/data/etc/init.d/tarpitd" "$init"

# --- the packaged INI, with the packaged binary -----------------------------------------
etc=$tmp/data/etc/tarpitd
maxconn=$(sed -n 's/^max_connections *= *//p' "$etc/tarpitd.ini")
check "tarpitd.ini sets max_connections" test -n "$maxconn"
board=$(basename "$out")
for kv in "max_connections:BOARD_MAX_CONNECTIONS" "max_inbound_connections:BOARD_MAX_CONNECTIONS" \
	"table_size:BOARD_HARVEST_TABLE_SIZE" ";max_sessions:BOARD_TLS_MAX_SESSIONS"; do
	key=${kv%%:*} want=$(sed -n "s/^${kv#*:} *:= *//p" "$root/board/$board.mk")
	check "tarpitd.ini: $key = $want (board/$board.mk)" grep -qx "$key = $want" "$etc/tarpitd.ini"
done
# Same file with the router's absolute paths moved into the test directory.
mkdir -p "$tmp/spool"
sed -e "s|^spool *=.*|spool = $tmp/spool|" -e "s|^pidfile *=.*|pidfile = $tmp/tarpitd.pid|" \
	"$etc/tarpitd.ini" > "$etc/test.ini"
if "$runner" -c "$etc/test.ini" check > "$tmp/check.out" 2>&1; then ok; else
	bad "tarpitd check on the packaged INI: $(cat "$tmp/check.out")"
fi

# --- the init script against the packaged INI, procd stubbed ---------------------------
calls=$tmp/procd-calls
(
	procd_open_instance() { echo "open $*"; }
	procd_set_param() { echo "param $*"; }
	procd_close_instance() { echo "close"; }
	procd_send_signal() { echo "signal $*"; }
	. "$init"
	CONF=$etc/test.ini
	start_service
	reload_service
) > "$calls" 2>"$tmp/init.err" || bad "start_service failed: $(cat "$tmp/init.err")"
check "procd command" grep -qx "param command /usr/sbin/tarpitd -c $etc/test.ini run" "$calls"
check "procd respawn" grep -q '^param respawn [0-9]' "$calls"
check "procd file" grep -qx "param file $etc/test.ini" "$calls"
check "procd limits nofile = max_connections + 64" \
	grep -qx "param limits nofile=$((maxconn + 64)) $((maxconn + 64))" "$calls"
check "reload sends SIGHUP" grep -qx 'signal tarpitd \* HUP' "$calls"
check "spool created" test -d "$tmp/spool"
rmdir "$tmp/spool"
( procd_open_instance() { :; }; procd_set_param() { :; }; procd_close_instance() { :; }
  . "$init"; CONF=$etc/test.ini; start_service ) >/dev/null 2>&1
check "spool created when missing" test -d "$tmp/spool"

# --- the TLS=0 package (make firmware TLS=0), when built ------------------------------
nossl=$(ls "$out"/notls/tarpitd-nossl_*_"$arch".ipk 2>/dev/null | head -n 1)
if [ -n "$nossl" ]; then
	echo "test-package: $nossl"
	mkdir -p "$tmp/n/ar" "$tmp/n/control" "$tmp/n/data"
	(cd "$tmp/n/ar" && ar x "$nossl")
	check "nossl: ar members" test "$(ar t "$nossl" | tr '\n' ' ')" = "debian-binary control.tar.gz data.tar.gz "
	tar xzf "$tmp/n/ar/control.tar.gz" -C "$tmp/n/control"
	tar xzf "$tmp/n/ar/data.tar.gz" -C "$tmp/n/data"
	for line in "Package: tarpitd-nossl" "Provides: tarpitd" "Conflicts: tarpitd" "Architecture: $arch"; do
		check "nossl: $line" grep -qx "$line" "$tmp/n/control/control"
	done
	check "nossl: one paragraph" sh -c "! grep -qx '' '$tmp/n/control/control'"
	check "nossl: conffiles" cmp "$tmp/n/control/conffiles" "$tmp/control/conffiles"
	check "nossl: packaged binary is build/.../notls/tarpitd" cmp "$tmp/n/data/usr/sbin/tarpitd" "$out/notls/tarpitd"
	check "nossl: same INI as tarpitd" cmp "$tmp/n/data/etc/tarpitd/tarpitd.ini" "$etc/tarpitd.ini"
fi

echo "test-package: $pass passed, $fail failed"
[ "$fail" = 0 ]
