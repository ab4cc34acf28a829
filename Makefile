# tarpitd — one Makefile for the host build, the tests and (later) firmware.
# It appends to CFLAGS/LDFLAGS and never assigns CC: the firmware build and
# the OpenWrt SDK pass their own.

VERSION   := 0.1.0
BACKEND   ?= epoll
SAN       ?= 0
# TLS=0: no STARTTLS, for boards with 4 MB of flash (src/tls_none.c);
# AUTH stays, with mbedTLS's crypto library only.
TLS       ?= 1
PYTHON    ?= /usr/bin/python3
NOTLS     := $(if $(filter 0,$(TLS)),-notls)
# MBEDTLS=3.6: build and link mbedTLS 3.6 LTS (what OpenWrt 24.10 and later
# ship; it has TLS 1.3) instead of the system's (Debian 12: 2.28). The
# source is MBEDTLS_SRC=DIR (any unpacked 3.6 tree, copied, never built in
# place) or else MBEDTLS_TARBALL; the library goes to build/mbedtls-3.6/,
# shared by the variants, each of which keeps a build dir of its own.
MBEDTLS   ?=
MBEDTLS_TARBALL ?= $(abspath $(CURDIR)/../shared/vendor/mbedtls-3.6.6-lib.tar.xz)
MBEDTLS_SRC ?=
M36       := $(if $(filter 3.6,$(MBEDTLS)),-mbedtls3.6)
ifneq ($(filter-out 3.6,$(MBEDTLS)),)
$(error MBEDTLS=$(MBEDTLS): say MBEDTLS=3.6, or leave it out for the system's mbedTLS)
endif

ifeq ($(SAN),1)
BUILD     ?= build/host-san-$(BACKEND)$(NOTLS)$(M36)
CFLAGS    += -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
LDFLAGS   += -fsanitize=address,undefined
else ifeq ($(BACKEND),epoll)
BUILD     ?= build/host$(NOTLS)$(M36)
CFLAGS    += -Os -g
else
BUILD     ?= build/host-$(BACKEND)$(NOTLS)$(M36)
CFLAGS    += -Os -g
endif

CFLAGS    += -std=c11 -Wall -Wextra -Werror -D_GNU_SOURCE -DTARPITD_VERSION='"$(VERSION)"'
ifeq ($(M36),)
M36_STAMP :=
ifeq ($(TLS),0)
CFLAGS    += -DTARPITD_NO_TLS
LDLIBS    += -linih -lmbedcrypto
else
LDLIBS    += -linih -lmbedtls -lmbedx509 -lmbedcrypto
endif
else
# The library with its own default configuration (include/mbedtls/
# mbedtls_config.h), which is close to OpenWrt's: TLS 1.3, tickets, PSA.
M36_DIR   := build/mbedtls-3.6
M36_STAMP := $(M36_DIR)/.built
M36_CC    ?= cc
M36_FROM  := $(if $(MBEDTLS_SRC),$(abspath $(MBEDTLS_SRC)),$(wildcard $(MBEDTLS_TARBALL)))
CPPFLAGS  += -isystem $(M36_DIR)/include
M36_LIBS  := $(M36_DIR)/library/libmbedtls.a $(M36_DIR)/library/libmbedx509.a $(M36_DIR)/library/libmbedcrypto.a
ifeq ($(TLS),0)
CFLAGS    += -DTARPITD_NO_TLS
LDLIBS    += -linih $(M36_DIR)/library/libmbedcrypto.a
else
LDLIBS    += -linih $(M36_LIBS)
endif
# Another source than the one it was built from: build it again (with no
# source at hand, a library already built is used as it is).
ifneq ($(M36_FROM),)
ifneq ($(shell cat $(M36_STAMP) 2>/dev/null),$(M36_FROM))
.PHONY: $(M36_STAMP)
endif
endif
endif

# TLS=0 swaps the mbedTLS modules for their stubs.
TLS_SRCS  := $(if $(NOTLS),src/tls_none.c src/tls_client_none.c,src/tls.c src/tls_common.c src/tls_client.c)
LIB_SRCS  := $(filter-out src/main.c src/loop_epoll.c src/loop_poll.c src/tls.c src/tls_none.c \
               src/tls_common.c src/tls_client.c src/tls_client_none.c,$(wildcard src/*.c)) \
             src/loop_$(BACKEND).c $(TLS_SRCS)
LIB_OBJS  := $(patsubst src/%.c,$(BUILD)/obj/%.o,$(LIB_SRCS))
UNIT_SRCS := $(filter-out $(if $(NOTLS),host-tests/unit/test_tls.c),$(wildcard host-tests/unit/test_*.c))
UNIT_BINS := $(patsubst host-tests/unit/%.c,$(BUILD)/%,$(UNIT_SRCS))
# Drivers the integration tests run beside tarpitd (tlsc_probe: the TLS
# client against openssl s_server); none without TLS.
PROBES    := $(if $(NOTLS),,$(BUILD)/tlsc_probe)

.PHONY: all run test unit integration deps clean fuzz test-valgrind test-faults
all: $(BUILD)/tarpitd

# V=1 shows the full commands.
Q := $(if $(V),,@)

$(BUILD)/obj/%.o: src/%.c $(wildcard src/*.h) | $(BUILD)/obj $(M36_STAMP)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

$(BUILD)/obj:
	mkdir -p $@

# mbedTLS 3.6 (MBEDTLS=3.6): unpacked or copied, then its own `make lib`
# with nothing of this Makefile's command line (MAKEFLAGS) but -j.
ifneq ($(M36),)
$(M36_STAMP):
	@if [ -z "$(M36_FROM)" ]; then \
		echo "MBEDTLS=3.6: no mbedTLS 3.6 source: $(MBEDTLS_TARBALL) is missing;" >&2; \
		echo "  give MBEDTLS_TARBALL=FILE.tar.xz or MBEDTLS_SRC=DIR (an unpacked 3.6 tree)" >&2; \
		exit 2; fi
	@if [ -n "$(MBEDTLS_SRC)" ] && [ ! -f "$(MBEDTLS_SRC)/include/mbedtls/build_info.h" ]; then \
		echo "MBEDTLS_SRC=$(MBEDTLS_SRC): not an mbedTLS 3.x tree (no include/mbedtls/build_info.h)" >&2; \
		exit 2; fi
	@echo "  MBEDTLS $(M36_FROM) -> $(M36_DIR)"
	$(Q)rm -rf $(M36_DIR) && mkdir -p $(M36_DIR)
	$(Q)if [ -n "$(MBEDTLS_SRC)" ]; then cp -R "$(M36_FROM)/." $(M36_DIR)/; \
	else tar -xf "$(M36_FROM)" -C $(M36_DIR) --strip-components=1; fi
	$(Q)env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL $(MAKE) -C $(M36_DIR) -j2 lib \
		CC="$(M36_CC)" CFLAGS="-O2" >$(M36_DIR)/build.log 2>&1 || \
		{ tail -20 $(M36_DIR)/build.log; echo "mbedTLS 3.6 build failed: $(M36_DIR)/build.log" >&2; exit 1; }
	$(Q)echo "$(M36_FROM)" > $@
endif

$(BUILD)/libtarpitd.a: $(LIB_OBJS)
	rm -f $@; $(AR) rcs $@ $^

$(BUILD)/tarpitd: $(BUILD)/obj/main.o $(BUILD)/libtarpitd.a $(M36_STAMP)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $(filter-out $(M36_STAMP),$^) $(LDLIBS)

$(BUILD)/test_%: host-tests/unit/test_%.c $(wildcard host-tests/unit/*.h) $(BUILD)/libtarpitd.a
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -iquote src $(LDFLAGS) -o $@ $< $(BUILD)/libtarpitd.a $(LDLIBS)

$(BUILD)/tlsc_probe: host-tests/unit/tlsc_probe.c $(BUILD)/libtarpitd.a
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -iquote src $(LDFLAGS) -o $@ $< $(BUILD)/libtarpitd.a $(LDLIBS)

# Installs missing Debian packages (as root or through sudo), or says how.
deps:
	@sh host-tests/deps.sh

run: deps $(BUILD)/tarpitd
	mkdir -p var
	$(BUILD)/tarpitd -c config/dev.ini run

# layout_check.py: no include circle in src/, no file there over 1,000
# lines (issue 12's promises, held by every test run).
unit: $(UNIT_BINS) $(PROBES)
	@fail=0; for t in $(UNIT_BINS); do $$t || fail=1; done; \
	$(PYTHON) host-tests/layout_check.py src || fail=1; exit $$fail

# TEST_JOBS=N: the integration suite in N pytest-xdist workers. Most tests
# wait on tarpit timers and timeouts, so more workers than cores pays: on
# 2 cores, 4 workers take the suite from ~5 min to under 2 (conftest.py's
# free_port() gives each worker ports of its own). TEST_JOBS=1, or without
# python3-pytest-xdist, runs it serially. The fault-injection tests run
# apart and serially (make test-faults): they load the machine on purpose.
TEST_JOBS ?= 4
# $(call xdist,N): pytest's -n N when N > 1 and xdist is installed.
xdist      = $(if $(filter-out 0 1,$(1)),$(shell $(PYTHON) -c 'import xdist' 2>/dev/null && echo "-n $(1)"))
xdist_note = $(if $(filter-out 0 1,$(1)),$(if $(call xdist,$(1)),,@echo "pytest: no pytest-xdist for $(PYTHON): serial (apt-get install python3-pytest-xdist)"))
integration: $(BUILD)/tarpitd $(PROBES)
	$(call xdist_note,$(TEST_JOBS))
	TARPITD_BIN=$(abspath $(BUILD)/tarpitd) TARPITD_TLS=$(TLS) $(PYTHON) -m pytest -q $(call xdist,$(TEST_JOBS)) -m "not faults" host-tests/integration $(PYTEST_ARGS)

VALGRIND_LOGS := $(BUILD)/valgrind
VALGRIND_UNIT := valgrind -q --leak-check=full --errors-for-leak-kinds=definite,indirect --error-exitcode=9

# Unit tests and the whole integration suite with the server under
# valgrind memcheck: any error or definite/indirect leak fails the run.
test-valgrind: deps $(BUILD)/tarpitd $(UNIT_BINS)
	@fail=0; for t in $(UNIT_BINS); do $(VALGRIND_UNIT) $$t || fail=1; done; exit $$fail
	rm -rf $(VALGRIND_LOGS)
	TARPITD_BIN=$(abspath host-tests/valgrind/tarpitd-valgrind) \
	TARPITD_VALGRIND_BIN=$(abspath $(BUILD)/tarpitd) \
	TARPITD_VALGRIND_LOGS=$(abspath $(VALGRIND_LOGS)) \
	TARPITD_TIME_SCALE=$${TARPITD_TIME_SCALE:-4} PYTHONPATH=$(abspath host-tests/valgrind) \
	$(PYTHON) -m pytest -q -p conftest_valgrind host-tests/integration $(PYTEST_ARGS); \
	rc=$$?; $(PYTHON) host-tests/valgrind/vgscan.py $(VALGRIND_LOGS) || rc=1; exit $$rc

# Fault injection (SPEC §5, §9, §10): kill -9 under load, storage failures,
# descriptor exhaustion, 50,000-connection churn; kill -9 while forwarding
# and the queue's disk full (test_faults_relay.py).
test-faults: deps $(BUILD)/tarpitd
	TARPITD_BIN=$(abspath $(BUILD)/tarpitd) $(PYTHON) -m pytest -q -rxX host-tests/integration/test_faults.py host-tests/integration/test_faults_relay.py $(PYTEST_ARGS)

test: deps
	$(MAKE) unit
	$(MAKE) integration

# libFuzzer targets (clang), each for FUZZ_SECONDS (default 60), FUZZ_JOBS
# (default 2) at once, after the saved reproducers in host-tests/fuzz/regress/.
fuzz:
	sh host-tests/fuzz/run.sh

clean:
	rm -rf build

# Cross builds, .ipk packages and tests under emulation: firmware/firmware.mk.
-include firmware/firmware.mk
