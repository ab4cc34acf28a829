# mediatek-filogic: MediaTek MT7981/MT7986 (ARM Cortex-A53, AArch64),
# e.g. GL.iNet GL-MT3000, Banana Pi BPI-R3; 512 MB RAM class.
# Format: a make fragment read by firmware/firmware.mk (docs/firmware.md).
BOARD_DESC        := MediaTek Filogic, AArch64 Cortex-A53, 512 MB
BOARD_BUILD       := static
BOARD_DEB_ARCH    := arm64
BOARD_TRIPLET     := aarch64-linux-gnu
BOARD_LIBC        := musl-debian
BOARD_MUSL_TRIPLET := aarch64-linux-musl
BOARD_CFLAGS      := -mcpu=cortex-a53
BOARD_DAEMON_CFLAGS :=
BOARD_PKG_ARCH    := aarch64_cortex-a53
BOARD_QEMU        := qemu-aarch64-static -cpu cortex-a53
BOARD_FILE_MATCH  := ELF 64-bit LSB executable, ARM aarch64
BOARD_TEST        := no
BOARD_MAX_CONNECTIONS    := 2048
BOARD_TLS_MAX_SESSIONS   := 32
BOARD_HARVEST_TABLE_SIZE := 4096
