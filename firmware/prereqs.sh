#!/bin/sh
# Installs what `make firmware` / `make test-firmware` need for one board,
# when missing: the Debian cross toolchain, foreign-architecture libraries
# (dpkg --add-architecture), qemu-user-static, and a deb-src entry so that
# `apt-get source` can fetch mbedTLS (and musl, glibc for soft-float).
# As root it runs apt-get; otherwise through sudo if available; else it
# prints the one command that does it and fails.
#
# usage: prereqs.sh DEB_ARCH TRIPLET LIBC QEMU_CMD
#   LIBC: musl-debian | musl-softfloat;  QEMU_CMD may be empty.
set -u
arch=$1 triplet=$2 libc=$3 qemu=${4:-}

native=$(dpkg --print-architecture)
pkgs="make file binutils xz-utils dpkg-dev python3 python3-pytest openssl swaks"
# The board's libraries are named with their architecture even when it is
# the native one: dpkg-query reports a bare name as installed when any
# architecture's instance is, so after an s390x build "musl-dev" would be
# "installed" (musl-dev:s390x) and the x86-64 build would miss it.
q=":$arch"
if [ "$arch" = "$native" ]; then
	pkgs="$pkgs gcc libc6-dev$q libinih-dev$q"
else
	pkgs="$pkgs gcc-$triplet libinih-dev$q"
fi
[ "$libc" = musl-debian ] && pkgs="$pkgs musl-dev$q"
[ -n "$qemu" ] && pkgs="$pkgs qemu-user-static"

if [ "$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null 2>&1; then SUDO="sudo -n"; else SUDO=none; fi

# deb-src lines mirroring the enabled Debian "deb" entries, same mirror,
# suites and keys: apt-get source needs them and a fresh Debian has none.
debsrc_file=/etc/apt/sources.list.d/tarpitd-deb-src.sources
debsrc_list=/etc/apt/sources.list.d/tarpitd-deb-src.list
# Only needed while build/src (the cache of firmware/sources.sh) lacks a
# source this board needs.
need_debsrc=0
have_src=1
ls -d build/src/mbedtls-[0-9]*/ >/dev/null 2>&1 || have_src=0
if [ "$libc" = musl-softfloat ]; then
	ls -d build/src/musl-[0-9]*/ >/dev/null 2>&1 || have_src=0
	[ -f build/src/glibc-softfp/.done ] || have_src=0
fi
[ "$have_src" = 1 ] || apt-cache showsrc mbedtls >/dev/null 2>&1 || need_debsrc=1

missing=""
[ "$arch" != "$native" ] && ! dpkg --print-foreign-architectures | grep -qx "$arch" && missing="$missing (architecture $arch)"
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && [ "$need_debsrc" = 0 ] && exit 0

if [ "$SUDO" = none ]; then
	echo "firmware: missing:$missing; run as root: sh firmware/prereqs.sh $*" >&2
	exit 1
fi
[ -n "$missing" ] && echo "firmware: installing:$missing" >&2
export DEBIAN_FRONTEND=noninteractive

if [ "$need_debsrc" = 1 ] && [ ! -e "$debsrc_file" ] && [ ! -e "$debsrc_list" ]; then
	tmp=$(mktemp)
	# deb822 files: copy each enabled stanza of types "deb" whose URI is
	# a Debian archive (…/debian or …/debian-security), as deb-src.
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] || continue
		awk 'BEGIN { RS = ""; ORS = "\n\n" }
		     /(^|\n)[Ee]nabled:[ \t]*no/ { next }
		     /(^|\n)Types:[^\n]*(^|[ \t])deb([ \t]|\n|$)/ && /(^|\n)URIs:[^\n]*\/debian(-security)?\/?([ \t]|\n|$)/ {
			n = split($0, l, "\n"); out = ""
			for (i = 1; i <= n; i++) {
				if (l[i] ~ /^#/) continue
				if (l[i] ~ /^Types:/) l[i] = "Types: deb-src"
				out = out l[i] "\n"
			}
			printf "%s\n", out
		     }' "$f" >> "$tmp"
	done
	if [ -s "$tmp" ]; then
		$SUDO cp "$tmp" "$debsrc_file" && $SUDO chmod 644 "$debsrc_file"
	else
		# One-line format (/etc/apt/sources.list).
		for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
			[ -f "$f" ] || continue
			grep -E '^deb[ \t]+(\[[^]]*\][ \t]+)?[a-z]+://[^ \t]*/debian(-security)?/?[ \t]' "$f" |
				sed 's/^deb\([ \t]\)/deb-src\1/'
		done > "$tmp"
		[ -s "$tmp" ] && $SUDO cp "$tmp" "$debsrc_list" && $SUDO chmod 644 "$debsrc_list"
	fi
	rm -f "$tmp"
fi

if [ "$arch" != "$native" ] && ! dpkg --print-foreign-architectures | grep -qx "$arch"; then
	$SUDO dpkg --add-architecture "$arch" || exit 1
fi

# The mirror is sometimes caught mid-sync for one architecture ("File has
# unexpected size ... Mirror sync in progress?"): retry a few times, then
# go on with the lists apt kept, which usually still install.
update() {
	i=1
	while :; do
		out=$($SUDO apt-get update 2>&1) && return 0
		bad=$(printf '%s\n' "$out" | grep -E '^(E|W): Failed to fetch' | sed 's/^.*dists\///; s/ .*//' | sort -u | tr '\n' ' ')
		if [ "$i" -ge 3 ]; then
			echo "firmware: apt-get update still fails for: ${bad:-?} (mirror out of sync?); going on with the package lists apt has" >&2
			return 1
		fi
		echo "firmware: apt-get update failed for: ${bad:-?}; mirror sync in progress? retrying in 20 s ($i/3)" >&2
		i=$((i + 1))
		sleep 20
	done
}
update

install_pkgs() { $SUDO apt-get install -y -q --no-install-recommends $pkgs >/tmp/tarpitd-apt.$$ 2>&1; }
if ! install_pkgs; then
	echo "firmware: apt-get install failed; updating the lists once more and retrying" >&2
	sleep 30
	update
	if ! install_pkgs; then
		tail -20 /tmp/tarpitd-apt.$$ >&2
		rm -f /tmp/tarpitd-apt.$$
		echo "firmware: could not install:$missing. If the errors above name one architecture (Packages for $arch)," >&2
		echo "firmware: the Debian mirror is out of sync for it: retry in a few minutes, or run: apt-get update && apt-get install -y $pkgs" >&2
		exit 1
	fi
fi
rm -f /tmp/tarpitd-apt.$$
[ "$have_src" = 1 ] || apt-cache showsrc mbedtls >/dev/null 2>&1 || {
	echo "firmware: no deb-src entry for the Debian mirror; add one (deb-src with the same URI/suites as your 'deb' line) and run apt-get update" >&2
	exit 1
}
exit 0
