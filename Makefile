# sbida build. `make` builds everything into build/; see `make help`.
#
#   make            library, tools (build/sbida) and tests, release flags
#   make test       installs missing Debian packages (when root), builds, runs every test
#   make asan       the same tests under AddressSanitizer + UndefinedBehaviorSanitizer
#   make tsan       the daemon's tests (test_server_*, tests/py/test_api_*) under ThreadSanitizer
#   make check-layers  the include rules of core/layers.txt (part of make test)
#   make run        builds and starts the daemon on 127.0.0.1:$(PORT)
#   make bench      benchmarks (C engine vs PyTorch, daemon throughput)
#   make web-vendor refresh the console's charting library (uPlot) from npm; the build uses the committed copy
#   make fuzz       libFuzzer (clang, ASan+UBSan) on every parser, FUZZ_SECONDS=60 each
#   make fuzz-replay  replays the fuzz corpora and regression inputs (part of make test)
#   make torture    kill -9, full disk, read-only db, SIGSTOP under 32 clients (slow, not in CI)
#   make mutation   mutation testing: deliberate bugs the tests must catch (slow, not in CI)
#   make models     retrains the shipped models (long; models/train-all.sh)
#   make scale-study  the Lorenz96 scale study, N = 8..256, W = 10..50 (slow; tests/eval/scale_study.py)
#   make clean      removes build directories
#   make deps       installs the Debian packages the project needs (root), or prints the line
#   NATIVE=1        compile for this CPU (-march=native) instead of portable x86-64
#   MPI=0           build without OpenMPI (default: with it when pkg-config finds ompi-c;
#                   `mpirun -np P build/sbida train`, docs/training-mpi.md)

BUILD   ?= build
CC      ?= cc
NATIVE  ?= 0
OPT     ?= -O2
SAN     ?=
PORT    ?= 8080

ifeq ($(NATIVE),1)
ARCH := -march=native
else
ARCH := -march=x86-64 -mtune=generic
endif

PKGS     := jansson openblas sqlite3 libuv libmicrohttpd fftw3 libpng libpq
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
# One include root: library headers are named by their module ("est/est.h"),
# the daemon's by "server/..." from outside server/ (tests).
CPPFLAGS := -D_GNU_SOURCE -Icore -I.
CFLAGS   := -std=c11 $(OPT) -g -Wall -Wextra -Werror -Wno-error=unused-function -MMD -MP \
            -fno-strict-aliasing $(ARCH) $(SAN) $(PKG_CFLAGS)
LDFLAGS  := $(SAN)
LDLIBS   := $(PKG_LIBS) -lm -lpthread

# MPI (Debian's OpenMPI, libopenmpi-dev) for `mpirun -np P build/sbida train`
# (docs/training-mpi.md). Only core/train/train_dist.c includes mpi.h (as a
# system header: its warnings are not ours); without OpenMPI, or with MPI=0,
# that file builds its one-process fallback and nothing links libmpi. After
# changing MPI=, `make clean` (the object does not track the flag).
MPI ?= $(shell pkg-config --exists ompi-c 2>/dev/null && echo 1 || echo 0)
ifeq ($(MPI),1)
MPI_CFLAGS := -DSB_HAVE_MPI $(patsubst -I%,-isystem %,$(shell pkg-config --cflags ompi-c))
# train_dist.o comes from the static library only into programs that train
# (sbida, some tests): sbidad does not depend on libmpi
LDLIBS     += $(shell pkg-config --libs ompi-c)
endif
$(BUILD)/obj/core/train/train_dist.o: CPPFLAGS += $(MPI_CFLAGS)
# the Winograd micro-kernel needs a * b + c as one FMA (ISO C mode keeps them apart)
$(BUILD)/obj/core/nn/nn_wino_fused.o: CFLAGS += -ffp-contract=fast

