#!/bin/sh
# Checks a board's packages (make test-package) with the real package
# managers, not with our idea of their format:
#  1. the init script parses and names what procd needs;
#  2. the .ipk is what ipkg-build writes (outer tar.gz of ./debian-binary,
#     ./data.tar.gz, ./control.tar.gz; control fields; Installed-Size as
#     ipkg-build computes it; conffiles; files, modes and owners);
#  3. opkg (opkg-lede) installs it into an offline root (`opkg -o ROOT`,
#     scripts run with IPKG_INSTROOT set, as OpenWrt's image build runs
#     them); the postinst then runs as on a running router (chroot into the
#     root, busybox as /bin/sh, firmware/standin/rc.common standing in for
#     rc.common and procd, firmware/standin/uci for uci): the service is
#     enabled but refuses to start, printing what to edit; after those two
#     edits `/etc/init.d/tarpitd start` runs the daemon as the tarpitd user
#     (on 127.0.0.1 and a high port here), with term_timeout, reload_signal,
#     the reload trigger, the jail and the computed nofile limit; upgrade
#     over an edited INI (kept, tarpitd.ini-opkg written; no re-enable),
#     remove (the edited INI stays), tarpitd-nossl over tarpitd (refused);
#  4. apk (apk-tools 3) the same with its .apk (`apk add --root ROOT
#     --initdb --allow-untrusted --no-network`; apk runs the scripts
#     chrooted: they see a running router): install, upgrade (kept, .apk-new),
#     del, and the -nossl conflict.
# opkg and apk come from OPKG=/APK= or build/pkg-tools (built from
# $TARPITD_SHARED/vendor, default ../shared next to the repository); without
# them, or without root for chroot, those cases are skipped with a message.
#
# usage: test-package.sh OUT_DIR PKG_ARCH RUNNER [QEMU_CMD]
#   RUNNER runs the board's binary on this machine (build/<board>/tarpitd-run);
#   QEMU_CMD is the board's qemu-user command (empty for a native board).
set -u
out=$(cd "$1" && pwd) arch=$2 runner=$3 qemu=${4:-}
root=$(cd "$(dirname "$0")/.." && pwd)
init=$root/firmware/openwrt/tarpitd/files/tarpitd.init
board=$(basename "$out")
version=$(sed -n 's/^VERSION *:= *//p' "$root/Makefile")
bval() { sed -n "s/^$1 *:= *//p" "$root/board/$board.mk"; }
maxconn=$(bval BOARD_MAX_CONNECTIONS) sessions=$(bval BOARD_TLS_MAX_SESSIONS) table=$(bval BOARD_HARVEST_TABLE_SIZE)
pass=0 fail=0 skip=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }
check() { # description command...
	d=$1; shift
	if "$@" >/dev/null 2>&1; then ok; else bad "$d"; fi
}
skipped() { skip=$((skip + 1)); echo "test-package: SKIPPED: $*"; }

