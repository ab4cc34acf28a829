#!/bin/sh
# Smoke test of the OpenWrt feed package Makefile without an SDK (make
# test-feed): a stand-in TOPDIR provides the few rules.mk/package.mk
# variables and macros the package uses, with their OpenWrt meaning
# (PKG_BUILD_DIR, INSTALL_*, MAKE_VARS in the environment, MAKE_FLAGS on
# the command line, Build/Compile/Default, BuildPackage running Prepare,
# Compile and install into a root). The host compiler stands in for the
# target's, linking Debian's shared mbedTLS and libinih as the SDK would
# link OpenWrt's. Checks the installed files, the conffiles and the
# board sizing picked from board/$(BOARD)-$(SUBTARGET).mk, and the fields
# upstreaming needs: PKG_LICENSE (SPDX, its file present), PKG_MAINTAINER,
# URL, USERID (the same as the static packages'), the git variant.
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }
check() { d=$1; shift; if "$@" >/dev/null 2>&1; then ok; else bad "$d"; fi; }

tmp=$(mktemp -d)
trap '[ -n "${KEEP:-}" ] || rm -rf "$tmp"' EXIT INT TERM
top=$tmp/sdk
mkdir -p "$top/include" "$top/build_dir" "$top/ipkg"
cat > "$top/rules.mk" <<'EOF'
INCLUDE_DIR := $(TOPDIR)/include
BUILD_DIR := $(TOPDIR)/build_dir
BOARD := ath79
SUBTARGET := generic
TARGET_CC := gcc
TARGET_CFLAGS := -Os -pipe
TARGET_LDFLAGS :=
EOF
cat > "$top/include/package.mk" <<'EOF'
PKG_BUILD_DIR := $(BUILD_DIR)/$(PKG_NAME)-$(PKG_VERSION)
INSTALL_DIR := install -d -m0755
INSTALL_BIN := install -m0755
INSTALL_CONF := install -m0600
INSTALL_DATA := install -m0644
CP := cp -fpR
MAKE_VARS = CFLAGS="$(TARGET_CFLAGS)" CXXFLAGS="$(TARGET_CFLAGS)" LDFLAGS="$(TARGET_LDFLAGS)"
MAKE_FLAGS = CC="$(TARGET_CC)" CROSS="" ARCH="mips"
define Build/Compile/Default
	+$(MAKE_VARS) $(MAKE) -C $(PKG_BUILD_DIR) $(MAKE_FLAGS) $(1)
endef
define BuildPackage
.PHONY: compile
compile:
	$$(call Build/Prepare)
	$$(call Build/Compile)
	$$(call Package/$(1)/install,$(TOPDIR)/ipkg/$(1))
	printf '$$(subst $$(newline),\n,$$(Package/$(1)/conffiles))\n' > $(TOPDIR)/ipkg/conffiles
	printf '%s\n' 'SECTION=$$(SECTION) CATEGORY=$$(CATEGORY) DEPENDS=$$(DEPENDS)' > $(TOPDIR)/ipkg/info
	printf '%s\n' 'PKG_LICENSE=$$(PKG_LICENSE)' 'PKG_LICENSE_FILES=$$(PKG_LICENSE_FILES)' \
		'PKG_MAINTAINER=$$(PKG_MAINTAINER)' 'URL=$$(URL)' 'USERID=$$(USERID)' > $(TOPDIR)/ipkg/fields
endef
define newline


endef
EOF
# Package/<name> defines SECTION etc.; the real package.mk evaluates it.
pkg=$tmp/feed/tarpitd
mkdir -p "$tmp/feed"
cp -R "$root/firmware/openwrt/tarpitd" "$pkg"
printf '\n$(eval $(Package/tarpitd))\n' >> "$pkg/Makefile"

if make -C "$pkg" TOPDIR="$top" TARPITD_SRC="$root" compile > "$tmp/build.log" 2>&1; then ok; else
	tail -30 "$tmp/build.log" >&2; bad "feed package build"; fi
