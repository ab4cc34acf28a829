# Firmware: static cross builds, .ipk and .apk packages, size report and
# tests under emulation. Included by the top Makefile; see docs/firmware.md.
#
#   make firmware BOARD=<board>       build/<board>/tarpitd, its .ipk and .apk
#   make test-firmware BOARD=<board>  integration suite against the binary
#                                     under qemu-user (plus package checks)
#   make test-package BOARD=<board>   the packages installed, upgraded and
#                                     removed by the real opkg and apk in
#                                     offline roots; the init script under
#                                     a procd stand-in (needs root; opkg
#                                     and apk from build/pkg-tools, built
#                                     from TARPITD_SHARED=../shared)
#   make test-feed                    the OpenWrt feed package's Makefile,
#                                     built in a stand-in SDK (host gcc)
#   make size                         every static board; table into
#                                     docs/benchmarks.md ("## Binary size")
#   make firmware-all                 every static board
#   make modsize BOARD=<board>        what each module of src/ costs there
#
# Boards are make fragments, board/<board>.mk (BOARD_* variables).

FW_BOARDS_ALL    := $(patsubst board/%.mk,%,$(wildcard board/*.mk))
FW_BOARDS_STATIC := $(patsubst board/%.mk,%,$(shell grep -l '^BOARD_BUILD *:= *static' board/*.mk 2>/dev/null))

# Left out under emulation: the fault-injection tests (mark "faults",
# host-tests/integration/test_faults.py, run by their own target on the
# host build). They inject storage failures with an LD_PRELOAD shim built
# for the host, which cannot reach a static binary under qemu-user, and
# their connection churn (51,000 connections) is a host benchmark.
# Everything else runs: replies, delivery, tarpit, connectors, CLI,
# admin CLI, TLS and AUTH.
FW_PYTEST_DESELECT ?= -m "not faults"
# The daemon runs several times slower under qemu-user: the margin for
# "an undelayed reply" in host-tests/integration/conftest.py widens with
# TARPITD_TIME_SCALE (1.0 s -> 1.7 s, never up to the tarpit delay).
FW_TIME_SCALE ?= 3
# FW_TEST_JOBS=N: the suite in N pytest-xdist workers, as TEST_JOBS does on
# the host. Serial by default: under qemu-user the daemon is CPU-bound
# several times over, and parallel workers have not been shown to keep
# the timing margins there.
FW_TEST_JOBS ?= 1

.PHONY: firmware firmware-all modsize test-firmware test-package test-feed size fw-check-board fw-prereqs

ifneq ($(BOARD),)
ifeq ($(wildcard board/$(BOARD).mk),)
$(error BOARD=$(BOARD): no board/$(BOARD).mk; boards: $(FW_BOARDS_ALL))
endif
FW_BOARD_VARS := BOARD_DESC BOARD_BUILD BOARD_DEB_ARCH BOARD_TRIPLET BOARD_LIBC BOARD_MUSL_TRIPLET \
	BOARD_CFLAGS BOARD_EXE_CFLAGS BOARD_DAEMON_CFLAGS BOARD_MBEDTLS_CFLAGS BOARD_MBEDTLS_SMALL_CFLAGS \
	BOARD_MBEDTLS_FAST BOARD_PKG_ARCH BOARD_QEMU BOARD_FILE_MATCH BOARD_TEST \
	BOARD_MAX_CONNECTIONS BOARD_TLS_MAX_SESSIONS BOARD_HARVEST_TABLE_SIZE
# Exported to the build scripts, so a make started from this one (`make
# size BOARD=x` builds every board) would inherit the board's values from
# the environment, and a variable the next board's file does not set
# (ipq40xx-generic has no BOARD_EXE_CFLAGS) would keep ramips-mt7621's
# MIPS flags. Each board starts from nothing; a value given on the command
# line still wins.
$(foreach v,$(FW_BOARD_VARS),$(eval $(v) :=))
include board/$(BOARD).mk
export BOARD VERSION $(FW_BOARD_VARS)
endif

FW_OUT := build/$(BOARD)
FW_RUN := $(FW_OUT)/tarpitd-run

fw-check-board:
ifeq ($(BOARD),)
	@echo "firmware: say which board: make $(MAKECMDGOALS) BOARD=<board>; boards: $(FW_BOARDS_ALL)" >&2; exit 2
endif
ifeq ($(BOARD_BUILD),feed)
	@echo "firmware: $(BOARD) ($(BOARD_DESC)) is built only through the OpenWrt feed package:" >&2
	@echo "firmware: Debian has no big-endian MIPS port, so no libc or libinih for it here." >&2
	@echo "firmware: see docs/firmware.md, 'OpenWrt SDK' (feed: firmware/openwrt). Nothing built." >&2
	@exit 2
endif

fw-prereqs: fw-check-board
	@sh firmware/prereqs.sh "$(BOARD_DEB_ARCH)" "$(BOARD_TRIPLET)" "$(BOARD_LIBC)" "$(BOARD_QEMU)"

firmware: fw-prereqs
	@sh firmware/build.sh

modsize: fw-check-board
	@sh firmware/modsize.sh

firmware-all:
	@set -e; for b in $(FW_BOARDS_STATIC); do $(MAKE) --no-print-directory firmware BOARD=$$b; done

# The tests start $TARPITD_BIN directly: without binfmt_misc here, a
# wrapper execs qemu-user on the target binary (signals reach the guest).
$(FW_RUN): board/$(BOARD).mk
	@mkdir -p $(FW_OUT)
	@{ echo '#!/bin/sh'; \
	   echo 'exec $(BOARD_QEMU) "$(abspath $(FW_OUT)/tarpitd)" "$$@"'; } > $@
	@chmod 0755 $@

test-package: fw-check-board $(FW_RUN)
	@sh firmware/test-package.sh $(FW_OUT) "$(BOARD_PKG_ARCH)" "$(abspath $(FW_RUN))" "$(BOARD_QEMU)"

test-feed:
	@sh host-tests/deps.sh
	@sh firmware/test-feed.sh

test-firmware: firmware $(FW_RUN)
	@sh host-tests/deps.sh
	@$(MAKE) --no-print-directory test-package BOARD=$(BOARD)
	@echo "firmware[$(BOARD)]: integration suite under $(if $(BOARD_QEMU),$(BOARD_QEMU),native execution)"
	TARPITD_BIN=$(abspath $(FW_RUN)) TARPITD_TIME_SCALE=$(if $(BOARD_QEMU),$(FW_TIME_SCALE),1) \
		$(PYTHON) -m pytest -q $(call xdist,$(FW_TEST_JOBS)) host-tests/integration $(FW_PYTEST_DESELECT) $(PYTEST_ARGS)

# Builds every static board, then writes the table.
size:
	@set -e; for b in $(FW_BOARDS_STATIC); do for t in 1 0; do \
		$(MAKE) --no-print-directory firmware BOARD=$$b TLS=$$t; done; done
	@sh firmware/size.sh docs/benchmarks.md $(FW_BOARDS_STATIC)
