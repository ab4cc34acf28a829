#!/bin/sh
# Builds the libFuzzer targets of host-tests/fuzz/ and runs each for a
# bounded time, FUZZ_JOBS (2) at once, on a copy of its seed corpus.
#
#   sh host-tests/fuzz/run.sh                 every target, FUZZ_SECONDS each
#   sh host-tests/fuzz/run.sh session config  only these
#   FUZZ_SECONDS=600 sh host-tests/fuzz/run.sh session
#
# Environment: FUZZ_SECONDS (60), FUZZ_BUILD (build/fuzz), CC (clang),
# FUZZ_FLAGS (extra libFuzzer flags), FUZZ_CFLAGS (extra compiler flags),
# FUZZ_BUILD_ONLY=1 (build, do not run), FUZZ_JOBS (2: targets fuzzing at
# once, each for the full FUZZ_SECONDS).
# First every saved reproducer in host-tests/fuzz/regress/<target>/ is run
# once (a crash found, fixed and kept as a regression test); then each
# target fuzzes. Prints per target the executions and whether it crashed;
# exits 1 if a reproducer or a target crashed (the new reproducer is left
# in $FUZZ_BUILD/artifacts-<target>/), 2 if it cannot build.
set -u

cd "$(dirname "$0")/../.." || exit 2
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
BUILD=${FUZZ_BUILD:-build/fuzz}
CC=${CC:-clang}
FUZZ_FLAGS=${FUZZ_FLAGS:-}
FUZZ_CFLAGS=${FUZZ_CFLAGS:-}
CFLAGS="-g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -std=c11 -D_GNU_SOURCE -iquote src -iquote host-tests/fuzz"
LIBS="-linih -lmbedtls -lmbedx509 -lmbedcrypto"
ALL="session address config iprange recipients users auth_b64 client_reply queue_env"

# The src/ files each target links (never main.c or the loop's modules:
# server, conn, listen, gen, control, ban).
sources() {
	case $1 in
	session) echo "src/smtp_session.c src/route.c src/smtp_input.c src/smtp_reply.c src/smtp_data.c src/address.c src/recipients.c src/sasl.c src/users.c src/passwd.c src/random.c src/log.c src/util.c src/fileio.c" ;;
	address) echo "src/address.c" ;;
	config) echo "src/config.c src/conf_connector.c src/conf_relay.c src/route.c src/recipients.c src/conf_host.c src/conf_value.c src/conf_field.c src/ini_line.c src/iprange.c src/log.c src/util.c src/tls.c src/tls_common.c src/random.c" ;;
	iprange) echo "src/iprange.c src/util.c" ;;
	recipients) echo "src/recipients.c src/log.c src/util.c" ;;
	users) echo "src/users.c src/pbkdf2.c src/sasl.c src/log.c src/util.c" ;;
	auth_b64) echo "src/sasl.c" ;;
	client_reply) echo "src/smtp_client.c src/sasl.c" ;;
	queue_env) echo "src/queue_env.c" ;;
	*) return 1 ;;
	esac
}

# clang's -fsanitize=fuzzer needs the libFuzzer runtime (Debian: in
# libclang-rt-NN-dev, or libfuzzer-NN-dev before LLVM 14 was split).
check_toolchain() {
	printf 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { (void)d; (void)n; return 0; }\n' \
		>"$BUILD/probe.c"
	if $CC -fsanitize=fuzzer,address,undefined "$BUILD/probe.c" -o "$BUILD/probe" 2>"$BUILD/probe.log"; then
		rm -f "$BUILD/probe" "$BUILD/probe.c" "$BUILD/probe.log"
		return 0
	fi
	ver=$($CC --version 2>/dev/null | sed -n 's/.*clang version \([0-9]*\).*/\1/p' | head -n 1)
	pkg=libclang-rt-${ver:-14}-dev
	if command -v apt-cache >/dev/null 2>&1 && ! apt-cache show "$pkg" >/dev/null 2>&1; then
		pkg=libfuzzer-${ver:-14}-dev
	fi
	echo "run.sh: $CC cannot link -fsanitize=fuzzer:" >&2
	sed 's/^/  /' "$BUILD/probe.log" >&2
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
		echo "run.sh: installing $pkg" >&2
		apt-get install -y "$pkg" >&2 && return 0
	fi
	echo "run.sh: install the libFuzzer runtime: apt-get install $pkg" >&2
	return 1
}

build() {
	t=$1
	src=$(sources "$t") || { echo "run.sh: unknown target $t" >&2; return 1; }
	# shellcheck disable=SC2086
	$CC $CFLAGS $FUZZ_CFLAGS "host-tests/fuzz/fuzz_$t.c" $src $LIBS -o "$BUILD/fuzz_$t"
}

