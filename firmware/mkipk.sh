#!/bin/sh
# Builds the static packages of one board from a static tarpitd binary:
# the .ipk for opkg (OpenWrt up to 24.10), here, with tar and gzip, in the
# format OpenWrt's scripts/ipkg-build writes and opkg-lede reads (a gzip'd
# tar of ./debian-binary, ./data.tar.gz, ./control.tar.gz; opkg-lede has
# no ar reader), then the .apk (OpenWrt 25.12 and later) with
# firmware/mkapk.sh from the same tree.
#
# usage: mkipk.sh OUT_DIR PKG_ARCH VERSION BINARY MAX_CONNECTIONS TLS_MAX_SESSIONS HARVEST_TABLE_SIZE [PACKAGE]
# Writes OUT_DIR/PACKAGE_VERSION-1_PKG_ARCH.ipk (and PACKAGE-VERSION-r1.apk)
# and prints their paths. PACKAGE is tarpitd, or tarpitd-nossl for a binary
# built with TLS=0 (it provides tarpitd and conflicts with it, as OpenWrt's
# -nossl variants do).
set -eu
out=$1 arch=$2 version=$3 bin=$4 maxconn=$5 sessions=$6 table=$7 pkg=${8:-tarpitd}
root=$(cd "$(dirname "$0")/.." && pwd)
release=${PKG_RELEASE:-1}
ipk="$out/${pkg}_${version}-${release}_${arch}.ipk"
work="$out/pkg"
files=$root/firmware/openwrt/tarpitd/files

# What the feed package Makefile says about the package (one source).
feed=$root/firmware/openwrt/tarpitd/Makefile
feedvar() { sed -n "s/^$1:=//p" "$feed" | head -n 1; }
license=$(feedvar PKG_LICENSE) license_files=$(feedvar PKG_LICENSE_FILES)
maintainer=$(feedvar PKG_MAINTAINER) url=$(sed -n 's/^ *URL:=//p' "$feed" | head -n 1)
userid=$(sed -n 's/^ *USERID:=//p' "$feed" | head -n 1)
sed -n 's/^TARPITD_USERID=//p' "$root/firmware/pkg/postinst" | grep -qx "$userid" ||
	{ echo "mkipk.sh: USERID in $feed and TARPITD_USERID in firmware/pkg/postinst differ" >&2; exit 1; }

# --- the installed tree (also the .apk's) ------------------------------------------
rm -rf "$work"
d=$work/data
mkdir -p "$work/CONTROL" "$d/usr/sbin" "$d/etc/init.d" "$d/etc/tarpitd" "$d/etc/config" \
	"$d/etc/uci-defaults" "$d/lib/upgrade/keep.d" "$d/usr/share/nftables.d/table-post" \
	"$d/usr/share/doc/$pkg"
install -m 0755 "$bin" "$d/usr/sbin/tarpitd"
install -m 0755 "$files/tarpitd.init" "$d/etc/init.d/tarpitd"
install -m 0644 "$files/tarpitd.config" "$d/etc/config/tarpitd"
install -m 0755 "$files/tarpitd.uci-defaults" "$d/etc/uci-defaults/90-tarpitd-firewall"
install -m 0644 "$files/tarpitd.keep" "$d/lib/upgrade/keep.d/tarpitd"
install -m 0644 "$root/config/tarpitd-ban.nft" "$d/usr/share/nftables.d/table-post/tarpitd-ban.nft"
install -m 0644 "$root/LICENSE" "$d/usr/share/doc/$pkg/LICENSE"
# The daemon re-reads its files on SIGHUP after it has dropped privileges
# to the tarpitd user: the shipped ones are world-readable (nothing secret);
# a users file or key the operator adds is root:tarpitd 0640
# (docs/firmware.md).
sh "$root/firmware/mkini.sh" "$root/config/tarpitd.ini" "$maxconn" "$sessions" "$table" \
	> "$d/etc/tarpitd/tarpitd.ini"
chmod 0644 "$d/etc/tarpitd/tarpitd.ini"
install -m 0644 "$root/config/recipients.example" "$d/etc/tarpitd/recipients"
chmod 0755 "$d/etc/tarpitd"

# --- control ---------------------------------------------------------------------------
variant=""
[ "$pkg" = tarpitd ] || variant="Conflicts: tarpitd
Provides: tarpitd
"
desc="SMTP tarpit for routers: accepts mail for the listed recipients and slows down
 address harvesters and spammers (one static binary$([ "$pkg" = tarpitd ] && echo ", mbedTLS inside" || echo ", no STARTTLS"))."
# Field order and Installed-Size as include/package-pack.mk and
# scripts/ipkg-build write them.
cat > "$work/CONTROL/control" <<EOT
Package: $pkg
Version: ${version}-${release}
Depends: libc
${variant}Source: firmware/openwrt/tarpitd
SourceName: tarpitd
License: $license
LicenseFiles: $license_files
Section: mail
Require-User: $userid
URL: $url
Maintainer: $maintainer
Architecture: $arch
Installed-Size: 0
Description: $desc
EOT
# Listed only when the package ships them (as ipkg-build resolves them);
# the users file, certificate and key the operator adds are kept across
# sysupgrade by /lib/upgrade/keep.d/tarpitd.
printf '%s\n' /etc/config/tarpitd /etc/tarpitd/recipients /etc/tarpitd/tarpitd.ini > "$work/CONTROL/conffiles"
install -m 0755 "$root/firmware/pkg/postinst" "$work/CONTROL/postinst"
install -m 0755 "$root/firmware/pkg/prerm" "$work/CONTROL/prerm"
chmod 0644 "$work/CONTROL/control" "$work/CONTROL/conffiles"

# --- the .ipk, as ipkg-build writes it ----------------------------------------------------
# Reproducible: root-owned, sorted, one fixed time (SOURCE_DATE_EPOCH or
# the last commit's).
mtime=${SOURCE_DATE_EPOCH:-$(git -C "$root" log -1 --format=%ct 2>/dev/null || echo 0)}
tarit() { # dir out.tar.gz [members...]
	dir=$1 o=$2; shift 2
	[ $# -gt 0 ] || set -- .
	( cd "$dir" && tar --format=gnu --sort=name --owner=0 --group=0 --numeric-owner \
		--mtime="@$mtime" -cf - "$@" ) | gzip -9n > "$o"
}
mkdir -p "$work/ipk"
tarit "$d" "$work/ipk/data.tar.gz"
# Installed-Size: the size of the uncompressed data tar, as ipkg-build
# computes it (bytes).
isize=$(gzip -dc "$work/ipk/data.tar.gz" | wc -c | tr -d ' ')
sed -i "s/^Installed-Size: .*/Installed-Size: $isize/" "$work/CONTROL/control"
tarit "$work/CONTROL" "$work/ipk/control.tar.gz"
echo "2.0" > "$work/ipk/debian-binary"
rm -f "$ipk"
tarit "$work/ipk" "$ipk" ./debian-binary ./data.tar.gz ./control.tar.gz
echo "firmware: $ipk"

# --- the .apk ----------------------------------------------------------------------------------
sh "$root/firmware/mkapk.sh" "$out" "$arch" "$version" "$release" "$pkg"
