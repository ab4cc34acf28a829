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

ifeq ($(SAN),1)
BUILD     ?= build/host-san-$(BACKEND)$(NOTLS)
CFLAGS    += -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
LDFLAGS   += -fsanitize=address,undefined
else ifeq ($(BACKEND),epoll)
BUILD     ?= build/host$(NOTLS)
CFLAGS    += -Os -g
else
BUILD     ?= build/host-$(BACKEND)$(NOTLS)
CFLAGS    += -Os -g
endif

CFLAGS    += -std=c11 -Wall -Wextra -Werror -D_GNU_SOURCE -DTARPITD_VERSION='"$(VERSION)"'
ifeq ($(TLS),0)
CFLAGS    += -DTARPITD_NO_TLS
LDLIBS    += -linih -lmbedcrypto
else
LDLIBS    += -linih -lmbedtls -lmbedx509 -lmbedcrypto
endif

LIB_SRCS  := $(filter-out src/main.c src/loop_epoll.c src/loop_poll.c src/tls.c src/tls_none.c,$(wildcard src/*.c)) \
             src/loop_$(BACKEND).c src/tls$(if $(NOTLS),_none).c
LIB_OBJS  := $(patsubst src/%.c,$(BUILD)/obj/%.o,$(LIB_SRCS))
UNIT_SRCS := $(filter-out $(if $(NOTLS),host-tests/unit/test_tls.c),$(wildcard host-tests/unit/test_*.c))
UNIT_BINS := $(patsubst host-tests/unit/%.c,$(BUILD)/%,$(UNIT_SRCS))

.PHONY: all run test unit integration deps clean fuzz test-valgrind test-faults
all: $(BUILD)/tarpitd

# V=1 shows the full commands.
Q := $(if $(V),,@)

$(BUILD)/obj/%.o: src/%.c $(wildcard src/*.h) | $(BUILD)/obj
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

$(BUILD)/obj:
	mkdir -p $@

$(BUILD)/libtarpitd.a: $(LIB_OBJS)
	rm -f $@; $(AR) rcs $@ $^

$(BUILD)/tarpitd: $(BUILD)/obj/main.o $(BUILD)/libtarpitd.a
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/test_%: host-tests/unit/test_%.c host-tests/unit/check.h $(BUILD)/libtarpitd.a
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -iquote src $(LDFLAGS) -o $@ $< $(BUILD)/libtarpitd.a $(LDLIBS)

# Installs missing Debian packages (as root or through sudo), or says how.
deps:
	@sh host-tests/deps.sh

run: deps $(BUILD)/tarpitd
	mkdir -p var
	$(BUILD)/tarpitd -c config/dev.ini run

unit: $(UNIT_BINS)
	@fail=0; for t in $(UNIT_BINS); do $$t || fail=1; done; exit $$fail

# The fault-injection tests run apart (make test-faults).
integration: $(BUILD)/tarpitd
	TARPITD_BIN=$(abspath $(BUILD)/tarpitd) TARPITD_TLS=$(TLS) $(PYTHON) -m pytest -q -m "not faults" host-tests/integration $(PYTEST_ARGS)

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

# Fault injection (SPEC §5, §9): kill -9 under load, storage failures,
# descriptor exhaustion, 50,000-connection churn.
test-faults: deps $(BUILD)/tarpitd
	TARPITD_BIN=$(abspath $(BUILD)/tarpitd) $(PYTHON) -m pytest -q -rxX host-tests/integration/test_faults.py $(PYTEST_ARGS)

test: deps
	$(MAKE) unit
	$(MAKE) integration

# libFuzzer targets (clang), each for FUZZ_SECONDS (default 60), after the
# saved reproducers in host-tests/fuzz/regress/.
fuzz:
	sh host-tests/fuzz/run.sh

clean:
	rm -rf build

# Cross builds, .ipk packages and tests under emulation: firmware/firmware.mk.
-include firmware/firmware.mk
