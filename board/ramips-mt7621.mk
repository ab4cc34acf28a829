# ramips-mt7621: MediaTek MT7621 (MIPS 1004Kc, little-endian, no FPU),
# e.g. Xiaomi Mi Router 4A Gigabit, Netgear R6220; 128 MB RAM class.
# Format: a make fragment read by firmware/firmware.mk (docs/firmware.md).
BOARD_DESC        := MediaTek MT7621, mipsel 24Kc, 128 MB
BOARD_BUILD       := static
BOARD_DEB_ARCH    := mipsel
BOARD_TRIPLET     := mipsel-linux-gnu
# OpenWrt's MIPS cores have no FPU and OpenWrt kernels have no FPU
# emulator, while Debian's musl for mipsel is hard-float: musl is rebuilt
# soft-float from Debian's source package, with soft-float arithmetic
# from glibc's soft-fp sources (firmware/build.sh).
BOARD_LIBC        := musl-softfloat
BOARD_CFLAGS      := -march=24kc -mno-branch-likely -msoft-float
# mbedTLS and the daemon are linked only into a static executable: non-PIC
# calls and data access (direct jal, no $gp set-up per function) make
# their code about 15% smaller than Debian's default PIC -mabicalls, and
# stay abicalls, so they link with Debian's libgcc and libinih as they are.
BOARD_EXE_CFLAGS  := -mno-shared -mplt
# MIPS16e (as OpenWrt builds packages for these cores): about a quarter
# less code for the daemon; mbedTLS keeps MIPS32 for its assembly. A
# function inlined into its one caller costs MIPS16 more than the call
# (longer offsets into a bigger frame): 2.5% less code without.
BOARD_DAEMON_CFLAGS := -mips16 -minterlink-mips16 -fno-inline-functions-called-once -flto -flto-partition=one
# mbedTLS: the protocol, certificate and PSA glue as MIPS16e too (about
# a quarter less code, run a few times per handshake); the arithmetic the
# handshake and every record spend their time in stays MIPS32, with the
# multiply-accumulate assembly of bignum_core. Every object may then call
# MIPS16 code, hence -minterlink-mips16 for all.
BOARD_MBEDTLS_CFLAGS       := -minterlink-mips16
BOARD_MBEDTLS_SMALL_CFLAGS := -mips16
BOARD_MBEDTLS_FAST := bignum.o bignum_core.o bignum_mod.o bignum_mod_raw.o ecp.o ecp_curves.o \
	ecp_curves_new.o aes.o gcm.o chacha20.o poly1305.o chachapoly.o sha1.o sha256.o sha512.o \
	ctr_drbg.o md.o cipher.o cipher_wrap.o pkcs5.o constant_time.o ssl_msg.o
BOARD_PKG_ARCH    := mipsel_24kc
BOARD_QEMU        := qemu-mipsel-static -cpu 24Kc
BOARD_FILE_MATCH  := ELF 32-bit LSB executable, MIPS, MIPS32 rel2
BOARD_TEST        := yes
# Sizing for 128 MB: 512 slots cost about 0.7 MB, a TLS session about
# 40 KB, a harvest table entry 64 bytes.
BOARD_MAX_CONNECTIONS    := 512
BOARD_TLS_MAX_SESSIONS   := 8
BOARD_HARVEST_TABLE_SIZE := 1024
