# tally — one Makefile, pkg-config, no generated build system.
#   make            build/tally (optimised)
#   make test       unit (cmocka), fuzz-corpus replay, integration, differential and crash tests,
#                   all against an ASan+UBSan build
#   make bench      tally vs ClickHouse on the same generated data (see bench/README.md)
#   make deps       install the Debian packages the project needs (root or sudo)
#   make format-check / format

PKGS      := libmicrohttpd libzstd libxxhash zlib
DEB_DEPS  := build-essential pkg-config libmicrohttpd-dev libzstd-dev libxxhash-dev zlib1g-dev \
             libroaring-dev libcmocka-dev clang-14 clang-format-14 python3 tzdata curl
.DEFAULT_GOAL := all
EXTRA_LIBS :=
GEN_SRCS   :=
# Optional fragments, one per feature that brings its own dependencies or generated sources:
# each mk/*.mk may add to PKGS, DEB_DEPS, EXTRA_LIBS and GEN_SRCS (C files it generates under
# build/gen) and add prerequisites to deps, depcheck and test.
-include $(sort $(wildcard mk/*.mk))
CC        ?= cc
STD_WARN  := -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wshadow -Wstrict-prototypes -Wformat=2 -Wvla \
             -Wmissing-prototypes -Wno-unused-parameter -Wno-format-truncation
ifeq ($(CI),true)
STD_WARN  += -Werror
endif
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null) $(EXTRA_LIBS) -lroaring -lpthread -lm
CFLAGS_REL := -O2 -g $(STD_WARN) $(PKG_CFLAGS) -Isrc -Ibuild/gen
CFLAGS_SAN := -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all \
              -fno-omit-frame-pointer $(STD_WARN) $(PKG_CFLAGS) -Isrc -Ibuild/gen -DTL_TESTING=1

SRCS      := $(shell find src -name '*.c' | sort)
LIB_SRCS  := $(filter-out src/main.c,$(SRCS)) $(GEN_SRCS)
HDRS      := $(shell find src -name '*.h')
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
FUZZ_SRCS := $(wildcard fuzz/fuzz_*.c)

REL_OBJS  := $(LIB_SRCS:%.c=build/rel/%.o)
SAN_OBJS  := $(LIB_SRCS:%.c=build/san/%.o)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=build/san/tests/%)
FUZZ_REPLAY := $(FUZZ_SRCS:fuzz/%.c=build/san/fuzz/%)

.PHONY: all test test-tsan unit fuzz-replay integration difftest crashtest bench deps depcheck \
        format format-check clean run fuzz

all: depcheck build/tally

build/tally: build/rel/src/main.o build/rel/libtally.a
	$(CC) -o $@ $^ $(PKG_LIBS)

build/rel/libtally.a: $(REL_OBJS)
	ar rcs $@ $^

build/rel/%.o: %.c $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_REL) -c -o $@ $<

build/san/%.o: %.c $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_SAN) -c -o $@ $<

build/san/libtally.a: $(SAN_OBJS)
	ar rcs $@ $^

build/san/tally: build/san/src/main.o build/san/libtally.a
	$(CC) $(CFLAGS_SAN) -o $@ $^ $(PKG_LIBS)

build/san/tests/%: tests/unit/%.c build/san/libtally.a $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_SAN) -o $@ $< build/san/libtally.a $(PKG_LIBS) -lcmocka

# Fuzz targets: with a corpus-replay main() under `make test`; with libFuzzer under `make fuzz`.
build/san/fuzz/%: fuzz/%.c fuzz/replay_main.c build/san/libtally.a $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_SAN) -o $@ $< fuzz/replay_main.c build/san/libtally.a $(PKG_LIBS)

FUZZ_CFLAGS := -O1 -g -fsanitize=fuzzer,address,undefined -std=c11 -D_GNU_SOURCE $(PKG_CFLAGS) \
               -Isrc -DTL_TESTING=1
fuzz: depcheck
	@mkdir -p build/fuzz
	@for f in $(FUZZ_SRCS); do n=$$(basename $$f .c); \
	  clang-14 $(FUZZ_CFLAGS) -o build/fuzz/$$n $$f $(LIB_SRCS) $(PKG_LIBS) || exit 1; done
	@echo "fuzzers in build/fuzz/; run e.g. build/fuzz/fuzz_json tests/data/corpus/json"

# The threaded paths (log group commit, indexer, parallel queries, store locks) under TSan.
CFLAGS_TSAN := -O1 -g -fsanitize=thread $(STD_WARN) $(PKG_CFLAGS) -Isrc -DTL_TESTING=1
TSAN_TESTS  := log index query store
test-tsan: depcheck
	@mkdir -p build/tsan
	@for t in $(TSAN_TESTS); do \
	  $(CC) $(CFLAGS_TSAN) -o build/tsan/test_$$t tests/unit/test_$$t.c $(LIB_SRCS) $(PKG_LIBS) \
	    -lcmocka || exit 1; \
	  echo "== tsan test_$$t"; ./build/tsan/test_$$t || exit 1; done

unit: $(UNIT_BINS)
	@fail=0; for t in $(UNIT_BINS); do echo "== $$t"; $$t || fail=1; done; exit $$fail

fuzz-replay: $(FUZZ_REPLAY)
	@fail=0; for t in $(FUZZ_REPLAY); do n=$$(basename $$t); \
	  $$t tests/data/corpus/$${n#fuzz_} tests/data/crashers || fail=1; done; exit $$fail

integration: build/san/tally
	python3 tests/run.py --bin build/san/tally

test: depcheck build/tally build/san/tally
	python3 tests/run.py --bin build/san/tally --make "$(MAKE)"

bench: depcheck build/tally
	bash bench/run.sh

run: depcheck build/tally
	./build/tally serve

deps:
	@bash tools/deps.sh $(DEB_DEPS)

depcheck:
	@bash tools/deps.sh --check $(DEB_DEPS)

format:
	clang-format-14 -i $(SRCS) $(HDRS) $(UNIT_SRCS) $(FUZZ_SRCS)

format-check:
	clang-format-14 --dry-run -Werror $(SRCS) $(HDRS) $(UNIT_SRCS) $(FUZZ_SRCS)

clean:
	rm -rf build
