#!/bin/sh
# TLS figures for docs/benchmarks.md: handshakes per second through the
# tls pool (ECDSA P-256 and RSA-2048 certificates) and the heap one TLS
# session holds (printed by the tls unit test). Bounded: SECONDS per run.
set -eu
cd "$(dirname "$0")/../.."
SECONDS_PER_RUN=${SECONDS_PER_RUN:-5}
dir=$(mktemp -d /tmp/tarpitd-tlsbench-XXXXXX)
trap 'rm -rf "$dir"' EXIT INT TERM
cc -std=c11 -Wall -Wextra -Werror -D_GNU_SOURCE -Os -iquote src src/tls.c src/random.c \
	host-tests/bench/tls_handshake_bench.c -o "$dir/tls_bench" -lmbedtls -lmbedx509 -lmbedcrypto
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
	-keyout "$dir/ec_key.pem" -out "$dir/ec_cert.pem" -days 2 -subj /CN=localhost 2>/dev/null
openssl req -x509 -newkey rsa:2048 -nodes \
	-keyout "$dir/rsa_key.pem" -out "$dir/rsa_cert.pem" -days 2 -subj /CN=localhost 2>/dev/null
echo "== ECDSA P-256"
"$dir/tls_bench" -s "$SECONDS_PER_RUN" "$dir/ec_cert.pem" "$dir/ec_key.pem"
echo "== RSA-2048"
"$dir/tls_bench" -s "$SECONDS_PER_RUN" "$dir/rsa_cert.pem" "$dir/rsa_key.pem"
echo "== heap per TLS session"
make -s build/host/test_tls >/dev/null
build/host/test_tls | grep -E "heap per session|passed"
