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

LIB_SRC  := $(shell find src -name '*.c' ! -path 'src/cli/*' ! -path 'src/backend/cuda/*' ! -path 'src/dist/nccl/*' | sort)
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

# CLI_CUDA_LIB / CLI_CUDA_LDLIBS: set by the CUDA block below (--backend cuda)
$(BUILD)/r1c: $(CLI_OBJ) $(BUILD)/libr1c.a
	$(CC) $(LDFLAGS) -o $@ $(CLI_OBJ) $(CLI_CUDA_LIB) $(BUILD)/libr1c.a $(LDLIBS) $(CLI_CUDA_LDLIBS)

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

-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d) $(TEST_BIN:%=%.d)

# ---- CUDA backend (src/backend/cuda) ----------------------------------------
# With nvcc on the PATH (or NVCC=/path/to/nvcc), CUDA defaults to 1: `make`
# builds $(BUILD)/libr1c_cuda.a and `make test` also compiles the GPU tests
# (CI has nvcc but no GPU), but only `make test-cuda` runs them. CUDA=0
# turns all of it off; sanitizer builds default to CUDA=0.
NVCC ?= $(shell command -v nvcc 2>/dev/null)
ifneq ($(NVCC),)
CUDA_HOME   ?= $(patsubst %/bin/nvcc,%,$(realpath $(NVCC)))
# toolkit layout (lib64, targets/<arch>/lib) or Debian's (multiarch dir)
CUDA_LIBDIR ?= $(patsubst %/,%,$(dir $(firstword $(wildcard $(CUDA_HOME)/lib64/libcublas.so \
                 $(CUDA_HOME)/targets/*/lib/libcublas.so /usr/lib/$(shell $(CC) -print-multiarch)/libcublas.so))))
endif
ifeq ($(SAN),1)
CUDA ?= 0
endif
# auto: on when nvcc and cuBLAS are both there
ifneq ($(NVCC),)
ifneq ($(CUDA_LIBDIR),)
CUDA ?= 1
endif
endif
CUDA ?= 0

ifeq ($(CUDA),1)
# sm_90 (Hopper) first, sm_80 (Ampere) too; fp32 and no fast-math: this is
# the reference-accuracy build.
NVCC_ARCH   ?= -arch=sm_90 -gencode=arch=compute_80,code=sm_80 -gencode=arch=compute_90,code=sm_90
NVCCFLAGS   ?= -O3 -std=c++17 $(NVCC_ARCH) -Xcompiler -Wall -MMD -MP
CUDA_SRC    := $(sort $(wildcard src/backend/cuda/*.cu))
CUDA_OBJ    := $(CUDA_SRC:%.cu=$(BUILD)/obj/%.o)
CUDA_TSRC   := $(sort $(wildcard tests/cuda/test_cuda_*.c))
CUDA_TBIN   := $(CUDA_TSRC:tests/cuda/%.c=$(BUILD)/tests-cuda/%)
CUDA_LDLIBS := -L$(CUDA_LIBDIR) -Wl,-rpath,$(CUDA_LIBDIR) -lcublas -lcublasLt -lcudart -lstdc++
# GPU tests link the CPU reference and what it needs, not all of libr1c,
# so a GPU machine needs only OpenBLAS besides the CUDA toolkit.
CUDA_REF_OBJ := $(addprefix $(BUILD)/obj/src/,backend/cpu/backend_cpu.o backend/cpu/blas.o backend/handoff.o base/rng.o base/err.o gen/sampler.o)

$(BUILD)/obj/%.o: %.cu
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) -Isrc -c $< -o $@

$(BUILD)/libr1c_cuda.a: $(CUDA_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/tests-cuda/%: tests/cuda/%.c tests/check.h $(BUILD)/libr1c_cuda.a $(CUDA_REF_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests -o $@ $< $(BUILD)/libr1c_cuda.a $(CUDA_REF_OBJ) $(CUDA_LDLIBS) -ldl -lm -lpthread

# The model test runs the whole library (and build/r1c --backend cuda), so
# it links all of libr1c and its libraries.
$(BUILD)/tests-cuda/test_cuda_model: tests/cuda/test_cuda_model.c tests/check.h $(BUILD)/libr1c_cuda.a $(BUILD)/libr1c.a $(BUILD)/r1c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests -o $@ $< $(BUILD)/libr1c_cuda.a $(BUILD)/libr1c.a $(LDLIBS) $(CUDA_LDLIBS)

# The data-parallel test drives `r1c launch --gpus 2` and compares the runs'
# checkpoints with the library's loaders.
$(BUILD)/tests-cuda/test_cuda_dist: tests/cuda/test_cuda_dist.c tests/check.h tests/dist_helpers.h $(BUILD)/libr1c.a $(BUILD)/r1c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests -o $@ $< $(BUILD)/libr1c.a $(LDLIBS)

# r1c gets --backend cuda: backend_select.c is the only file that names it.
CLI_CUDA_LIB    := $(BUILD)/libr1c_cuda.a
CLI_CUDA_LDLIBS := $(CUDA_LDLIBS)
$(BUILD)/r1c: $(BUILD)/libr1c_cuda.a
$(BUILD)/obj/src/cli/backend_select.o: CFLAGS += -DR1C_CUDA=1

$(BUILD)/bench-cuda/%: bench/cuda/%.c $(BUILD)/libr1c_cuda.a $(BUILD)/obj/src/base/err.o $(BUILD)/obj/src/backend/handoff.o
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(BUILD)/libr1c_cuda.a $(BUILD)/obj/src/base/err.o $(BUILD)/obj/src/backend/handoff.o \
	    $(CUDA_LDLIBS) -lm -lpthread

# the whole model (training, generation): links all of libr1c
$(BUILD)/bench-cuda/bench_cuda_model: bench/cuda/bench_cuda_model.c $(BUILD)/libr1c_cuda.a $(BUILD)/libr1c.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(BUILD)/libr1c_cuda.a $(BUILD)/libr1c.a $(LDLIBS) $(CUDA_LDLIBS)

all: $(BUILD)/bench-cuda/bench_cuda_model

# every cuBLASLt algorithm for a model's forward GEMMs: time and bit checks
$(BUILD)/bench-cuda/bench_gemm_algos: CFLAGS += -I$(CUDA_HOME)/include
all: $(BUILD)/bench-cuda/bench_gemm_algos

# GEMM / attention / LM-head throughput against SGEMM and copy ceilings
bench-cuda: $(BUILD)/bench-cuda/bench_cuda_ops
	@./$<

all: $(BUILD)/libr1c_cuda.a
test: $(CUDA_TBIN)

# NCCL (src/dist/nccl, docs/distributed.md): compiled and linked into r1c
# only when nccl.h and libnccl are found next to the toolkit or in the
# system directories; NCCL=0 turns it off. Without it, multi-GPU jobs use
# the tcp communicator (staged through host memory).
NCCL_H      ?= $(firstword $(wildcard $(CUDA_HOME)/include/nccl.h /usr/include/nccl.h /usr/local/include/nccl.h))
NCCL_LIBDIR ?= $(patsubst %/,%,$(dir $(firstword $(wildcard $(CUDA_HOME)/lib64/libnccl.so $(CUDA_HOME)/lib/libnccl.so \
                 $(CUDA_HOME)/targets/*/lib/libnccl.so /usr/lib/$(shell $(CC) -print-multiarch)/libnccl.so /usr/local/lib/libnccl.so))))
