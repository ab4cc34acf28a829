# x86-64: PC engines, mini PCs and virtual machines running OpenWrt's
# x86/64 target; 1 GB RAM class and up.
# Format: a make fragment read by firmware/firmware.mk (docs/firmware.md).
BOARD_DESC        := x86-64 (OpenWrt x86/64), 1 GB
BOARD_BUILD       := static
BOARD_DEB_ARCH    := amd64
BOARD_TRIPLET     := x86_64-linux-gnu
BOARD_LIBC        := musl-debian
BOARD_MUSL_TRIPLET := x86_64-linux-musl
BOARD_CFLAGS      := -march=x86-64 -mtune=generic
BOARD_DAEMON_CFLAGS :=
BOARD_PKG_ARCH    := x86_64
# Runs natively here.
BOARD_QEMU        :=
BOARD_FILE_MATCH  := ELF 64-bit LSB executable, x86-64
BOARD_TEST        := no
BOARD_MAX_CONNECTIONS    := 4096
BOARD_TLS_MAX_SESSIONS   := 64
BOARD_HARVEST_TABLE_SIZE := 8192