mkdir -p "$BUILD" || exit 2
check_toolchain || exit 2
targets=${*:-$ALL}
for t in $targets; do
	echo "== build fuzz_$t"
	build "$t" || exit 2
done
[ "${FUZZ_BUILD_ONLY:-0}" = 1 ] && exit 0

status=0
summary=""
start=$(date +%s)
for t in $targets; do
	[ -d "host-tests/fuzz/regress/$t" ] || continue
	set -- "host-tests/fuzz/regress/$t"/*
	[ -f "$1" ] || continue
	log="$BUILD/regress_$t.log"
	if "$BUILD/fuzz_$t" "$@" >"$log" 2>&1; then
		line=$(printf '%-11s %12s       %6s   %s' "$t" "$# inputs" "" "regress ok")
	else
		# One at a time, to name each reproducer that still fails.
		bad=""
		for f in "$@"; do
			"$BUILD/fuzz_$t" "$f" >"$log.one" 2>&1 || bad="$bad ${f##*/}"
		done
		line=$(printf '%-11s %12s       %6s   %s' "$t" "$# inputs" "" "REGRESS FAILS:$bad")
		grep -m 1 -E 'ERROR: |invariant violated|runtime error' "$log" >&2
		status=1
	fi
	echo "$line"
	summary="$summary$line
"
done
# One target's fuzzing run; its result line goes to $BUILD/result-$t
# (the runs of a group go on at once, their lines are printed in order).
fuzz_one() {
	t=$1
	corpus="$BUILD/corpus-$t"
	log="$BUILD/fuzz_$t.log"
	arts="$BUILD/artifacts-$t"
	rm -rf "$corpus" "$arts"
	mkdir -p "$corpus" "$arts"
	if [ -d "host-tests/fuzz/corpus/$t" ]; then
		cp -R "host-tests/fuzz/corpus/$t/." "$corpus/"
	fi
	dict=""
	[ -f "host-tests/fuzz/$t.dict" ] && dict="-dict=host-tests/fuzz/$t.dict"
	t0=$(date +%s)
	# shellcheck disable=SC2086
	"$BUILD/fuzz_$t" -max_total_time="$FUZZ_SECONDS" -print_final_stats=1 -max_len=4096 \
		-timeout=10 -rss_limit_mb=2048 -artifact_prefix="$arts/" $dict $FUZZ_FLAGS \
		"$corpus" >"$log" 2>&1
	rc=$?
	t1=$(date +%s)
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
	if [ $rc -eq 0 ] && [ -n "$execs" ]; then
		res=ok
	else
		res="CRASH (exit $rc)"
		{
			grep -m 1 -E 'ERROR: |invariant violated|runtime error' "$log"
			ls "$arts"/* 2>/dev/null
		} >"$BUILD/result-$t.err"
	fi
	printf '%-11s %12s execs %6ss  %s\n' "$t" "${execs:-?}" "$((t1 - t0))" "$res" >"$BUILD/result-$t"
}

# FUZZ_JOBS targets fuzz at once (default 2: each is one process on one
# core, so a 2-core machine does the full FUZZ_SECONDS per target in half
# the wall time); FUZZ_JOBS=1 runs them one after the other.
run_group() {
	pids=""
	for t in "$@"; do
		rm -f "$BUILD/result-$t" "$BUILD/result-$t.err"
		echo "== run fuzz_$t for ${FUZZ_SECONDS}s (log: $BUILD/fuzz_$t.log)"
		fuzz_one "$t" &
		pids="$pids $!"
	done
	for p in $pids; do
		wait "$p"
	done
	for t in "$@"; do
		if [ -f "$BUILD/result-$t.err" ]; then
			cat "$BUILD/result-$t.err" >&2
		fi
		if [ -f "$BUILD/result-$t" ]; then
			line=$(cat "$BUILD/result-$t")
		else
			line=$(printf '%-11s %12s execs %6s   %s' "$t" "?" "" "NO RESULT")
		fi
		case $line in *" ok") ;; *) status=1 ;; esac
		echo "$line"
		summary="$summary$line
"
	done
}

FUZZ_JOBS=${FUZZ_JOBS:-2}
group=""
n=0
for t in $targets; do
	group="$group $t"
	n=$((n + 1))
	if [ "$n" -ge "$FUZZ_JOBS" ]; then
		# shellcheck disable=SC2086
		run_group $group
		group=""
		n=0
	fi
done
# shellcheck disable=SC2086
[ -n "$group" ] && run_group $group
echo "== summary (FUZZ_SECONDS=$FUZZ_SECONDS, total $(($(date +%s) - start))s)"
printf '%s' "$summary"
exit $status
