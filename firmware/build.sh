#!/bin/sh
# Static cross build of tarpitd for one board (make firmware BOARD=...).
#
# Reads the board's settings from the environment (BOARD, BOARD_* from
# board/$BOARD.mk, VERSION), exported by firmware/firmware.mk. Steps, each
# redone only when its inputs changed:
#   1. libc: Debian's musl for the board (musl-dev:<arch> and the
#      musl-gcc.specs it ships), or for soft-float boards musl rebuilt from
#      Debian's source with -msoft-float plus glibc's soft-fp routines;
#   2. mbedTLS 3.6 (the vendored release, or MBEDTLS_SRC) with
#      firmware/mbedtls_config.h; without its source, Debian's 2.28 source
#      package with firmware/mbedtls-2.28_config.h (TLS 1.2 only);
#   3. libinih.a from libinih-dev:<arch>, as Debian ships it;
#   4. the daemon through the project's Makefile (CC on the command line,
#      CPPFLAGS/CFLAGS/LDFLAGS in the environment, which it appends to);
#   5. strip, checks (`file`, and no FPU instruction on soft-float boards),
#      and the .ipk (firmware/mkipk.sh).
set -eu

: "${BOARD:?}" "${BOARD_TRIPLET:?}" "${BOARD_LIBC:?}" "${VERSION:?}"
ROOT=$(pwd)
OUT=$ROOT/build/$BOARD
SRC=$ROOT/build/src
JOBS=${JOBS:-$(nproc 2>/dev/null || echo 2)}
T=$BOARD_TRIPLET
mkdir -p "$OUT/lib" "$OUT/include"

say() { echo "firmware[$BOARD]: $*"; }

# Rebuild marker: STAMP_FILE holds the description of the inputs a step
# was built from; a different description means build again.
fresh() { [ -f "$1" ] && [ "$(cat "$1")" = "$2" ]; }

common="$BOARD_CFLAGS ${BOARD_EXE_CFLAGS:-} -Os -ffunction-sections -fdata-sections -fno-pie -fno-asynchronous-unwind-tables -fno-unwind-tables"

# FPU instructions (coprocessor 1) in a MIPS disassembly. objdump puts a
# tab before the mnemonic and spaces between the instruction's hex words:
# matching after the tab only keeps a word such as "cfc1" (MIPS16 jalx
# 0x1e00cfc1) from counting as an instruction.
tab=$(printf '\t')
fpu_re=$tab'(lwc1|swc1|ldc1|sdc1|lwxc1|swxc1|ldxc1|sdxc1|mtc1|mfc1|mthc1|mfhc1|cfc1|ctc1|bc1[ft]l?|[a-z]+\.(s|d|w|l|ps))[[:space:]]'
fpu_count() { "$T-objdump" -d "$1" 2>/dev/null | grep -cE "$fpu_re" || true; }

# --- 1. libc ---------------------------------------------------------------
case $BOARD_LIBC in
musl-debian)
	specs=/usr/lib/$BOARD_MUSL_TRIPLET/musl-gcc.specs
	[ -f "$specs" ] || { say "missing $specs (musl-dev:$BOARD_DEB_ARCH)"; exit 1; }
	;;
