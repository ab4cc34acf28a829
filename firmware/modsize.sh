#!/bin/sh
# What each module of src/ costs in a board's binary (make modsize
# BOARD=...): the daemon linked again as the firmware build links it, but
# without -flto, so that the linker map names every object, then the
# bytes the link keeps of each (text, rodata and data after
# --gc-sections; no bss), largest last. With -flto (board/*.mk) the real
# binary is a few percent smaller in total; the shares are what this
# shows. Needs `make firmware BOARD=...` first (its libc, mbedTLS and
# libinih); writes only to build/<board>/modsize/.
#
# Reads the board's settings from the environment, like build.sh.
set -eu
: "${BOARD:?}" "${BOARD_TRIPLET:?}"
ROOT=$(pwd)
OUT=$ROOT/build/$BOARD
D=$OUT/modsize
T=$BOARD_TRIPLET
[ -f "$OUT/mbedtls/.stamp" ] || { echo "modsize: make firmware BOARD=$BOARD first" >&2; exit 1; }
specs=/usr/lib/${BOARD_MUSL_TRIPLET:-}/musl-gcc.specs
[ -f "$OUT/gcc.specs" ] && specs=$OUT/gcc.specs
mbed_config=$ROOT/firmware/mbedtls_config.h
grep -q 'mbedtls-2' "$OUT/mbedtls/.stamp" && mbed_config=$ROOT/firmware/mbedtls-2.28_config.h
common="$BOARD_CFLAGS ${BOARD_EXE_CFLAGS:-} -Os -ffunction-sections -fdata-sections -fno-pie -fno-asynchronous-unwind-tables -fno-unwind-tables"
daemon=$(echo " ${BOARD_DAEMON_CFLAGS:-} " | sed 's/ -flto[^ ]*//g')
rm -rf "$D"; mkdir -p "$D"
env -u MAKEFLAGS -u MFLAGS \
	CPPFLAGS="-isystem $OUT/include -isystem $OUT/mbedtls/include -DMBEDTLS_CONFIG_FILE='\"$mbed_config\"'" \
	CFLAGS="$common $daemon" LDLIBS="" \
	LDFLAGS="-static -no-pie -Wl,--gc-sections -Wl,--build-id=none -Wl,-Map=$D/tarpitd.map -L$OUT/lib" \
	make --no-print-directory -s -j"${JOBS:-$(nproc 2>/dev/null || echo 2)}" BUILD="$D" BACKEND=epoll SAN=0 \
	TLS="${TLS:-1}" MBEDTLS= CC="$T-gcc -specs $specs" AR="$T-ar" "$D/tarpitd" >/dev/null
echo "| module | text | rodata | data | total (B) |"
echo "|---|---|---|---|---|"
awk '
/^Linker script and memory map/ { on = 1; next }
!on { next }
/^[^ \t]/ { osec = $1 }
{
	line = $0
	if (line !~ /0x[0-9a-fA-F]+[ \t]+0x[0-9a-fA-F]+[ \t]+[^ \t]/) next
	if (line ~ /^[^ \t]/) next
	n = split(line, f, /[ \t]+/)
	for (i = 1; i < n; i++) if (f[i] ~ /^0x/ && f[i+1] ~ /^0x/) break
	if (i >= n) next
	file = f[i+2]
	if (file !~ /\/modsize\/(obj\/|libtarpitd\.a)/) next
	if (osec ~ /^\.(bss|sbss|tbss)/ || osec ~ /^\.(debug|comment|note|gnu\.attributes|pdr|mdebug|stab|gnu_debug)/) next
	v = 0; h = substr(f[i+1], 3)
	for (k = 1; k <= length(h); k++) v = v * 16 + index("0123456789abcdef", tolower(substr(h, k, 1))) - 1
	m = file; sub(/\)$/, "", m); sub(/.*[(\/]/, "", m); sub(/\.o$/, ".c", m)
	c = osec ~ /text/ ? 1 : osec ~ /rodata/ ? 2 : 3
	s[m, c] += v; s[m, 0] += v; t[c] += v; t[0] += v; mods[m] = 1
}
END {
	for (m in mods) printf "%d| %s | %d | %d | %d | %d |\n", s[m,0], m, s[m,1], s[m,2], s[m,3], s[m,0] | "sort -n | cut -d\"|\" -f2- | sed \"s/^/|/\""
	close("sort -n | cut -d\"|\" -f2- | sed \"s/^/|/\"")
	printf "| all of src/ | %d | %d | %d | %d (%.1f KiB) |\n", t[1], t[2], t[3], t[0], t[0] / 1024
}' "$D/tarpitd.map"