tmp=$(mktemp -d)
cleanup() {
	for p in "$tmp"/r*/tmp/procd.tarpitd.pid; do [ -f "$p" ] && kill -KILL "$(cat "$p")" 2>/dev/null; done
	[ -n "${KEEP:-}" ] || rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

# --- 1. init script ------------------------------------------------------------------
check "sh -n $init" sh -n "$init"
for pat in '^#!/bin/sh /etc/rc.common' '^USE_PROCD=1' '^START=[0-9]' '^extra_command "check"' \
	'procd_set_param command "\$PROG" -c "\$CONF" run' 'procd_set_param respawn' \
	'procd_set_param term_timeout \$((shutdown + 10))' 'procd_set_param reload_signal HUP' \
	'procd_add_jail tarpitd log' 'procd_add_reload_trigger "tarpitd"'; do
	check "init script has: $pat" grep -q -- "$pat" "$init"
done
check "no hand-written reload (procd's reload_signal)" sh -c "! grep -q '^reload_service' '$init'"

# --- 2. the .ipk, as ipkg-build writes it ---------------------------------------------------
ipk=$out/tarpitd_${version}-1_${arch}.ipk
apk=$out/tarpitd-${version}-r1.apk
nossl_ipk=$out/notls/tarpitd-nossl_${version}-1_${arch}.ipk
nossl_apk=$out/notls/tarpitd-nossl-${version}-r1.apk
if [ ! -f "$ipk" ]; then
	bad "no $ipk (make firmware BOARD=$board)"
	echo "test-package: $pass passed, $fail failed"
	exit 1
fi
echo "test-package: $ipk"
x=$tmp/ipk
mkdir -p "$x/outer" "$x/control" "$x/data"
check "the .ipk is a gzip'd tar (opkg-lede reads nothing else)" gzip -t "$ipk"
members=$(tar tzf "$ipk" | tr '\n' ' ')
check "outer members as ipkg-build writes them: $members" \
	test "$members" = "./debian-binary ./data.tar.gz ./control.tar.gz "
tar xzf "$ipk" -C "$x/outer"
check "debian-binary is 2.0" test "$(cat "$x/outer/debian-binary")" = "2.0"
tar xzf "$x/outer/control.tar.gz" -C "$x/control"
tar xzf "$x/outer/data.tar.gz" -C "$x/data"
echo "  control.tar.gz:"; tar tzf "$x/outer/control.tar.gz" | sed 's/^/    /'
echo "  data.tar.gz:"; tar tzvf "$x/outer/data.tar.gz" | awk '{print "    " $1, $2, $3, $6}'
ctl=$(tar tzf "$x/outer/control.tar.gz" | LC_ALL=C sort | tr '\n' ' ')
check "control members: $ctl" test "$ctl" = "./ ./conffiles ./control ./postinst ./prerm "
c=$x/control/control
for f in Package Version Depends Source SourceName License LicenseFiles Section Require-User \
	URL Maintainer Architecture Installed-Size Description; do
	check "control has $f" grep -q "^$f: ." "$c"
done
check "Package: tarpitd" grep -qx 'Package: tarpitd' "$c"
check "Version: $version-1" grep -qx "Version: $version-1" "$c"
check "Architecture: $arch" grep -qx "Architecture: $arch" "$c"
feed=$root/firmware/openwrt/tarpitd/Makefile
lic=$(sed -n 's/^PKG_LICENSE:=//p' "$feed")
check "License: $lic (the feed's PKG_LICENSE)" grep -qx "License: $lic" "$c"
check "LicenseFiles: LICENSE, and the file exists" sh -c "grep -qx 'LicenseFiles: LICENSE' '$c' && test -s '$root/LICENSE'"
check "Require-User: the feed's USERID" grep -qx "Require-User: $(sed -n 's/^ *USERID:=//p' "$feed")" "$c"
isize=$(gzip -dc "$x/outer/data.tar.gz" | wc -c | tr -d ' ')
check "Installed-Size: $isize (the uncompressed data.tar, as ipkg-build)" grep -qx "Installed-Size: $isize" "$c"
check "control is one paragraph" sh -c "! grep -qx '' '$c'"
check "conffiles" test "$(cat "$x/control/conffiles")" = "/etc/config/tarpitd
/etc/tarpitd/recipients
/etc/tarpitd/tarpitd.ini"
check "postinst parses" sh -n "$x/control/postinst"
check "prerm parses" sh -n "$x/control/prerm"
check "data is owned by root" sh -c "! tar tzvf '$x/outer/data.tar.gz' | awk '{print \$2}' | grep -vE '^(0/0|root/root)\$'"
# Modes of what the package installs.
for fm in usr/sbin/tarpitd:-rwxr-xr-x etc/init.d/tarpitd:-rwxr-xr-x etc/config/tarpitd:-rw-r--r-- \
	etc/tarpitd/tarpitd.ini:-rw-r--r-- etc/tarpitd/recipients:-rw-r--r-- \
	etc/uci-defaults/90-tarpitd-firewall:-rwxr-xr-x lib/upgrade/keep.d/tarpitd:-rw-r--r-- \
	usr/share/nftables.d/table-post/tarpitd-ban.nft:-rw-r--r-- usr/share/doc/tarpitd/LICENSE:-rw-r--r--; do
	f=${fm%%:*} m=${fm#*:}
	check "data: $f $m" sh -c "tar tzvf '$x/outer/data.tar.gz' | awk '\$6 == \"./$f\" {print \$1}' | grep -qx -- '$m'"
done
check "packaged binary is build/.../tarpitd" cmp "$x/data/usr/sbin/tarpitd" "$out/tarpitd"
check "packaged init script is the feed's" cmp "$x/data/etc/init.d/tarpitd" "$init"
check "nft snippet is config/tarpitd-ban.nft" cmp "$x/data/usr/share/nftables.d/table-post/tarpitd-ban.nft" "$root/config/tarpitd-ban.nft"
check "nft snippet: set and chain, no table of its own" sh -c "grep -q '^set tarpitd_ban' '$x/data/usr/share/nftables.d/table-post/tarpitd-ban.nft' && ! grep -q '^table' '$x/data/usr/share/nftables.d/table-post/tarpitd-ban.nft'"
for k in /etc/config/tarpitd /etc/tarpitd/tarpitd.ini /etc/tarpitd/recipients /etc/tarpitd/users \
	/etc/tarpitd/cert.pem /etc/tarpitd/key.pem; do
	check "keep.d lists $k" grep -qx "$k" "$x/data/lib/upgrade/keep.d/tarpitd"
done
check "uci-defaults: a disabled WAN rule for port 25" sh -c "grep -q \"src='wan'\" '$x/data/etc/uci-defaults/90-tarpitd-firewall' && grep -q \"dest_port='25'\" '$x/data/etc/uci-defaults/90-tarpitd-firewall' && grep -q \"enabled='0'\" '$x/data/etc/uci-defaults/90-tarpitd-firewall'"

# The packaged INI: board sizing, safe defaults.
etc=$x/data/etc/tarpitd
for kv in "max_connections:BOARD_MAX_CONNECTIONS" "max_inbound_connections:BOARD_MAX_CONNECTIONS" \
	"table_size:BOARD_HARVEST_TABLE_SIZE" ";max_sessions:BOARD_TLS_MAX_SESSIONS"; do
	key=${kv%%:*} want=$(sed -n "s/^${kv#*:} *:= *//p" "$root/board/$board.mk")
	check "tarpitd.ini: $key = $want (board/$board.mk)" grep -qx "$key = $want" "$etc/tarpitd.ini"
done
check "tarpitd.ini: user = tarpitd" grep -qx 'user = tarpitd' "$etc/tarpitd.ini"
check "tarpitd.ini: the connector is disabled (safe first start)" grep -qx 'enabled = no' "$etc/tarpitd.ini"

# --- tools and privileges for the install cases ---------------------------------------------
tools=$root/build/pkg-tools/bin
shared=${TARPITD_SHARED:-$root/../shared}
OPKG=${OPKG:-$tools/opkg} APK=${APK:-$tools/apk}
if { [ ! -x "$OPKG" ] || [ ! -x "$APK" ]; } && [ -f "$shared/tools/build-pkg-tools.sh" ]; then
	sh "$shared/tools/build-pkg-tools.sh" "$root/build/pkg-tools" > "$tmp/pkg-tools.log" 2>&1 ||
		{ tail -20 "$tmp/pkg-tools.log" >&2; bad "build-pkg-tools.sh failed"; }
fi
can_chroot=1
[ "$(id -u)" = 0 ] || can_chroot=0
busybox=$(command -v busybox 2>/dev/null || true)
if [ -n "$busybox" ] && ! file -b "$busybox" | grep -q 'statically linked'; then busybox=""; fi
qemu_bin=""
if [ -n "$qemu" ]; then qemu_bin=$(command -v "${qemu%% *}" 2>/dev/null || true); fi
why=""
[ "$can_chroot" = 1 ] || why="not root (chroot)"
[ -n "$busybox" ] || why="${why:+$why, }no static busybox (apt-get install busybox-static)"
[ -z "$qemu" ] || [ -n "$qemu_bin" ] || why="${why:+$why, }no ${qemu%% *}"

# An offline root like a freshly flashed router: busybox as /bin/sh and
# its applets, root's passwd/group/shadow, the stand-ins for rc.common,
# procd and uci, and (for a foreign board) the static qemu-user, with
# /usr/sbin/tarpitd run through it once installed (qemu_wrap).
mkroot() { # dir
	r=$1
	mkdir -p "$r/bin" "$r/sbin" "$r/usr/bin" "$r/etc" "$r/tmp" "$r/var/lock" "$r/var/run" "$r/lib" "$r/dev"
	cp "$busybox" "$r/bin/busybox"
	for a in sh ash awk cat chmod chown cut echo env grep kill ln ls mkdir rm sed sleep test tr touch id; do
		ln -sf busybox "$r/bin/$a"
	done
	printf 'root:x:0:0:root:/root:/bin/ash\n' > "$r/etc/passwd"
	printf 'root:x:0:\n' > "$r/etc/group"
	printf 'root:::0:99999:7:::\n' > "$r/etc/shadow"
	install -m 0755 "$root/firmware/standin/rc.common" "$r/etc/rc.common"
	install -m 0755 "$root/firmware/standin/uci" "$r/sbin/uci"
	[ -z "$qemu_bin" ] || cp "$qemu_bin" "$r/usr/bin/"
	mknod -m 0666 "$r/dev/null" c 1 3
}
# The installed binary through qemu-user (no binfmt_misc here), as the
# package manager installed it: qemu_wrap before running, qemu_unwrap
# before the package manager touches it again.
qemu_wrap() { # root
	[ -n "$qemu" ] || return 0
	mv "$1/usr/sbin/tarpitd" "$1/usr/sbin/.tarpitd.target"
	printf '#!/bin/sh\nexec /usr/bin/%s%s /usr/sbin/.tarpitd.target "$@"\n' "${qemu_bin##*/}" \
		"${qemu#"${qemu%% *}"}" > "$1/usr/sbin/tarpitd"
	chmod 0755 "$1/usr/sbin/tarpitd"
}
qemu_unwrap() { [ -z "$qemu" ] || mv "$1/usr/sbin/.tarpitd.target" "$1/usr/sbin/tarpitd"; }
inroot() { chroot "$R" /bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin "$@"; }
uid_of() { grep "^$2:" "$1/etc/passwd" | cut -d: -f3; }

# A free port on 127.0.0.1 and a wait for the daemon's greeting there.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
greeting() { # port: waits up to 20 s for the 220 (the daemon starts under qemu)
	python3 - "$1" <<'EOF'
import socket, sys, time
deadline = time.monotonic() + 20
while True:
    try:
        with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5) as s:
            s.settimeout(10)
            print(s.recv(512).decode(errors="replace").strip())
            s.sendall(b"QUIT\r\n")
            sys.exit(0)
    except (ConnectionRefusedError, socket.timeout):
        if time.monotonic() > deadline:
            sys.exit(1)
        time.sleep(0.05)
EOF
}

# The installed and configured service, in root $R (both package managers).
service_checks() { # label postinst-output
	L=$1
	uid=$(uid_of "$R" tarpitd)
	check "$L: user tarpitd in /etc/passwd" test -n "$uid"
	check "$L: group tarpitd in /etc/group" grep -q '^tarpitd:x:[0-9]*:' "$R/etc/group"
	check "$L: postinst enabled the service" test -L "$R/etc/rc.d/S90tarpitd"
	check "$L: postinst ran the uci-defaults script (rule disabled)" \
		sh -c "grep -q \"set firewall.tarpitd_smtp.enabled='0'\" '$R/tmp/uci.log'"
	check "$L: and removed it, as default_postinst does" test ! -e "$R/etc/uci-defaults/90-tarpitd-firewall"
	check "$L: fresh install: nothing started" test ! -e "$R/tmp/procd.tarpitd.pid"
	check "$L: postinst says to edit the recipients" grep -q 'edit /etc/tarpitd/recipients and' "$2"
	check "$L: postinst says to set enabled = yes" grep -q "set 'enabled = yes' in /etc/tarpitd/tarpitd.ini" "$2"
	check "$L: postinst says it in two lines" test "$(grep -c '^[ *]*tarpitd: ' "$2")" = 2

	qemu_wrap "$R"
	if inroot /etc/init.d/tarpitd check > "$tmp/check.out" 2>&1; then ok; else
		bad "$L: /etc/init.d/tarpitd check on the packaged INI: $(cat "$tmp/check.out")"; fi
	# The two documented edits, and (only here) a private port.
	port=$(free_port)
	printf 'postmaster@router.test\n' > "$R/etc/tarpitd/recipients"
	sed -i -e 's/^enabled = no$/enabled = yes/' \
		-e "s/^bindings = .*/bindings = 127.0.0.1:$port/" "$R/etc/tarpitd/tarpitd.ini"
	inroot /etc/init.d/tarpitd start > "$tmp/start.out" 2>&1
	check "$L: start after the two edits" test -s "$R/tmp/procd.tarpitd.pid"
	if g=$(greeting "$port"); then
		case $g in 220*) ok ;; *) bad "$L: greeting: $g" ;; esac
	else
		bad "$L: no greeting on 127.0.0.1:$port: $(cat "$R/tmp/procd.tarpitd.out" "$tmp/start.out" 2>/dev/null)"
	fi
	pid=$(cat "$R/tmp/procd.tarpitd.pid" 2>/dev/null || echo none)
	check "$L: runs as the tarpitd user (uid $uid)" \
		sh -c "grep -Eq '^Uid:[[:space:]]+$uid[[:space:]]+$uid[[:space:]]+$uid[[:space:]]+$uid\$' /proc/$pid/status"
	check "$L: spool owned by tarpitd" test "$(stat -c %u "$R/var/spool/tarpitd")" = "$uid"
	check "$L: /var/run/tarpitd owned by tarpitd" test "$(stat -c %u "$R/var/run/tarpitd")" = "$uid"
	log=$R/tmp/procd.tarpitd.log
	nofile=$((2 * maxconn + 81))
	for line in "param command /usr/sbin/tarpitd -c /etc/tarpitd/tarpitd.ini run" \
		"param term_timeout 30" "param reload_signal HUP" \
		"param limits nofile=$nofile $nofile" \
		"param file /etc/tarpitd/tarpitd.ini /etc/tarpitd/recipients" \
		"jail tarpitd log" \
		"jail_mount /etc/tarpitd/tarpitd.ini /etc/tarpitd/recipients /etc/passwd /etc/group" \
		"jail_mount_rw /var/spool/tarpitd /var/run/tarpitd" \
		"reload_trigger tarpitd"; do
		check "$L: procd gets: $line" grep -qxF "$line" "$log"
	done
	check "$L: respawn" grep -q '^param respawn [0-9]' "$log"
	inroot /etc/init.d/tarpitd stop >/dev/null 2>&1
	check "$L: stop ends the daemon" sh -c "! kill -0 $pid"
	# UCI enabled=0 switches it off without touching the INI.
	sed -i "s/option enabled '1'/option enabled '0'/" "$R/etc/config/tarpitd"
	inroot /etc/init.d/tarpitd start >/dev/null 2>&1
	check "$L: uci enabled=0: nothing started" test ! -e "$R/tmp/procd.tarpitd.pid"
	sed -i "s/option enabled '0'/option enabled '1'/" "$R/etc/config/tarpitd"
	qemu_unwrap "$R"
}