r=$top/ipkg/tarpitd
check "installs /usr/sbin/tarpitd" test -x "$r/usr/sbin/tarpitd"
check "the binary runs" "$r/usr/sbin/tarpitd" --version
check "installs /etc/init.d/tarpitd" test -x "$r/etc/init.d/tarpitd"
check "installs /etc/tarpitd/tarpitd.ini" test -f "$r/etc/tarpitd/tarpitd.ini"
check "installs /etc/tarpitd/recipients" test -f "$r/etc/tarpitd/recipients"
want=$(sed -n 's/^BOARD_MAX_CONNECTIONS *:= *//p' "$root/board/ath79-generic.mk")
check "ath79-generic sizing in tarpitd.ini (max_connections = $want)" \
	grep -qx "max_connections = $want" "$r/etc/tarpitd/tarpitd.ini"
want=$(sed -n 's/^BOARD_HARVEST_TABLE_SIZE *:= *//p' "$root/board/ath79-generic.mk")
check "ath79-generic sizing in tarpitd.ini (table_size = $want)" \
	grep -qx "table_size = $want" "$r/etc/tarpitd/tarpitd.ini"
check "conffiles" grep -qx /etc/tarpitd/recipients "$top/ipkg/conffiles"
check "conffiles" grep -qx /etc/tarpitd/tarpitd.ini "$top/ipkg/conffiles"
check "section, category, depends" grep -qx 'SECTION=mail CATEGORY=Mail DEPENDS=+libmbedtls +libinih' "$top/ipkg/info"
check "version from the project Makefile" test -d "$top/build_dir/tarpitd-$(sed -n 's/^VERSION *:= *//p' "$root/Makefile")"
# What upstreaming into openwrt/packages needs (and the static packages
# copy into their control fields: firmware/mkipk.sh).
f=$top/ipkg/fields
field() { sed -n "s/^$1=//p" "$f"; }
lic=$(field PKG_LICENSE)
check "PKG_LICENSE is an SPDX identifier ($lic)" sh -c "echo '$lic' | grep -Eqx '[A-Za-z0-9.+-]+( (OR|AND) [A-Za-z0-9.+-]+)*'"
check "PKG_LICENSE_FILES ($(field PKG_LICENSE_FILES)) exist in the sources" test -f "$root/$(field PKG_LICENSE_FILES)"
check "PKG_LICENSE_FILES is the license PKG_LICENSE names" sh -c "[ '$lic' != ISC ] || grep -q '^ISC License' '$root/$(field PKG_LICENSE_FILES)'"
check "PKG_MAINTAINER is Name <address> ($(field PKG_MAINTAINER))" sh -c "field() { sed -n \"s/^\$1=//p\" '$f'; }; field PKG_MAINTAINER | grep -Eqx '[^<>]+ <[^<>@ ]+@[^<>@ ]+>'"
check "URL ($(field URL))" sh -c "sed -n 's/^URL=//p' '$f' | grep -Eqx 'https?://[^ ]+'"
check "USERID is user=uid:group=gid ($(field USERID))" sh -c "sed -n 's/^USERID=//p' '$f' | grep -Eqx 'tarpitd=[0-9]+:tarpitd=[0-9]+'"
check "USERID matches the static packages' postinst" \
	grep -qx "TARPITD_USERID=$(field USERID)" "$root/firmware/pkg/postinst"
check "the PKG_SOURCE_PROTO:=git variant is documented" sh -c "grep -q '^#   PKG_SOURCE_PROTO:=git' '$pkg/Makefile' && grep -q '^#   PKG_SOURCE_VERSION:=' '$pkg/Makefile' && grep -q '^#   PKG_MIRROR_HASH:=' '$pkg/Makefile'"
for x in /etc/config/tarpitd /etc/uci-defaults/90-tarpitd-firewall /lib/upgrade/keep.d/tarpitd \
	/usr/share/nftables.d/table-post/tarpitd-ban.nft; do
	check "installs $x" test -f "$r$x"
done
check "conffiles: /etc/config/tarpitd" grep -qx /etc/config/tarpitd "$top/ipkg/conffiles"
check "the INI and recipients are readable by the tarpitd user (0644)" \
	test "$(stat -c %a "$r/etc/tarpitd/tarpitd.ini") $(stat -c %a "$r/etc/tarpitd/recipients")" = "644 644"
echo "test-feed: $pass passed, $fail failed"
[ "$fail" = 0 ]
