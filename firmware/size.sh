#!/bin/sh
# Size report of the firmware builds (make size): for each board, the
# stripped static binary with TLS (build/<board>/) and without
# (build/<board>/notls/, TLS=0), and what each is made of, from the linker
# map daemon/tarpitd.map (sections kept after --gc-sections,
# text+rodata+data, no bss). Prints the table and writes it into the
# "## Binary size" section of BENCH_MD (replaced if present, else
# appended; the rest of the file is left as it is).
#
# usage: size.sh BENCH_MD BOARD...
set -eu
md=$1; shift
root=$(cd "$(dirname "$0")/.." && pwd)
kib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1024 }'; }

# Linked bytes by origin in a map: daemon mbedtls inih libc other.
linked() {
	awk '
		/^Linker script and memory map/ { on = 1; next }
		!on { next }
		/^[^ \t]/ { osec = $1 }                 # an output section
		{
			line = $0
			if (line !~ /0x[0-9a-fA-F]+[ \t]+0x[0-9a-fA-F]+[ \t]+[^ \t]/) next
			if (line ~ /^[^ \t]/) next          # output section header
			n = split(line, f, /[ \t]+/)
			for (i = 1; i < n; i++) if (f[i] ~ /^0x/ && f[i+1] ~ /^0x/) break
			if (i >= n) next
			file = f[i+2]
			size = f[i+1]
			if (osec ~ /^\.(bss|sbss|tbss)/ || osec ~ /^\.(debug|comment|note|gnu\.attributes|pdr|mdebug|stab|gnu_debug)/) next
			v = 0; h = substr(size, 3)
			for (k = 1; k <= length(h); k++) v = v * 16 + index("0123456789abcdef", tolower(substr(h, k, 1))) - 1
			# -flto (board/*.mk): the daemon is linked from LTRANS objects;
			# nothing else is built with it.
			if (file ~ /\/daemon\/(obj\/|libtarpitd\.a)/ || file ~ /\.ltrans[0-9]*\.ltrans\.o$/) d += v
			else if (file ~ /libmbed/) m += v
			else if (file ~ /libinih/) n2 += v
			else if (file ~ /libc\.a|\/musl\/|crt[1in]\.o|crti\.o|crtn\.o|Scrt1\.o/) c += v
			else o += v
		}
		END { printf "%d %d %d %d %d\n", d, m, n2, c, o }' "$1"
}

first=$1
rows=""
mipsel_total="" over="" under=""
for b in "$@"; do
	out=$root/build/$b
	for dir in "$out" "$out/notls"; do
		[ -f "$dir/tarpitd" ] && [ -f "$dir/daemon/tarpitd.map" ] || {
			echo "size.sh: no build in $dir (make firmware BOARD=$b, and TLS=0)" >&2; exit 1; }
	done
	pkgarch=$(sed -n 's/^BOARD_PKG_ARCH *:= *//p' "$root/board/$b.mk")
	total=$(wc -c < "$out/tarpitd")
	total0=$(wc -c < "$out/notls/tarpitd")
	set -- $(linked "$out/daemon/tarpitd.map")
	daemon=$1 mbed=$2 inih=$3 libc=$4 other=$5
	set -- $(linked "$out/notls/daemon/tarpitd.map")
	daemon0=$1 mbed0=$2
	rows="$rows| $b | $pkgarch | $total ($(kib "$total")) | $total0 ($(kib "$total0")) | $(kib "$daemon") | $(kib "$daemon0") | $(kib "$mbed") | $(kib "$mbed0") | $(kib "$libc") | $(kib "$inih") | $(kib "$other") |
"
	[ "$b" = ramips-mt7621 ] && mipsel_total=$total
	if [ "$daemon" -le 65536 ]; then under="$under, $b $(kib "$daemon")"
	else over="$over, $b $(kib "$daemon")"; fi
done