LIB_SRC  := $(filter-out core/tool/%,$(wildcard core/*/*.c core/*/*/*.c))
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
TOOL_SRC := $(wildcard core/tool/*.c)
TOOL_OBJ := $(TOOL_SRC:%.c=$(BUILD)/obj/%.o)
SRV_SRC  := $(wildcard server/*.c)
SRV_OBJ  := $(SRV_SRC:%.c=$(BUILD)/obj/%.o)
TEST_SRC := $(wildcard tests/unit/test_*.c)
TEST_BIN := $(TEST_SRC:tests/unit/%.c=$(BUILD)/tests/%)
TEST_HELPERS := $(filter-out tests/unit/test_%,$(wildcard tests/unit/*.c))
TEST_HELPER_OBJ := $(TEST_HELPERS:%.c=$(BUILD)/obj/%.o)

# Fuzz harnesses (tests/fuzz/): each fuzz_<target>.c is linked twice, with
# libFuzzer into build-fuzz/fuzz_<target> (make fuzz) and with replay_main.c
# into $(BUILD)/tests/test_fuzz_<target>, which make test runs on the corpus.
FUZZ_TARGETS := npy safetensors obs config job_spec model query http
FUZZ_HTTP    := query http
FUZZ_COMMON  := $(BUILD)/obj/tests/fuzz/fuzz_util.o
FUZZ_REPLAY_BIN := $(FUZZ_TARGETS:%=$(BUILD)/tests/test_fuzz_%)
FUZZ_BIN := $(FUZZ_TARGETS:%=$(BUILD)/fuzz_%)
FUZZ_SECONDS ?= 60
# clang 14 with glibc lacks CMPLX (glibc only defines it for GCC >= 4.7)
FUZZ_SAN := -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all \
            '-DCMPLX(x,y)=__builtin_complex((double)(x),(double)(y))'

LIB := $(BUILD)/libsbida.a
TOOL := $(BUILD)/sbida
DAEMON := $(if $(SRV_SRC),$(BUILD)/sbidad)

.SECONDARY:
.PHONY: web-vendor all build test test-run check-layers asan tsan tsan-run run bench mutation deps deps-check models scale-study clean help \
        fuzz fuzz-bins fuzz-replay torture
all: build
build: $(LIB) $(TOOL) $(DAEMON) $(TEST_BIN) $(FUZZ_REPLAY_BIN)

# Sources compiled without $(SAN) (make tsan: see there).
NOSAN ?=
$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC    $<"
	@$(CC) $(CPPFLAGS) $(if $(filter $(NOSAN),$<),$(filter-out $(SAN),$(CFLAGS)),$(CFLAGS)) -c $< -o $@

$(LIB): $(LIB_OBJ)
	@mkdir -p $(dir $@)
	@echo "  AR    $@"
	@rm -f $@ && ar rcs $@ $^

$(TOOL): $(TOOL_OBJ) $(LIB)
	@echo "  LINK  $@"
	@$(CC) $(LDFLAGS) -o $@ $(TOOL_OBJ) $(LIB) $(LDLIBS)

$(BUILD)/sbidad: $(SRV_OBJ) $(LIB)
	@echo "  LINK  $@"
	@$(CC) $(LDFLAGS) -o $@ $(SRV_OBJ) $(LIB) $(LDLIBS)

# Unit tests of the daemon's modules (test_server_*.c) also link server/*.o but main.
SRV_LIB_OBJ := $(filter-out $(BUILD)/obj/server/main.o,$(SRV_OBJ))
$(BUILD)/tests/test_server_%: $(BUILD)/obj/tests/unit/test_server_%.o $(TEST_HELPER_OBJ) $(SRV_LIB_OBJ) $(LIB)
	@mkdir -p $(dir $@)
	@echo "  LINK  $@"
	@$(CC) $(LDFLAGS) -o $@ $< $(TEST_HELPER_OBJ) $(SRV_LIB_OBJ) $(LIB) $(LDLIBS) -lcmocka

$(BUILD)/tests/%: $(BUILD)/obj/tests/unit/%.o $(TEST_HELPER_OBJ) $(LIB)
	@mkdir -p $(dir $@)
	@echo "  LINK  $@"
	@$(CC) $(LDFLAGS) -o $@ $< $(TEST_HELPER_OBJ) $(LIB) $(LDLIBS) -lcmocka

$(BUILD)/obj/tests/fuzz/%.o: CPPFLAGS += -DFUZZ_SRCDIR='"$(CURDIR)"'

$(BUILD)/tests/test_fuzz_%: $(BUILD)/obj/tests/fuzz/fuzz_%.o $(BUILD)/obj/tests/fuzz/replay_main.o $(FUZZ_COMMON) \
                            $(BUILD)/obj/tests/fuzz/fuzz_http_app.o $(SRV_LIB_OBJ) $(LIB)
	@mkdir -p $(dir $@)
	@echo "  LINK  $@"
	@$(CC) $(LDFLAGS) -o $@ $(filter %.o,$^) $(LIB) $(LDLIBS) -lcmocka

$(BUILD)/fuzz_%: $(BUILD)/obj/tests/fuzz/fuzz_%.o $(FUZZ_COMMON) $(BUILD)/obj/tests/fuzz/fuzz_http_app.o $(SRV_LIB_OBJ) $(LIB)
	@echo "  LINK  $@"
	@$(CC) $(LDFLAGS) -fsanitize=fuzzer -o $@ $(filter %.o,$^) $(LIB) $(LDLIBS)

# The two README commands install what is missing first (deploy/install-deps.sh).
deps:
	@deploy/install-deps.sh

deps-check:
	@deploy/install-deps.sh --if-missing

# make deps has installed every tool a test needs, so a skipped test is a failure here.
test: deps-check
	@$(MAKE) --no-print-directory build
	@$(MAKE) --no-print-directory check-layers
	@SBIDA_NO_SKIP=1 BUILD=$(BUILD) tests/run.sh

# Includes name their module and go down the layers of core/layers.txt; the
# self-test shows the checker failing on injected wrong includes and a cycle.
check-layers:
	@python3 tests/check_layers.py
	@python3 tests/check_layers.py --self-test

# Tests without the dependency check (used by asan and CI-internal reruns).
test-run: build check-layers
	@BUILD=$(BUILD) tests/run.sh

asan: deps-check
	@$(MAKE) --no-print-directory BUILD=build-asan OPT=-O1 \
	  SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" test-run

# ThreadSanitizer: the daemon and its tests (unit tests of server/ and the
# HTTP API tests, which start the daemon). tests/tsan.supp lists each
# suppression with its reason; TSan's exit code (66) and any report in a
# daemon's log fail the tests. Instrumented: server/, the thread runtime
# (core/util/par.c), the estimator interface, catalog and model files. Left
# plain (TSAN_PLAIN): the numeric kernels, whose loops run on per-call
# buffers of one thread (or on disjoint chunks handed out by par.c);
# instrumented, they made the API tests' jobs 20-50x slower than the tests'
# deadlines (a PF spin-up of 3000 members took minutes).
TSAN_TESTS := $(filter $(BUILD)/tests/test_server_% $(BUILD)/tests/test_score_batch,$(TEST_BIN))
# the score batcher's locking is checked (instrumented); the rest of the kinds is not
TSAN_PLAIN := core/sim/% core/nn/% core/baselines/% $(filter-out core/kinds/score/score_batch.c,$(wildcard core/kinds/*.c core/kinds/*/*.c)) core/diff/% core/obs/% core/train/% \
              core/eval/% core/util/rng.c core/util/symeig.c core/util/npy.c core/util/safetensors.c
