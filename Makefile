# crpfs build.
#
#   make            library, programs and tests into build/
#   make check      every test: unit suites, then integration tests
#   make check-asan unit suites again under AddressSanitizer and UBSan
#   make bench      benchmarks, one table with ratios against baselines
#   make install    PREFIX=/usr/local, DESTDIR honoured
#   make fuzz       the on-disk decoder fuzzer (clang, libFuzzer)
#
# WERROR=1 turns warnings into errors (CI sets it).  The sanitizer build
# never does: -O1 with sanitizers warns differently; -Werror is for the
# real build.

CC := gcc
PREFIX ?= /usr/local
SBINDIR ?= $(PREFIX)/sbin
MANDIR ?= $(PREFIX)/share/man
BUILD ?= build

PKGS := glib-2.0 libiscsi libisal libxxhash
WARN := -Wall -Wextra -Wshadow -Wmissing-prototypes -Wstrict-prototypes \
	-Wformat=2 -Wno-format-nonliteral -Wvla -Wpointer-arith -Wundef
HARDEN := -D_FORTIFY_SOURCE=2 -fstack-protector-strong -fPIE
CFLAGS ?= -O2 -g
SAN ?=
ALL_CFLAGS := -std=gnu11 -D_GNU_SOURCE -Iinclude $(WARN) $(CFLAGS) $(SAN) -pthread \
	$(shell pkg-config --cflags $(PKGS) fuse3)
ifeq ($(SAN),)
ALL_CFLAGS += $(HARDEN)
endif
ifeq ($(WERROR),1)
ALL_CFLAGS += -Werror
endif
LDFLAGS += $(SAN) -pie -Wl,-z,relro,-z,now
LIBS := $(shell pkg-config --libs $(PKGS)) -lsgutils2 -pthread -lm
FUSE_LIBS := $(shell pkg-config --libs fuse3)
CHECK_LIBS := $(shell pkg-config --libs check)