musl-softfloat)
	musl_src=$(sh "$ROOT/firmware/sources.sh" "$SRC" musl)
	sfp_src=$(sh "$ROOT/firmware/sources.sh" "$SRC" softfp)
	musl_root=$OUT/musl/root
	desc="musl $(basename "$musl_src") $T $BOARD_CFLAGS"
	if ! fresh "$OUT/musl/.stamp" "$desc"; then
		say "building $(basename "$musl_src") soft-float"
		rm -rf "$OUT/musl"
		mkdir -p "$OUT/musl/build"
		# A target name ending in "sf" is how musl's configure is told
		# nothing; -msoft-float in CFLAGS is: it then picks the -sf subarch.
		( cd "$OUT/musl/build" &&
		  "$musl_src/configure" --target="${T%%-*}-linux-musl" --prefix="$musl_root" \
			--disable-shared --disable-wrapper CROSS_COMPILE="$T-" CC="$T-gcc" \
			CFLAGS="$BOARD_CFLAGS -Os -ffunction-sections -fdata-sections" >configure.log 2>&1 &&
		  grep -q '^SUBARCH.*sf' config.mak &&
		  make -j"$JOBS" >make.log 2>&1 && make install >install.log 2>&1 ) || {
			say "musl build failed; see $OUT/musl/build/*.log"; exit 1; }
		echo "$desc" > "$OUT/musl/.stamp"
	fi
	desc="softfp $(cat "$sfp_src/.done") $T $BOARD_CFLAGS"
	if ! fresh "$OUT/softfp/.stamp" "$desc"; then
		say "building soft-float arithmetic from $(cat "$sfp_src/.done")"
		rm -rf "$OUT/softfp"
		mkdir -p "$OUT/softfp"
		cp "$sfp_src/sysdeps/mips/mips32/sfp-machine.h" "$sfp_src/stdlib/longlong.h" "$OUT/softfp/"
		# What glibc's own build would provide around these files.
		printf '%s\n' '#include <endian.h>' \
			'#define strong_alias(name, aliasname) extern __typeof (name) aliasname __attribute__ ((alias (#name)));' \
			> "$OUT/softfp/compat.h"
		# Single and double precision only: long double is double on o32.
		for f in add sub mul div neg; do for m in sf df; do echo "$f${m}3"; done; done |
			sed 's/negsf3/negsf2/; s/negdf3/negdf2/' > "$OUT/softfp/list"
		for f in eq ge le unord; do echo "${f}sf2"; echo "${f}df2"; done >> "$OUT/softfp/list"
		for f in fixsfsi fixdfsi fixsfdi fixdfdi fixunssfsi fixunsdfsi fixunssfdi fixunsdfdi \
			floatsisf floatsidf floatdisf floatdidf floatunsisf floatunsidf floatundisf floatundidf \
			extendsfdf2 truncdfsf2; do echo "$f"; done >> "$OUT/softfp/list"
		while read -r f; do
			"$T-gcc" $BOARD_CFLAGS -Os -ffunction-sections -nostdinc -isystem "$musl_root/include" \
				-isystem "$("$T-gcc" -print-file-name=include)" -I"$OUT/softfp" -I"$sfp_src/soft-fp" \
				-include "$OUT/softfp/compat.h" -c "$sfp_src/soft-fp/$f.c" -o "$OUT/softfp/$f.o" ||
				{ say "soft-fp $f failed"; exit 1; }
		done < "$OUT/softfp/list"
		"$T-ar" rcs "$OUT/softfp/libsoftfp.a" "$OUT"/softfp/*.o
		echo "$desc" > "$OUT/softfp/.stamp"
	fi
	# libgcc's integer helpers (64-bit division and shifts) carry the
	# hard-float ABI tag of Debian's toolchain but no FPU instruction:
	# checked, then the tag is dropped from a copy so the linker does not
	# warn about mixing ABIs. The FPU check of the final binary below
	# covers everything that ends up linked.
	libgcc=$("$T-gcc" -print-libgcc-file-name)
	"$T-objcopy" -R .gnu.attributes -R .MIPS.abiflags "$libgcc" "$OUT/lib/libgcc-int.a"
	# gcc's crtbegin/crtend are left out: musl runs constructors from
	# .init_array and C code needs nothing else from them.
	specs=$OUT/gcc.specs
	cat > "$specs" <<SPECS
%rename cpp_options old_cpp_options

*cpp_options:
-nostdinc -isystem $musl_root/include -isystem include%s %(old_cpp_options)

*cc1:
%(cc1_cpu) -nostdinc -isystem $musl_root/include -isystem include%s

*link_libgcc:
-L$musl_root/lib -L .%s

*libgcc:
$OUT/softfp/libsoftfp.a $OUT/lib/libgcc-int.a

*startfile:
%{!shared: $musl_root/lib/crt1.o} $musl_root/lib/crti.o

*endfile:
$musl_root/lib/crtn.o

*link:
-nostdlib %{shared:-shared} %{static:-static} %{rdynamic:-export-dynamic}

SPECS
	;;
*)
	say "unknown BOARD_LIBC $BOARD_LIBC"; exit 1 ;;
esac
CC="$T-gcc -specs $specs"

# --- 2. mbedTLS ----------------------------------------------------------------
rc=0
mbed_src=$(sh "$ROOT/firmware/sources.sh" "$SRC" mbedtls3) || rc=$?
if [ "$rc" = 0 ]; then
	mbed_config=$ROOT/firmware/mbedtls_config.h
elif [ "$rc" = 3 ]; then
	say "no mbedTLS 3.6 source (${MBEDTLS_TARBALL:-../shared/vendor/mbedtls-3.6.6-lib.tar.xz}; or MBEDTLS_SRC=DIR):"
	say "falling back to Debian's mbedTLS 2.28 source: TLS 1.2 only"
	mbed_src=$(sh "$ROOT/firmware/sources.sh" "$SRC" mbedtls)
	mbed_config=$ROOT/firmware/mbedtls-2.28_config.h
else
	exit 1
fi
mbed_define="-DMBEDTLS_CONFIG_FILE='\"$mbed_config\"'"
mbed_cflags="$common ${BOARD_MBEDTLS_CFLAGS:-}"
desc="mbedtls $(basename "$mbed_src") $CC $mbed_cflags small=${BOARD_MBEDTLS_SMALL_CFLAGS:-} fast=${BOARD_MBEDTLS_FAST:-} $(cksum < "$mbed_config")"
if ! fresh "$OUT/mbedtls/.stamp" "$desc"; then
	say "building $(basename "$mbed_src")"
	rm -rf "$OUT/mbedtls"
	mkdir -p "$OUT/mbedtls"
	# 3.x's library Makefile names the generator scripts as (order-only)
	# prerequisites of the generated sources, which release trees ship:
	# scripts/ must be there, and -p keeps the sources newer than their
	# inputs so that nothing is generated again.
	for d in library include 3rdparty framework scripts; do
		if [ -d "$mbed_src/$d" ]; then cp -Rp "$mbed_src/$d" "$OUT/mbedtls/"; fi
	done
	# BOARD_MBEDTLS_SMALL_CFLAGS (-mips16 on ramips): for every object
	# but the BOARD_MBEDTLS_FAST ones, where the handshake's and the
	# records' arithmetic runs (bignum, curves, ciphers, hashes). Added
	# by a second makefile with target-specific flags; mbedTLS's own
	# Makefile is used as it is.
	small=$OUT/mbedtls/small.mk
	{
		echo "FAST := ${BOARD_MBEDTLS_FAST:-}"
		echo '$(filter-out $(FAST),$(OBJS_CRYPTO) $(OBJS_X509) $(OBJS_TLS)): override CFLAGS += '"${BOARD_MBEDTLS_SMALL_CFLAGS:-}"
	} > "$small"
	env -u MAKEFLAGS -u MFLAGS make -C "$OUT/mbedtls/library" -f Makefile -f "$small" -j"$JOBS" \
		libmbedcrypto.a libmbedx509.a libmbedtls.a \
		CC="$CC" AR="$T-ar" CFLAGS="$mbed_cflags $mbed_define" >"$OUT/mbedtls/build.log" 2>&1 || {
		tail -30 "$OUT/mbedtls/build.log"; say "mbedTLS build failed"; exit 1; }
	echo "$desc" > "$OUT/mbedtls/.stamp"
fi
cp "$OUT"/mbedtls/library/libmbed*.a "$OUT/lib/"

# --- 3. libinih ----------------------------------------------------------------
inih=/usr/lib/$T/libinih.a
[ -f "$inih" ] || { say "missing $inih (libinih-dev:$BOARD_DEB_ARCH)"; exit 1; }
cp /usr/include/ini.h "$OUT/include/"
if [ "$BOARD_LIBC" = musl-softfloat ]; then
	n=$(fpu_count "$inih")
	[ "$n" = 0 ] || { say "$inih has $n FPU instructions"; exit 1; }
	"$T-objcopy" -R .gnu.attributes -R .MIPS.abiflags "$inih" "$OUT/lib/libinih.a"
else
	cp "$inih" "$OUT/lib/libinih.a"
fi

# --- 4. the daemon ---------------------------------------------------------------
# TLS=0 (no STARTTLS, for 4 MB-flash boards) goes to build/<board>/notls/,
# packaged as tarpitd-nossl.
tls=${TLS:-1}
if [ "$tls" = 0 ]; then DOUT=$OUT/notls pkg=tarpitd-nossl; else DOUT=$OUT pkg=tarpitd; fi
cppflags="-isystem $OUT/include -isystem $OUT/mbedtls/include $mbed_define"
cflags="$common ${BOARD_DAEMON_CFLAGS:-}"
ldflags="-static -no-pie -Wl,--gc-sections -Wl,--build-id=none -Wl,-Map=$DOUT/daemon/tarpitd.map -L$OUT/lib"
desc="daemon TLS=$tls $CC $cppflags $cflags $ldflags $(cat "$OUT/mbedtls/.stamp")"
if ! fresh "$DOUT/daemon/.stamp" "$desc"; then
	rm -rf "$DOUT/daemon"
	mkdir -p "$DOUT/daemon"
	echo "$desc" > "$DOUT/daemon/.stamp"
fi
say "building the daemon (TLS=$tls)"
# -flto in BOARD_DAEMON_CFLAGS: the archive needs the LTO plugin's symbol
# table, which gcc-ar gives.
ar="$T-ar"
case " ${BOARD_DAEMON_CFLAGS:-} " in *" -flto "*) ar="$T-gcc-ar" ;; esac
env -u MAKEFLAGS -u MFLAGS CPPFLAGS="$cppflags" CFLAGS="$cflags" LDFLAGS="$ldflags" LDLIBS="" \
	make --no-print-directory -j"$JOBS" BUILD="$DOUT/daemon" BACKEND=epoll SAN=0 TLS="$tls" MBEDTLS= \
	CC="$CC" AR="$ar" "$DOUT/daemon/tarpitd"

# --- 5. strip, check, package ----------------------------------------------------------
"$T-strip" --strip-all -R .comment -o "$DOUT/tarpitd" "$DOUT/daemon/tarpitd"
desc=$(file -b "$DOUT/tarpitd")
case $desc in
	"$BOARD_FILE_MATCH"*", statically linked"*", stripped"*) ;;
	*) say "unexpected binary: $desc (wanted $BOARD_FILE_MATCH, statically linked, stripped)"; exit 1 ;;
esac
if [ "$BOARD_LIBC" = musl-softfloat ]; then
	n=$(fpu_count "$DOUT/daemon/tarpitd")
	[ "$n" = 0 ] || { say "the binary has $n FPU instructions; the board has no FPU"; exit 1; }
	desc="$desc; no FPU instruction"
fi
say "$DOUT/tarpitd: $(wc -c < "$DOUT/tarpitd") bytes: $desc"
sh "$ROOT/firmware/mkipk.sh" "$DOUT" "$BOARD_PKG_ARCH" "$VERSION" "$DOUT/tarpitd" \
	"$BOARD_MAX_CONNECTIONS" "$BOARD_TLS_MAX_SESSIONS" "$BOARD_HARVEST_TABLE_SIZE" "$pkg"
