# ath79-generic: Qualcomm Atheros QCA95xx/AR71xx (MIPS 24Kc/74Kc,
# big-endian, no FPU), e.g. TP-Link Archer C7; 64 MB RAM class.
#
# Built only through the OpenWrt feed package (firmware/openwrt/tarpitd,
# docs/firmware.md): Debian has no big-endian MIPS port, hence no
# libinih or libc for it, so `make firmware BOARD=ath79-generic` only
# says so and fails. The byte order is tested on the s390x board instead.
# The sizing below is what the feed package writes into tarpitd.ini when
# the SDK builds for ath79/generic.
BOARD_DESC        := Qualcomm Atheros ath79, mips 24Kc big-endian, 64 MB
BOARD_BUILD       := feed
BOARD_PKG_ARCH    := mips_24kc
BOARD_CFLAGS      := -march=24kc -mno-branch-likely -msoft-float
BOARD_MAX_CONNECTIONS    := 256
BOARD_TLS_MAX_SESSIONS   := 4
BOARD_HARVEST_TABLE_SIZE := 512
