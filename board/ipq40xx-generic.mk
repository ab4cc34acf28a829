# ipq40xx-generic: Qualcomm IPQ40xx (4x ARM Cortex-A7 with NEON/VFPv4),
# e.g. GL.iNet GL-B1300, AVM FRITZ!Box 7530; 256 MB RAM class.
# Format: a make fragment read by firmware/firmware.mk (docs/firmware.md).
BOARD_DESC        := Qualcomm IPQ40xx, ARMv7 Cortex-A7, 256 MB
BOARD_BUILD       := static
BOARD_DEB_ARCH    := armhf
BOARD_TRIPLET     := arm-linux-gnueabihf
BOARD_LIBC        := musl-debian
BOARD_MUSL_TRIPLET := arm-linux-musleabihf
# Hard-float ABI like Debian's armhf musl and OpenWrt's arm_cortex-a7
# targets; Thumb-2 is Debian's default and the smaller code.
BOARD_CFLAGS      := -mcpu=cortex-a7 -mfpu=neon-vfpv4 -mfloat-abi=hard -mthumb
# As on MIPS16, a function inlined into its one caller costs Thumb-2 more
# than the call: 1.3% less code without.
BOARD_DAEMON_CFLAGS := -fno-inline-functions-called-once -flto -flto-partition=one
BOARD_PKG_ARCH    := arm_cortex-a7_neon-vfpv4
BOARD_QEMU        := qemu-arm-static -cpu cortex-a7
BOARD_FILE_MATCH  := ELF 32-bit LSB executable, ARM, EABI5
BOARD_TEST        := no
BOARD_MAX_CONNECTIONS    := 1024
BOARD_TLS_MAX_SESSIONS   := 16
BOARD_HARVEST_TABLE_SIZE := 2048