# --- 3. opkg ----------------------------------------------------------------------------------
if [ ! -x "$OPKG" ]; then
	skipped "opkg cases: no opkg (OPKG=, or TARPITD_SHARED=$shared with tools/build-pkg-tools.sh)"
elif [ -n "$why" ]; then
	skipped "opkg cases: $why"
else
	R=$tmp/r-opkg
	mkroot "$R"
	mkdir -p "$R/usr/lib/opkg/info"
	printf 'dest root /\narch all 100\narch %s 200\n' "$arch" > "$tmp/opkg.conf"
	# The base system's libc, as the image's status file records it.
	printf 'Package: libc\nVersion: 1\nStatus: install user installed\nArchitecture: %s\nInstalled-Time: 0\n\n' \
		"$arch" > "$R/usr/lib/opkg/status"
	: > "$R/usr/lib/opkg/info/libc.list"
	# As OpenWrt's image build runs opkg: scripts run, with IPKG_INSTROOT.
	opkg() { IPKG_INSTROOT=$R "$OPKG" -f "$tmp/opkg.conf" -o "$R" --force-postinstall "$@"; }
	if opkg install "$ipk" > "$tmp/opkg.out" 2>&1; then ok; else bad "opkg install: $(cat "$tmp/opkg.out")"; fi
	for f in /usr/sbin/tarpitd /etc/init.d/tarpitd /etc/config/tarpitd /etc/tarpitd/tarpitd.ini \
		/etc/tarpitd/recipients /lib/upgrade/keep.d/tarpitd /usr/share/nftables.d/table-post/tarpitd-ban.nft \
		/etc/uci-defaults/90-tarpitd-firewall; do
		check "opkg: installed $f" test -f "$R$f"
	done
	check "opkg: /usr/sbin/tarpitd 0755" test "$(stat -c %a "$R/usr/sbin/tarpitd")" = 755
	check "opkg: tarpitd.ini 0644" test "$(stat -c %a "$R/etc/tarpitd/tarpitd.ini")" = 644
	check "opkg: status lists the conffiles" sh -c "grep -q '^ /etc/tarpitd/tarpitd.ini ' '$R/usr/lib/opkg/status' && grep -q '^ /etc/config/tarpitd ' '$R/usr/lib/opkg/status'"
	check "opkg: IPKG_INSTROOT: the user is added to the root" grep -q '^tarpitd:x:225:225:' "$R/etc/passwd"
	check "opkg: IPKG_INSTROOT: and to its shadow" grep -q '^tarpitd:' "$R/etc/shadow"
	check "opkg: IPKG_INSTROOT: nothing enabled" test ! -e "$R/etc/rc.d/S90tarpitd"
	check "opkg: IPKG_INSTROOT: no uci run" test ! -e "$R/tmp/uci.log"
	# On a running router opkg runs the same postinst without IPKG_INSTROOT.
	inroot PKG_UPGRADE=0 /bin/sh /usr/lib/opkg/info/tarpitd.postinst > "$tmp/opkg-router.out" 2>&1
	check "opkg: postinst run again adds no second user" test "$(grep -c '^tarpitd:' "$R/etc/passwd")" = 1
	service_checks opkg "$tmp/opkg-router.out"

	# Upgrade over the edited INI (edited above: enabled, bindings).
	inroot /etc/init.d/tarpitd disable
	mkdir -p "$tmp/up"
	PKG_RELEASE=2 sh "$root/firmware/mkipk.sh" "$tmp/up" "$arch" "$version" "$out/tarpitd" \
		"$maxconn" "$sessions" "$table" tarpitd > "$tmp/up.out" 2>&1 || bad "mkipk.sh for the upgrade: $(cat "$tmp/up.out")"
	cp "$R/etc/tarpitd/tarpitd.ini" "$tmp/edited.ini"
	if opkg install "$tmp/up/tarpitd_${version}-2_${arch}.ipk" > "$tmp/opkg.out" 2>&1; then ok; else
		bad "opkg upgrade: $(cat "$tmp/opkg.out")"; fi
	check "opkg upgrade: status has 0.1.0-2" grep -qx "Version: ${version}-2" "$R/usr/lib/opkg/status"
	check "opkg upgrade: the edited INI is kept" cmp "$R/etc/tarpitd/tarpitd.ini" "$tmp/edited.ini"
	check "opkg upgrade: the new one is tarpitd.ini-opkg" cmp "$R/etc/tarpitd/tarpitd.ini-opkg" "$etc/tarpitd.ini"
	inroot PKG_UPGRADE=1 /bin/sh /usr/lib/opkg/info/tarpitd.postinst > /dev/null 2>&1
	check "opkg upgrade: a disabled service stays disabled (no re-enable)" test ! -e "$R/etc/rc.d/S90tarpitd"
	# An enabled, running service is restarted, so that the new binary runs
	# (a plain start would only get it SIGHUP from procd).
	inroot /etc/init.d/tarpitd enable
	qemu_wrap "$R"
	inroot /etc/init.d/tarpitd start > /dev/null 2>&1
	old=$(cat "$R/tmp/procd.tarpitd.pid" 2>/dev/null || echo none)
	: > "$R/tmp/rc.actions"
	inroot PKG_UPGRADE=1 /bin/sh /usr/lib/opkg/info/tarpitd.postinst > /dev/null 2>&1
	check "opkg upgrade: an enabled service is restarted" grep -qx 'tarpitd restart' "$R/tmp/rc.actions"
	check "opkg upgrade: and not enabled again" sh -c "! grep -qx 'tarpitd enable' '$R/tmp/rc.actions'"
	check "opkg upgrade: the old daemon has stopped" sh -c "! kill -0 $old"
	check "opkg upgrade: a new one runs" sh -c "kill -0 \$(cat '$R/tmp/procd.tarpitd.pid')"
	inroot /etc/init.d/tarpitd stop > /dev/null 2>&1
	qemu_unwrap "$R"
	inroot /etc/init.d/tarpitd disable
	# tarpitd-nossl over tarpitd: refused.
	if [ -f "$nossl_ipk" ]; then
		opkg install "$nossl_ipk" > "$tmp/nossl.out" 2>&1
		check "opkg: tarpitd-nossl over tarpitd refused" sh -c "! grep -q '^Package: tarpitd-nossl' '$R/usr/lib/opkg/status'"
		check "opkg: and tarpitd stays" cmp "$R/usr/sbin/tarpitd" "$out/tarpitd"
		grep -i conflict "$tmp/nossl.out" | sed 's/^/  opkg: /'
	else
		skipped "opkg: tarpitd-nossl cases: no $nossl_ipk (make firmware BOARD=$board TLS=0)"
	fi
	# Remove: on a router opkg runs prerm without IPKG_INSTROOT first.
	inroot /etc/init.d/tarpitd enable
	inroot /bin/sh /usr/lib/opkg/info/tarpitd.prerm > /dev/null 2>&1
	check "opkg remove: prerm disables the service" test ! -e "$R/etc/rc.d/S90tarpitd"
	if opkg remove tarpitd > "$tmp/opkg.out" 2>&1; then ok; else bad "opkg remove: $(cat "$tmp/opkg.out")"; fi
	check "opkg remove: the binary is gone" test ! -e "$R/usr/sbin/tarpitd"
	check "opkg remove: the edited INI stays" cmp "$R/etc/tarpitd/tarpitd.ini" "$tmp/edited.ini"
	check "opkg remove: the edited recipients stay" test -f "$R/etc/tarpitd/recipients"
	if [ -f "$nossl_ipk" ]; then
		if opkg install "$nossl_ipk" > "$tmp/nossl.out" 2>&1; then ok; else
			bad "opkg: tarpitd-nossl alone: $(cat "$tmp/nossl.out")"; fi
		check "opkg: tarpitd-nossl installs its binary" cmp "$R/usr/sbin/tarpitd" "$out/notls/tarpitd"
	fi