tsan: deps-check
	@$(MAKE) --no-print-directory BUILD=build-tsan OPT=-O1 \
	  SAN="-fsanitize=thread -fno-omit-frame-pointer" NOSAN="$(TSAN_PLAIN)" tsan-run

tsan-run:
	@$(MAKE) --no-print-directory $(LIB) $(DAEMON) $(TOOL) $(TSAN_TESTS)
	@export TSAN_OPTIONS="suppressions=$(CURDIR)/tests/tsan.supp halt_on_error=0 exitcode=66 second_deadlock_stack=1"; \
	  fail=0; for t in $(TSAN_TESTS); do echo "  TSAN  $$t"; $$t >$$t.log 2>&1 || { cat $$t.log; fail=1; }; \
	    if grep -q "ThreadSanitizer" $$t.log; then cat $$t.log; fail=1; fi; done; \
	  BUILD=$(BUILD) /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/py/test_api_*.py || fail=1; \
	  exit $$fail

run: deps-check
	@$(MAKE) --no-print-directory build
	@PORT=$(PORT) deploy/run-local.sh

# Refreshes the web console's vendored charting library from npm (needs the
# registry; the build itself never does: server/web/vendor/ is committed).
web-vendor:
	@cd server/web && rm -rf node_modules && npm ci --no-audit --no-fund && \
	  cp node_modules/uplot/dist/uPlot.iife.min.js node_modules/uplot/dist/uPlot.min.css \
	     node_modules/uplot/LICENSE vendor/uplot/ && rm -rf node_modules && \
	  echo "server/web/vendor/uplot: uplot $$(node -p "require('./package-lock.json').packages['node_modules/uplot'].version")"

