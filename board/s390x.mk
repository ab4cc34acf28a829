# s390x: test-only board. Not a router: Debian's one big-endian port with
# musl, libinih and qemu-user, so that the big-endian build of the daemon
# (address and range handling, wire formats) runs its integration suite
# here, standing in for ath79's big-endian MIPS. The .ipk it makes is a
# packaging check only.
# Format: a make fragment read by firmware/firmware.mk (docs/firmware.md).
BOARD_DESC        := IBM Z (test only: big-endian)
BOARD_BUILD       := static
BOARD_DEB_ARCH    := s390x
BOARD_TRIPLET     := s390x-linux-gnu
BOARD_LIBC        := musl-debian
BOARD_MUSL_TRIPLET := s390x-linux-musl
BOARD_CFLAGS      :=
BOARD_DAEMON_CFLAGS :=
BOARD_PKG_ARCH    := s390x
BOARD_QEMU        := qemu-s390x-static
BOARD_FILE_MATCH  := ELF 64-bit MSB executable, IBM S/390
BOARD_TEST        := yes
# Sized like ramips-mt7621, the board it stands in for.
BOARD_MAX_CONNECTIONS    := 512
BOARD_TLS_MAX_SESSIONS   := 8
BOARD_HARVEST_TABLE_SIZE := 1024
