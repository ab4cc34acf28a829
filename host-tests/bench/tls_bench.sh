#!/bin/sh
# TLS figures for docs/benchmarks.md ("## TLS"):
#   1. handshakes per second and server CPU per handshake through the tls
#      pool (host-tests/bench/tls_handshake_bench.c), full and resumed
#      (the client offers the ticket of its previous session), with ECDSA
#      P-256 and RSA-2048 certificates, against the system's mbedTLS
#      (Debian 12: 2.28, TLS 1.2) and mbedTLS 3.6 (build/mbedtls-3.6, made
#      by `make MBEDTLS=3.6`; TLS 1.3, and TLS 1.2 with a client kept to it);
#   2. the heap one TLS session holds (printed by the tls unit test), for
#      both libraries, and for 3.6 also with smaller record buffers
#      (MBEDTLS_SSL_OUT_CONTENT_LEN / IN_CONTENT_LEN), each a build of the
#      3.6 library of its own in a temp dir (CONTENT_LEN=0 skips these).
# Bounded: SECONDS_PER_RUN per handshake run (default 5).
#
#   sh host-tests/bench/tls_bench.sh        env: SECONDS_PER_RUN CONTENT_LEN
set -eu
cd "$(dirname "$0")/../.."
SECONDS_PER_RUN=${SECONDS_PER_RUN:-5}
CONTENT_LEN=${CONTENT_LEN:-1}
M36=build/mbedtls-3.6
dir=$(mktemp -d /tmp/tarpitd-tlsbench-XXXXXX)
trap 'rm -rf "$dir"' EXIT INT TERM
CFLAGS="-std=c11 -Wall -Wextra -Werror -D_GNU_SOURCE -Os -iquote src"
SRCS="src/tls.c src/tls_common.c src/random.c src/iprange.c"

cc $CFLAGS $SRCS host-tests/bench/tls_handshake_bench.c -o "$dir/bench-2.28" \
	-lmbedtls -lmbedx509 -lmbedcrypto
libs="2.28"
if [ -f "$M36/library/libmbedtls.a" ]; then
	cc $CFLAGS -isystem "$M36/include" $SRCS host-tests/bench/tls_handshake_bench.c \
		-o "$dir/bench-3.6" "$M36/library/libmbedtls.a" "$M36/library/libmbedx509.a" \
		"$M36/library/libmbedcrypto.a"
	libs="2.28 3.6"
else
	echo "(no $M36: run make MBEDTLS=3.6 first for the 3.6 figures)"
fi
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
	-keyout "$dir/ec_key.pem" -out "$dir/ec_cert.pem" -days 2 -subj /CN=localhost 2>/dev/null
openssl req -x509 -newkey rsa:2048 -nodes \
	-keyout "$dir/rsa_key.pem" -out "$dir/rsa_cert.pem" -days 2 -subj /CN=localhost 2>/dev/null

echo "== handshakes ($SECONDS_PER_RUN s each; $(nproc) cores, client in a child process)"
for lib in $libs; do
	# 2.28's client speaks TLS 1.2 only; 3.6's offers 1.3, or is kept to 1.2.
	if [ "$lib" = 3.6 ]; then vers="13 12"; else vers="12"; fi
	for cert in ec rsa; do
		for v in $vers; do
			vopt=""
			[ "$lib" = 3.6 ] && [ "$v" = 12 ] && vopt="-v 12"
			for mode in full resumed; do
				ropt=""
				[ "$mode" = resumed ] && ropt="-r"
				printf '%s %s %s: ' "$cert" "$mode" "$v"
				"$dir/bench-$lib" -s "$SECONDS_PER_RUN" $ropt $vopt \
					"$dir/${cert}_cert.pem" "$dir/${cert}_key.pem"
			done
		done
	done
done

echo "== heap per TLS session (server side)"
make -s build/host/test_tls >/dev/null
printf '2.28: '
build/host/test_tls | grep -E "heap per session"
if [ -f "$M36/library/libmbedtls.a" ]; then
	make -s MBEDTLS=3.6 build/host-mbedtls3.6/test_tls >/dev/null
	printf '3.6: '
	build/host-mbedtls3.6/test_tls | grep -E "heap per session"
fi

# 3.6 with smaller record buffers: the library and the test built with
# the same lengths (they change the context's layout).
if [ "$CONTENT_LEN" = 1 ] && [ -f "$M36/Makefile" ]; then
	for lens in "16384 4096" "16384 2048" "4096 4096"; do
		set -- $lens
		d="$dir/m36-$1-$2"
		cp -Rp "$M36" "$d"
		def="-DMBEDTLS_SSL_IN_CONTENT_LEN=$1 -DMBEDTLS_SSL_OUT_CONTENT_LEN=$2"
		# objects only: "make clean" would drop the generated sources too
		rm -f "$d"/library/*.o "$d"/library/*.a
		(cd "$d" && env -u MAKEFLAGS -u MFLAGS make -s -j2 lib CFLAGS="-O2 $def" >"$d/build.log" 2>&1) || {
			echo "3.6 IN=$1 OUT=$2: library build failed"; continue; }
		cc $CFLAGS $def -isystem "$d/include" host-tests/unit/test_tls.c $SRCS \
			-o "$d/test_tls" "$d/library/libmbedtls.a" "$d/library/libmbedx509.a" \
			"$d/library/libmbedcrypto.a"
		printf '3.6 IN=%s OUT=%s: ' "$1" "$2"
		"$d/test_tls" | grep -E "heap per session|passed" | tr '\n' ' '
		echo
	done
fi