LIB_SRC := $(sort $(wildcard src/util/*.c src/scsi/*.c src/raid/*.c src/meta/*.c \
	src/fs/*.c src/cluster/*.c))
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/%.o)
LIB := $(BUILD)/libcrpfs.a

FUSE_SRC := $(sort $(wildcard src/fuse/*.c))
FUSE_OBJ := $(FUSE_SRC:%.c=$(BUILD)/%.o)

# Programs: each tool is one main in src/tools, the daemon is src/fuse.
TOOL_SRC := $(sort $(wildcard src/tools/*.c))
TOOLS := $(patsubst src/tools/%.c,$(BUILD)/%,$(TOOL_SRC))
PROGS := $(TOOLS)
ifneq ($(FUSE_SRC),)
PROGS += $(BUILD)/mount.crpfs
endif

FIXTURE_SRC := $(sort $(wildcard tests/fixture/*.c))
FIXTURE_OBJ := $(FIXTURE_SRC:%.c=$(BUILD)/%.o)
CHECK_SRC := $(sort $(wildcard tests/check_*.c))
CHECKS := $(patsubst tests/%.c,$(BUILD)/tests/%,$(CHECK_SRC))
HELPER_SRC := $(sort $(wildcard tests/helpers/*.c))
HELPERS := $(patsubst tests/helpers/%.c,$(BUILD)/tests/%,$(HELPER_SRC))

BENCH_SRC := $(sort $(wildcard bench/*.c))
BENCHES := $(patsubst bench/%.c,$(BUILD)/bench/%,$(BENCH_SRC))
# Shared by the benchmarks: not a benchmark of its own.
BENCH_LIB_OBJ := $(patsubst %.c,$(BUILD)/%.o,$(sort $(wildcard bench/common/*.c)))
# Programs benchmarks run (baselines), not benchmarks: outside build/bench.
BENCH_TOOL_SRC := $(sort $(wildcard bench/tools/*.c))
BENCH_TOOLS := $(patsubst bench/tools/%.c,$(BUILD)/bench-tools/%,$(BENCH_TOOL_SRC))

# The data checksum's AVX2 build (used only where the CPU has AVX2).
$(BUILD)/src/util/hash_avx2.o: ALL_CFLAGS += -mavx2

MAN8 := $(wildcard man/*.8)
MAN5 := $(wildcard man/*.5)

.PHONY: all check check-unit check-integration check-asan check-all bench install uninstall clean fuzz

all: $(LIB) $(PROGS) $(CHECKS) $(HELPERS) $(BENCHES)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -MMD -MP -c $< -o $@

$(LIB): $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

# Tools name themselves after their file: src/tools/mkfs.crpfs.c -> mkfs.crpfs
$(BUILD)/%: $(BUILD)/src/tools/%.o $(LIB)
	$(CC) $(LDFLAGS) -o $@ $< $(LIB) $(LIBS)

$(BUILD)/mount.crpfs: $(FUSE_OBJ) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $(FUSE_OBJ) $(LIB) $(FUSE_LIBS) $(LIBS)

$(BUILD)/tests/%: $(BUILD)/tests/%.o $(FIXTURE_OBJ) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $< $(FIXTURE_OBJ) $(LIB) $(CHECK_LIBS) $(LIBS)

$(BUILD)/tests/%: $(BUILD)/tests/helpers/%.o $(FIXTURE_OBJ) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $< $(FIXTURE_OBJ) $(LIB) $(CHECK_LIBS) $(LIBS)

$(BUILD)/bench/%: $(BUILD)/bench/%.o $(BENCH_LIB_OBJ) $(FIXTURE_OBJ) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $< $(BENCH_LIB_OBJ) $(FIXTURE_OBJ) $(LIB) $(CHECK_LIBS) $(FUSE_LIBS) $(LIBS)

$(BUILD)/bench-tools/%: $(BUILD)/bench/tools/%.o
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $< $(FUSE_LIBS) -pthread

# The on-disk decoder fuzzer: clang's libFuzzer over src/meta/ondisk.c alone.
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
FUZZERS := $(patsubst tests/fuzz/%.c,build-fuzz/%,$(FUZZ_SRC))
FUZZ_CFLAGS := -std=gnu11 -D_GNU_SOURCE -Iinclude -g -O1 \
	-fsanitize=fuzzer,address,undefined $(shell pkg-config --cflags libxxhash glib-2.0)

build-fuzz/%: tests/fuzz/%.c src/meta/ondisk.c $(wildcard src/util/*.c) $(wildcard include/crpfs/*.h)
	@mkdir -p build-fuzz
	clang $(FUZZ_CFLAGS) -o $@ $< src/meta/ondisk.c $(wildcard src/util/*.c) \
		$(shell pkg-config --libs libxxhash glib-2.0) -pthread

fuzz: $(FUZZERS)

check: all fuzz
	BUILD=$(BUILD) tests/run-tests.sh all

check-unit: all fuzz
	BUILD=$(BUILD) tests/run-tests.sh unit

check-integration: all
	BUILD=$(BUILD) tests/run-tests.sh integration

ASAN_MAKE := $(MAKE) BUILD=build-asan WERROR=0 CFLAGS="-O1 -g -fno-omit-frame-pointer" \
	SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined"

check-asan:
	$(ASAN_MAKE) all
	BUILD=build-asan tests/run-tests.sh asan

# Everything check and check-asan run, in two lanes side by side: the
# integration tests in one, the unit suites (plain, then under the
# sanitizers) in the other; the closing line counts both.
check-all: all fuzz
	$(ASAN_MAKE) all
	BUILD=$(BUILD) ASAN_BUILD=build-asan tests/run-tests.sh lanes

bench: all $(BENCH_TOOLS)
	BUILD=$(BUILD) bench/run-bench.sh

install: $(PROGS)
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(MANDIR)/man5
	install -m 0755 $(PROGS) $(DESTDIR)$(SBINDIR)/
	$(if $(MAN8),install -m 0644 $(MAN8) $(DESTDIR)$(MANDIR)/man8/)
	$(if $(MAN5),install -m 0644 $(MAN5) $(DESTDIR)$(MANDIR)/man5/)

uninstall:
	rm -f $(addprefix $(DESTDIR)$(SBINDIR)/,$(notdir $(PROGS)))
	rm -f $(addprefix $(DESTDIR)$(MANDIR)/man8/,$(notdir $(MAN8)))
	rm -f $(addprefix $(DESTDIR)$(MANDIR)/man5/,$(notdir $(MAN5)))

clean:
	rm -rf build build-asan build-fuzz

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
