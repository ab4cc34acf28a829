#!/bin/sh
# Builds the .apk (apk-tools 3: OpenWrt 25.12 and later) of one board from
# the tree firmware/mkipk.sh staged in OUT_DIR/pkg, with the real
# `apk mkpkg`, the way OpenWrt's include/package-pack.mk does: package
# info (name, version VERSION-rRELEASE, arch, license, origin, url,
# maintainer, description, depends, provides), the scripts post-install,
# post-upgrade (the same with PKG_UPGRADE=1) and pre-deinstall, and in
# lib/apk/packages/ the package's file list, conffiles (with their
# sha256 in .conffiles_static, which sysupgrade compares) and Require-User
# (.rusers). apk itself keeps an edited file under /etc on upgrade (a
# protected path) and writes the new one beside it as FILE.apk-new.
#
# usage: mkapk.sh OUT_DIR PKG_ARCH VERSION RELEASE PACKAGE
# Writes OUT_DIR/PACKAGE-VERSION-rRELEASE.apk and prints its path.
#
# apk comes from APK=/path/to/apk, else build/pkg-tools/bin/apk, else it is
# built there from apk-tools in $TARPITD_SHARED/vendor (default ../shared
# next to the repository) with $TARPITD_SHARED/tools/build-pkg-tools.sh.
# With none of them the .apk is skipped, saying so (exit 0): the .ipk
# needs nothing but tar and gzip.
set -eu
out=$1 arch=$2 version=$3 release=$4 pkg=$5
root=$(cd "$(dirname "$0")/.." && pwd)
work=$out/pkg
apkfile="$out/${pkg}-${version}-r${release}.apk"

if [ -z "${APK:-}" ]; then
	APK=$root/build/pkg-tools/bin/apk
	shared=${TARPITD_SHARED:-$root/../shared}
	if [ ! -x "$APK" ] && [ -f "$shared/tools/build-pkg-tools.sh" ]; then
		echo "firmware: building opkg and apk from $shared/vendor into build/pkg-tools"
		sh "$shared/tools/build-pkg-tools.sh" "$root/build/pkg-tools" >"$root/build/pkg-tools.log" 2>&1 ||
			{ tail -20 "$root/build/pkg-tools.log" >&2; echo "firmware: building apk failed" >&2; exit 1; }
	fi
	if [ ! -x "$APK" ]; then
		echo "firmware: no .apk: no apk-tools (set APK=/path/to/apk, or TARPITD_SHARED to the" \
			"directory holding vendor/apk-tools-*.tar.gz and tools/build-pkg-tools.sh; looked in $shared)" >&2
		exit 0
	fi
fi

feed=$root/firmware/openwrt/tarpitd/Makefile
feedvar() { sed -n "s/^$1:=//p" "$feed" | head -n 1; }
c=$work/CONTROL/control
field() { sed -n "s/^$1: //p" "$c"; }
desc=$(sed -n '/^Description: /,$p' "$c" | sed -e 's/^Description: //' -e 's/^ //' | tr '\n' ' ' | sed 's/ $//')

a=$work/apk
rm -rf "$a"
mkdir -p "$a/scripts"
cp -a "$work/data" "$a/files"
meta=$a/files/lib/apk/packages
mkdir -p "$meta"
field Require-User > "$meta/$pkg.rusers"
( cd "$a/files" && find . \( -type f -o -type l \) | sed 's|^\.||' | LC_ALL=C sort ) > "$a/list"
mv "$a/list" "$meta/$pkg.list"
cp "$work/CONTROL/conffiles" "$meta/$pkg.conffiles"
while read -r f; do
	echo "$f $(sha256sum < "$a/files$f" | cut -d' ' -f1)"
done < "$meta/$pkg.conffiles" > "$meta/$pkg.conffiles_static"
chmod 0644 "$meta"/*

cp "$work/CONTROL/postinst" "$a/scripts/post-install"
{ echo '#!/bin/sh'; echo 'export PKG_UPGRADE=1'; sed '1{/^#!/d}' "$work/CONTROL/postinst"; } > "$a/scripts/post-upgrade"
cp "$work/CONTROL/prerm" "$a/scripts/pre-deinstall"

# Reproducible file times; owners are root's (fakeroot when not root).
mtime=${SOURCE_DATE_EPOCH:-$(git -C "$root" log -1 --format=%ct 2>/dev/null || echo 0)}
find "$a/files" -exec touch -h -d "@$mtime" {} +
asroot=""
[ "$(id -u)" = 0 ] || asroot=$(command -v fakeroot || true)

set -- --info "name:$pkg" --info "version:${version}-r${release}" \
	--info "description:$desc" --info "arch:$arch" \
	--info "license:$(feedvar PKG_LICENSE)" --info "origin:tarpitd" \
	--info "url:$(field URL)" --info "maintainer:$(feedvar PKG_MAINTAINER)" \
	--info "depends:$(field Depends | tr -d ',')"
# tarpitd-nossl: a versioned provide of tarpitd, as OpenWrt's
# FormatProvides writes it: apk then lets only one of the two be installed
# (what Conflicts says in the .ipk).
[ "$pkg" = tarpitd ] || set -- "$@" --info "provides:tarpitd=${version}-r${release}"
rm -f "$apkfile"
$asroot "$APK" mkpkg "$@" \
	--script "post-install:$a/scripts/post-install" \
	--script "post-upgrade:$a/scripts/post-upgrade" \
	--script "pre-deinstall:$a/scripts/pre-deinstall" \
	--files "$a/files" --output "$apkfile"
echo "firmware: $apkfile"