ifneq ($(NCCL_H),)
ifneq ($(NCCL_LIBDIR),)
NCCL ?= 1
endif
endif
NCCL ?= 0
ifeq ($(NCCL),1)
NCCL_OBJ := $(BUILD)/obj/src/dist/nccl/comm_nccl.o
$(NCCL_OBJ): CFLAGS += -DR1C_NCCL=1 -I$(dir $(NCCL_H)) -I$(CUDA_HOME)/include
$(BUILD)/libr1c_nccl.a: $(NCCL_OBJ)
	@rm -f $@
	ar rcs $@ $^
CLI_CUDA_LIB    += $(BUILD)/libr1c_nccl.a
CLI_CUDA_LDLIBS += -L$(NCCL_LIBDIR) -Wl,-rpath,$(NCCL_LIBDIR) -lnccl
$(BUILD)/r1c: $(BUILD)/libr1c_nccl.a
$(BUILD)/obj/src/cli/dist_select.o: CFLAGS += -DR1C_NCCL=1
-include $(NCCL_OBJ:.o=.d)
endif

test-cuda: $(CUDA_TBIN)
	@pass=0; fail=0; for t in $(CUDA_TBIN); do \
	  if $$t > $$t.log 2>&1; then pass=$$((pass + 1)); s=ok; else fail=$$((fail + 1)); s=FAIL; fi; \
	  printf '%-34s %s\n' $$(basename $$t) $$s; sed 's/^/    | /' $$t.log | tail -60; done; \
	echo "tests-cuda: $$pass passed, $$fail failed"; [ $$fail -eq 0 ]

-include $(CUDA_OBJ:.o=.d)
else
test-cuda bench-cuda:
	@echo "SKIP $@: CUDA=0 (no nvcc found, or disabled)"
endif
.PHONY: bench-cuda
