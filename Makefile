# r1c build. `make` builds build/r1c; `make test` runs every test;
# `make bench` runs the benchmarks; `make demo` runs the main job.
# SAN=1 builds with ASan+UBSan into build-san/; `make fuzz` builds the
# libFuzzer targets with clang into build-fuzz/.

CC      ?= gcc
SAN     ?= 0
BUILD   := build
OPT     := -O3 -march=native
ifeq ($(SAN),1)
BUILD   := build-san
OPT     := -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
endif

OPENBLAS_OMP := /usr/lib/$(shell $(CC) -print-multiarch)/openblas-openmp/libopenblas.so.0
CFLAGS  += -DR1C_OPENBLAS_OPENMP=\"$(OPENBLAS_OMP)\"
CFLAGS  += -std=c11 -D_GNU_SOURCE -g $(OPT) -fno-math-errno -ffp-contract=fast -fopenmp -Wall -Wextra -Wno-unused-parameter -Wno-format-truncation -Wshadow -Isrc -MMD -MP
LDFLAGS += $(OPT) -fopenmp
LDLIBS  := -ldl -ljansson -lutf8proc -lgmp -lyaml -lseccomp -lpng -lm -lpthread

LIB_SRC  := $(shell find src -name '*.c' ! -path 'src/cli/*' ! -path 'src/backend/cuda/*' | sort)
CLI_SRC  := $(sort $(wildcard src/cli/*.c))
TEST_SRC := $(sort $(wildcard tests/test_*.c))
BENCH_SRC:= $(sort $(wildcard bench/bench_*.c))
FUZZ_SRC := $(sort $(wildcard fuzz/fuzz_*.c))

LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
CLI_OBJ  := $(CLI_SRC:%.c=$(BUILD)/obj/%.o)
TEST_BIN := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
BENCH_BIN:= $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)
DEPS_STAMP := build/.deps-ok

.PHONY: all test test-cuda bench demo fuzz clean deps
all: $(BUILD)/r1c

deps: $(DEPS_STAMP)
$(DEPS_STAMP): scripts/install-deps.sh
	@./scripts/install-deps.sh
	@mkdir -p build && touch $@

$(BUILD)/obj/%.o: %.c | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/libr1c.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/r1c: $(CLI_OBJ) $(BUILD)/libr1c.a
	$(CC) $(LDFLAGS) -o $@ $(CLI_OBJ) $(BUILD)/libr1c.a $(LDLIBS)

$(BUILD)/tests/%: tests/%.c tests/check.h $(BUILD)/libr1c.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests -o $@ $< $(BUILD)/libr1c.a $(LDLIBS)

$(BUILD)/bench/%: bench/%.c $(BUILD)/libr1c.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(BUILD)/libr1c.a $(LDLIBS)

test: $(BUILD)/r1c $(TEST_BIN)
	@./scripts/run-tests.sh $(BUILD)

bench: $(BUILD)/r1c $(BENCH_BIN)
	@./scripts/run-bench.sh $(BUILD)

# The main job: R1-Zero in miniature (task, tokenizer, base model, GRPO).
demo: $(BUILD)/r1c
	./$(BUILD)/r1c demo

FUZZ_CFLAGS := -std=c11 -D_GNU_SOURCE -g -O1 -Isrc -Wno-unknown-pragmas -fsanitize=fuzzer,address,undefined
fuzz: $(DEPS_STAMP)
	@mkdir -p build-fuzz
	@for f in $(FUZZ_SRC); do n=$$(basename $$f .c); \
	  echo "clang $$n"; \
	  clang $(FUZZ_CFLAGS) -o build-fuzz/$$n $$f $(LIB_SRC) $(LDLIBS) || exit 1; done

clean:
	rm -rf build build-san build-fuzz

-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d)