# make bench installs what it compares against (PyTorch, wrk) or says what is missing.
bench:
	@deploy/install-deps.sh --if-missing --bench
	@$(MAKE) --no-print-directory build
	@BUILD=$(BUILD) tests/bench/run.sh

# Each mutant is built and tested in a scratch copy; the checkout is untouched.
# MUTANTS=id1,id2 runs a subset; tests/mutation/run.py --help for more.
mutation: deps-check
	@tests/mutation/run.py $(if $(MUTANTS),--only $(MUTANTS))

# libFuzzer needs clang (Debian's clang 14 ships it): install-deps.sh --fuzz.
fuzz-bins: $(FUZZ_BIN)

fuzz:
	@deploy/install-deps.sh --if-missing --fuzz
	@$(MAKE) --no-print-directory BUILD=build-fuzz CC=clang OPT=-O1 SAN="$(FUZZ_SAN)" fuzz-bins
	@FUZZ_SECONDS=$(FUZZ_SECONDS) tests/fuzz/run.sh $(if $(FUZZ_ONLY),$(FUZZ_ONLY),$(FUZZ_TARGETS))

fuzz-replay: $(FUZZ_REPLAY_BIN)
	@for t in $(FUZZ_REPLAY_BIN); do $$t || exit 1; done

# 100 kill -9 under 32 clients and the rest (tests/torture/README.md); KILLS=N for a shorter run.
torture: build
	@BUILD=$(BUILD) python3 tests/torture/run.py $(if $(KILLS),--kills $(KILLS))

models: deps-check
	@$(MAKE) --no-print-directory build
	@BUILD=$(BUILD) models/train-all.sh

# The Lorenz96 scale study (issue 13, docs/local-score.md): etkf, letkf (radius tuned per N),
# npe/posterior-score (N = 40) and the local score on the same seeded cases, N = 8..256 and
# W = 10, 20, 50, into docs/results/scale-study/. SCALE_CASES=200 is the issue's full run
# (hours on 2 cores); the default is what the shipped table used.
SCALE_CASES ?= 8=8,16=4,32=2,64=1,128=1,256=1,w10=1,w20=1,w50=1
BASELINE_CASES ?= 200
scale-study: build
	@BUILD=$(BUILD) nice python3 tests/eval/scale_study.py --cases '$(SCALE_CASES)' --baseline-cases $(BASELINE_CASES) $(SCALE_ARGS)

clean:
	rm -rf build build-asan build-tsan build-fuzz

help:
	@sed -n '/^$$/q;p' Makefile

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)

# The daemon embeds schema/openapi.json (.incbin), which -MMD does not track.
$(BUILD)/obj/server/openapi_embed.o: schema/openapi.json
# ... and the web console's files (server/web/, uPlot vendored from npm).
$(BUILD)/obj/server/web_embed.o: $(wildcard server/web/*.html server/web/*.js server/web/*.css server/web/vendor/*/*)