fi

# --- 4. apk ------------------------------------------------------------------------------------
if [ ! -x "$APK" ]; then
	skipped "apk cases: no apk (APK=, or TARPITD_SHARED=$shared with tools/build-pkg-tools.sh)"
elif [ ! -f "$apk" ]; then
	bad "no $apk (make firmware BOARD=$board with apk-tools at hand)"
elif [ -n "$why" ]; then
	skipped "apk cases: $why"
else
	echo "test-package: $apk"
	"$APK" adbdump "$apk" > "$tmp/adbdump" 2>&1
	for kv in "name: tarpitd" "version: ${version}-r1" "arch: $arch" "license: $lic" "origin: tarpitd" \
		"maintainer: $(sed -n 's/^PKG_MAINTAINER:=//p' "$feed")" "url: $(sed -n 's/^ *URL:=//p' "$feed")" "- libc"; do
		check "apk info: $kv" grep -qxF -e "  $kv" -e "    $kv" "$tmp/adbdump"
	done
	check "apk info: description" grep -q '^  description:' "$tmp/adbdump"
	for s in post-install post-upgrade pre-deinstall; do
		check "apk script: $s" grep -q "^  $s:" "$tmp/adbdump"
	done
	R=$tmp/r-apk
	mkroot "$R"
	e=$tmp/empty; mkdir -p "$e"
	"$APK" mkpkg --info name:libc --info version:1-r0 --info "arch:$arch" --info "description:base system" \
		--files "$e" --output "$tmp/libc.apk" >/dev/null 2>&1
	apk_() { "$APK" --root "$R" --allow-untrusted --no-network "$@"; }
	apk_ add --initdb --arch "$arch" "$tmp/libc.apk" > "$tmp/apk.out" 2>&1 || bad "apk: base root: $(cat "$tmp/apk.out")"
	if apk_ add "$apk" > "$tmp/apk-router.out" 2>&1; then ok; else bad "apk add: $(cat "$tmp/apk-router.out")"; fi
	for f in /usr/sbin/tarpitd /etc/init.d/tarpitd /etc/config/tarpitd /etc/tarpitd/tarpitd.ini \
		/etc/tarpitd/recipients /lib/upgrade/keep.d/tarpitd /usr/share/nftables.d/table-post/tarpitd-ban.nft \
		/lib/apk/packages/tarpitd.list /lib/apk/packages/tarpitd.conffiles \
		/lib/apk/packages/tarpitd.conffiles_static /lib/apk/packages/tarpitd.rusers; do
		check "apk: installed $f" test -f "$R$f"
	done
	check "apk: /usr/sbin/tarpitd 0755" test "$(stat -c %a "$R/usr/sbin/tarpitd")" = 755
	check "apk: /usr/sbin/tarpitd root-owned" test "$(stat -c %u:%g "$R/usr/sbin/tarpitd")" = 0:0
	check "apk: .conffiles as the .ipk's" cmp "$R/lib/apk/packages/tarpitd.conffiles" "$x/control/conffiles"
	check "apk: .conffiles_static checksums" sh -c "cd '$R' && awk '{print \$2 \"  .\" \$1}' lib/apk/packages/tarpitd.conffiles_static | sha256sum -c"
	check "apk: the binary is the .ipk's" cmp "$R/usr/sbin/tarpitd" "$out/tarpitd"
	# apk ran post-install chrooted: as on a running router.
	service_checks apk "$tmp/apk-router.out"

	inroot /etc/init.d/tarpitd disable
	cp "$R/etc/tarpitd/tarpitd.ini" "$tmp/edited.ini"
	if [ ! -f "$tmp/up/tarpitd-${version}-r2.apk" ]; then
		mkdir -p "$tmp/up"
		PKG_RELEASE=2 sh "$root/firmware/mkipk.sh" "$tmp/up" "$arch" "$version" "$out/tarpitd" \
			"$maxconn" "$sessions" "$table" tarpitd > "$tmp/up.out" 2>&1 || bad "mkipk.sh for the upgrade: $(cat "$tmp/up.out")"
	fi
	if apk_ add "$tmp/up/tarpitd-${version}-r2.apk" > "$tmp/apk.out" 2>&1; then ok; else
		bad "apk upgrade: $(cat "$tmp/apk.out")"; fi
	check "apk upgrade: ${version}-r2 installed" sh -c "'$APK' --root '$R' info -v 2>/dev/null | grep -qx 'tarpitd-${version}-r2'"
	check "apk upgrade: the edited INI is kept" cmp "$R/etc/tarpitd/tarpitd.ini" "$tmp/edited.ini"
	check "apk upgrade: the new one is tarpitd.ini.apk-new" cmp "$R/etc/tarpitd/tarpitd.ini.apk-new" "$etc/tarpitd.ini"
	check "apk upgrade: post-upgrade does not re-enable" test ! -e "$R/etc/rc.d/S90tarpitd"
	if [ -f "$nossl_apk" ]; then
		apk_ add "$nossl_apk" > "$tmp/nossl.out" 2>&1
		check "apk: tarpitd-nossl over tarpitd refused" sh -c "! '$APK' --root '$R' info 2>/dev/null | grep -qx tarpitd-nossl"
		check "apk: and tarpitd stays" cmp "$R/usr/sbin/tarpitd" "$out/tarpitd"
		grep -i -A2 conflict "$tmp/nossl.out" | sed 's/^/  apk: /'
	else
		skipped "apk: tarpitd-nossl cases: no $nossl_apk (make firmware BOARD=$board TLS=0)"
	fi
	inroot /etc/init.d/tarpitd enable
	if apk_ del tarpitd > "$tmp/apk.out" 2>&1; then ok; else bad "apk del: $(cat "$tmp/apk.out")"; fi
	check "apk del: pre-deinstall disabled the service" test ! -e "$R/etc/rc.d/S90tarpitd"
	check "apk del: the binary is gone" test ! -e "$R/usr/sbin/tarpitd"
	check "apk del: the edited INI stays" cmp "$R/etc/tarpitd/tarpitd.ini" "$tmp/edited.ini"
	if [ -f "$nossl_apk" ]; then
		if apk_ add "$nossl_apk" > "$tmp/nossl.out" 2>&1; then ok; else
			bad "apk: tarpitd-nossl alone: $(cat "$tmp/nossl.out")"; fi
		check "apk: tarpitd-nossl installs its binary" cmp "$R/usr/sbin/tarpitd" "$out/notls/tarpitd"
	fi
fi

# --- the TLS=0 package's own fields ----------------------------------------------------------------
if [ -f "$nossl_ipk" ]; then
	n=$tmp/n; mkdir -p "$n/outer" "$n/control"
	tar xzf "$nossl_ipk" -C "$n/outer" && tar xzf "$n/outer/control.tar.gz" -C "$n/control"
	for line in "Package: tarpitd-nossl" "Provides: tarpitd" "Conflicts: tarpitd" "Architecture: $arch"; do
		check "nossl: $line" grep -qx "$line" "$n/control/control"
	done
	check "nossl: conffiles" cmp "$n/control/conffiles" "$x/control/conffiles"
fi

echo "test-package: $pass passed, $fail failed${skip:+, $skip skipped}"
[ "$fail" = 0 ]