# The source the first board's mbedTLS was built from (firmware/build.sh's
# stamp): the vendored 3.6 release, or Debian's 2.28 as the fallback.
mbedver=$(awk '{ print $2; exit }' "$root/build/$first/mbedtls/.stamp" 2>/dev/null | sed 's/.*mbedtls-//')
case $mbedver in
2.*) mbedcfg=firmware/mbedtls-2.28_config.h ;;
*) mbedcfg=firmware/mbedtls_config.h ;;
esac
gccver=$(gcc -dumpfullversion 2>/dev/null || gcc -dumpversion)
musl=$(dpkg-query -W -f='${Version}\n' musl-dev 2>/dev/null | head -n 1)
verdict_mipsel="not built"
[ -n "$mipsel_total" ] && if [ "$mipsel_total" -le 409600 ]; then
	verdict_mipsel="met: $(kib "$mipsel_total") KiB"; else verdict_mipsel="**missed**: $(kib "$mipsel_total") KiB"; fi
verdict_daemon=""
[ -z "$under" ] || verdict_daemon="met on ${under#, } KiB"
[ -z "$over" ] || verdict_daemon="${verdict_daemon:+$verdict_daemon; }**over** on ${over#, } KiB"

section=$(mktemp)
cat > "$section" <<EOF
## Binary size

