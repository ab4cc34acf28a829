#!/bin/sh
# Builds an opkg package (.ipk) from a static tarpitd binary with Debian's
# ar, tar and gzip: an ar archive of debian-binary ("2.0"),
# control.tar.gz and data.tar.gz, in that order, as opkg reads it.
#
# usage: mkipk.sh OUT_DIR PKG_ARCH VERSION BINARY MAX_CONNECTIONS TLS_MAX_SESSIONS HARVEST_TABLE_SIZE [PACKAGE]
# Writes OUT_DIR/PACKAGE_VERSION-1_PKG_ARCH.ipk and prints its path.
# PACKAGE is tarpitd, or tarpitd-nossl for a binary built with TLS=0 (it
# provides and replaces tarpitd, as OpenWrt's -nossl variants do).
set -eu
out=$1 arch=$2 version=$3 bin=$4 maxconn=$5 sessions=$6 table=$7 pkg=${8:-tarpitd}
root=$(cd "$(dirname "$0")/.." && pwd)
release=1
ipk="$out/${pkg}_${version}-${release}_${arch}.ipk"
work="$out/ipk"
rm -rf "$work"
mkdir -p "$work/control" "$work/data/usr/sbin" "$work/data/etc/init.d" "$work/data/etc/tarpitd"

install -m 0755 "$bin" "$work/data/usr/sbin/tarpitd"
install -m 0755 "$root/firmware/openwrt/tarpitd/files/tarpitd.init" "$work/data/etc/init.d/tarpitd"
sh "$root/firmware/mkini.sh" "$root/config/tarpitd.ini" "$maxconn" "$sessions" "$table" \
	> "$work/data/etc/tarpitd/tarpitd.ini"
chmod 0644 "$work/data/etc/tarpitd/tarpitd.ini"
install -m 0644 "$root/config/recipients.example" "$work/data/etc/tarpitd/recipients"

size=$(du -sk "$work/data" | cut -f1)
variant=""
[ "$pkg" = tarpitd ] || variant="Provides: tarpitd
Conflicts: tarpitd
"
cat > "$work/control/control" <<EOT
Package: $pkg
Version: ${version}-${release}
Depends: libc
${variant}Source: tarpitd
Section: mail
Architecture: $arch
Installed-Size: $((size * 1024))
Description: SMTP tarpit for routers: accepts mail for the listed recipients
 and slows down address harvesters (one static binary$([ "$pkg" = tarpitd ] && echo ", mbedTLS inside" || echo ", no STARTTLS")).
EOT
printf '/etc/tarpitd/tarpitd.ini\n/etc/tarpitd/recipients\n' > "$work/control/conffiles"
# As OpenWrt's default_postinst/default_prerm do: on a running router
# enable and start the service; inside an image build (IPKG_INSTROOT set)
# the ImageBuilder enables it itself.
cat > "$work/control/postinst" <<'EOT'
#!/bin/sh
[ -n "${IPKG_INSTROOT}" ] && exit 0
/etc/init.d/tarpitd enable
/etc/init.d/tarpitd start
exit 0
EOT
cat > "$work/control/prerm" <<'EOT'
#!/bin/sh
[ -n "${IPKG_INSTROOT}" ] && exit 0
/etc/init.d/tarpitd stop
/etc/init.d/tarpitd disable
exit 0
EOT
chmod 0755 "$work/control/postinst" "$work/control/prerm"

# Reproducible members: root-owned, fixed order and time.
mtime=${SOURCE_DATE_EPOCH:-$(git -C "$root" log -1 --format=%ct 2>/dev/null || echo 0)}
tarit() { # dir out.tar.gz
	( cd "$1" && tar --format=gnu --sort=name --owner=0 --group=0 --numeric-owner \
		--mtime="@$mtime" -cf - . ) | gzip -9n > "$2"
}
tarit "$work/control" "$work/control.tar.gz"
tarit "$work/data" "$work/data.tar.gz"
echo "2.0" > "$work/debian-binary"
rm -f "$ipk"
( cd "$work" && ar rc "$ipk" debian-binary control.tar.gz data.tar.gz )
echo "firmware: $ipk"
