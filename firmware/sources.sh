#!/bin/sh
# Fetches the Debian source packages the firmware build compiles for the
# target, once, into build/src (never committed):
#   mbedtls3 mbedTLS 3.6 LTS, the default: MBEDTLS_SRC (a 3.6 tree, used as
#            it is) or the release tarball MBEDTLS_TARBALL (default
#            ../shared/vendor/mbedtls-3.6.6-lib.tar.xz beside the repo),
#            unpacked into build/src/vendor-<name>/; exit 3 when neither
#            is there (build.sh then falls back to mbedtls);
#   mbedtls  Debian's 2.28, the fallback (Debian's static libmbedtls.a for
#            other architectures is built with fortify and does not link
#            against musl);
#   musl     and glibc's soft-fp sources, for the soft-float boards
#            (Debian's musl for mipsel is hard-float).
# usage: sources.sh SRC_DIR mbedtls3|mbedtls|musl|softfp   (prints the source path)
set -eu
src=$1 what=$2
mkdir -p "$src"
src=$(cd "$src" && pwd)

fetch() { # package: apt-get source, with one retry for a mirror hiccup
	( cd "$src" && { apt-get source -q "$1" >"$src/$1.log" 2>&1 ||
		{ sleep 20; apt-get source -q "$1" >"$src/$1.log" 2>&1; }; } ) || {
		cat "$src/$1.log" >&2
		echo "firmware: apt-get source $1 failed (is there a deb-src entry? run firmware/prereqs.sh)" >&2
		exit 1
	}
}

case $what in
mbedtls3)
	if [ -n "${MBEDTLS_SRC:-}" ]; then
		[ -f "$MBEDTLS_SRC/include/mbedtls/build_info.h" ] || {
			echo "firmware: MBEDTLS_SRC=$MBEDTLS_SRC is not an mbedTLS 3.x tree" >&2; exit 2; }
		(cd "$MBEDTLS_SRC" && pwd)
		exit 0
	fi
	root=$(cd "$(dirname "$0")/.." && pwd)
	tarball=${MBEDTLS_TARBALL:-$root/../shared/vendor/mbedtls-3.6.6-lib.tar.xz}
	[ -f "$tarball" ] || exit 3
	name=$(basename "$tarball" | sed 's/\.tar\..*$//; s/-lib$//')
	d="$src/vendor-$name"
	if [ ! -f "$d/.done" ]; then
		rm -rf "$d"
		mkdir -p "$d"
		tar -xf "$tarball" -C "$d" --strip-components=1 || {
			echo "firmware: cannot unpack $tarball" >&2; exit 1; }
		echo "$tarball" > "$d/.done"
	fi
	echo "$d"
	;;
mbedtls|musl)
	d=$(ls -d "$src/$what"-[0-9]*/ 2>/dev/null | head -n 1)
	if [ -z "$d" ]; then
		fetch "$what"
		d=$(ls -d "$src/$what"-[0-9]*/ | head -n 1)
	fi
	echo "${d%/}"
	;;
softfp)
	# Only soft-fp/, longlong.h and the MIPS sfp-machine.h are needed from
	# the 19 MB glibc tarball; the tarball itself is dropped afterwards.
	d="$src/glibc-softfp"
	if [ ! -f "$d/.done" ]; then
		rm -rf "$d" "$src/glibc-dl"
		mkdir -p "$src/glibc-dl"
		( cd "$src/glibc-dl" && { apt-get source -q --download-only glibc >"$src/glibc.log" 2>&1 ||
			{ sleep 20; apt-get source -q --download-only glibc >"$src/glibc.log" 2>&1; }; } ) || {
			cat "$src/glibc.log" >&2
			echo "firmware: apt-get source glibc failed (is there a deb-src entry? run firmware/prereqs.sh)" >&2
			exit 1
		}
		tarball=$(ls "$src"/glibc-dl/glibc_*.orig.tar.* | head -n 1)
		top=$(tar -tf "$tarball" | head -n 1 | cut -d/ -f1)
		mkdir -p "$d"
		tar -xf "$tarball" -C "$d" --strip-components=1 \
			"$top/soft-fp" "$top/stdlib/longlong.h" "$top/sysdeps/mips/mips32/sfp-machine.h"
		basename "$tarball" > "$d/.done"
		rm -rf "$src/glibc-dl"
	fi
	echo "$d"
	;;
*)
	echo "sources.sh: unknown source $what" >&2
	exit 2
	;;
esac