\`make size\` builds every static board with and without TLS (\`make
firmware BOARD=…\` and \`make firmware BOARD=… TLS=0\`, see
docs/firmware.md) and writes this table. Static binaries, stripped;
measured $(date -u +%Y-%m-%d) with Debian 12's cross gcc $gccver, musl
$musl and mbedTLS $mbedver ($mbedcfg). Binaries in
bytes (KiB); the other columns in KiB, from the linker map
(\`build/<board>/daemon/tarpitd.map\`, \`build/<board>/notls/daemon/tarpitd.map\`):
what the link keeps of each part after \`--gc-sections\` (code, read-only
data and data; no bss). "Daemon" is the code of src/ (the server and its
command line); libc, libinih and the rest are the same in both builds.

| board | package arch | binary with TLS | binary, TLS=0 | daemon | daemon, TLS=0 | mbedTLS | mbedTLS, TLS=0 (AUTH's PBKDF2) | libc (musl) | libinih | libgcc and linker padding |
|---|---|---|---|---|---|---|---|---|---|---|
${rows}
Targets (issue 5): whole static mipsel binary with TLS ≤ 400 KiB —
$verdict_mipsel; daemon's own code (text+data, without mbedTLS and libc)
≤ 64 KiB — $verdict_daemon. Issue 15 (the gateway): the daemon's code
with the gateway in ≤ 72 KiB on ramips-mt7621 — not met; what it costs
and why: "Daemon code per module" below.

How the daemon's code grew on ramips-mt7621 in session 3 (measured there):
63.1 KiB before; 62.7 KiB after the cut into one module per concern
(issue 12, with -flto); about 72 KiB after issue 13's fixes (check's host
checks, the privileged helper, line-by-line control answers, harvest
listing); 75.1 KiB with the sliced PBKDF2 and the TLS transport (issue 14:
pool shares, close_notify, implicit TLS). A size pass found about 1.2 KiB
more only in flags that cost speed (not taken) and 0.3 KiB in code; where
the rest must come from is open (docs: the session note on issue 12).
Then 83.1 KiB before the gateway and 107.8 KiB with it (issue 15).

- ramips-mt7621 compiles mbedTLS and the daemon as non-PIC code
  (\`-mno-shared -mplt\`: direct calls, no \$gp set-up in every function;
  about 15% less code than Debian's default PIC) and the daemon as
  MIPS16e (\`-mips16\`, as OpenWrt builds packages for 24Kc/1004Kc cores).
  Its musl is built soft-float (the core has no FPU), and the build checks
  that the binary contains no FPU instruction.
- ramips-mt7621 compiles mbedTLS's protocol, X.509 and PSA glue as
  MIPS16e too, and keeps the arithmetic (bignum, curves, ciphers,
  hashes, CTR-DRBG, the record layer ssl_msg) MIPS32
  (\`BOARD_MBEDTLS_FAST\` in board/ramips-mt7621.mk): mbedTLS 202.2 →
  152.6 KiB, the binary with TLS 417.7 → 368.2 KiB (2026-12). With it,
  \`MBEDTLS_BLOCK_CIPHER_NO_DECRYPT\` (−3.5 KiB) and
  \`MBEDTLS_X509_REMOVE_INFO\` (−2.6 KiB); the client side for
  forwarding (issue 15: \`MBEDTLS_SSL_CLI_C\`, SNI, chain and name
  verification) had cost 17.4 KiB (190.8 → 208.2 KiB, MIPS32). Measured
  and not taken: without \`MBEDTLS_ERROR_C\` −15.2 KiB (the log's
  texts), without \`MBEDTLS_ECP_NIST_OPTIM\` −2.6 KiB (slower
  P-256/P-384), \`MBEDTLS_USE_PSA_CRYPTO\` +14.0 KiB.
- ramips-mt7621 and ipq40xx-generic build the daemon with
  \`-fno-inline-functions-called-once\`: MIPS16e and Thumb-2 pay more for a
  function folded into its caller's larger frame than for the call.
- ramips-mt7621 and ipq40xx-generic link the daemon with \`-flto
  -flto-partition=one\` (board/*.mk; the archive is made with gcc-ar):
  src/ is cut into one module per concern (issue 12), and functions that
  were static in one file now call across files; whole-program
  optimisation gives back what the cut costs (measured 2026-12-03:
  ramips-mt7621 64.1 KiB without it, 62.7 KiB with it, against 63.1 KiB
  before the cut; ipq40xx-generic 63.2 / 60.7 / 61.9 KiB). With LTO the
  linker map names the daemon's code by its LTRANS object.
- How the daemon came under 64 KiB on these boards (2026-11-27, from 90.6
  KiB on ramips-mt7621): the non-PIC build (−14 KiB), then src/ reworked
  for size without a change in behaviour — one key table for the INI
  sections, one error list for the three file loaders, one file
  replacement for \`set\` and \`passwd\`, table-driven stats lines and
  subcommands, replies derived from their ids, and struct fields ordered
  so MIPS16 reaches the common ones with short instructions (−13 KiB).
- The 64-bit boards (x86-64, AArch64, s390x) need more bytes for the same
  C: 8-byte pointers in every table and fixed 4-byte instructions
  (AArch64) or long encodings (x86-64, s390x); the 32-bit router cores
  have compact encodings (MIPS16e, Thumb-2).
- mbedTLS 3.6 LTS (TLS 1.3, session tickets, PSA crypto underneath)
  in place of 2.28 (TLS 1.2 only), 2026-12-03, ramips-mt7621: binary
  with TLS 309,536 → 361,032 bytes (302.3 → 352.6 KiB; mbedTLS 138.0 →
  190.7 KiB: the TLS 1.3 state machine and key schedule, PSA's core,
  RSA-PSS for TLS 1.3 with RSA certificates, the ticket code), TLS=0
  187,180 → 186,584 bytes. Without the vendored 3.6 source the build
  falls back to Debian's 2.28 (firmware/mbedtls-2.28_config.h).
- TLS=0 leaves out STARTTLS (src/tls_none.c; a [tls] section is then a
  configuration error at its line); AUTH stays, with mbedTLS's SHA-256,
  PBKDF2 and CTR-DRBG only.
EOF

# Replace the section (up to the next "## " heading) or append it.
if [ -f "$md" ] && grep -q '^## Binary size' "$md"; then
	awk -v sec="$section" '
		/^## Binary size/ { while ((getline l < sec) > 0) print l; skip = 1; next }
		skip && /^## / { skip = 0; print ""; }
		!skip { print }' "$md" > "$md.tmp" && mv "$md.tmp" "$md"
else
	{ [ -s "$md" ] && echo; cat "$section"; } >> "$md"
fi
cat "$section"
rm -f "$section"
