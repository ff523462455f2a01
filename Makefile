# The two commands of the README: `make run` and `make test`. Both install missing Debian
# packages (scripts/install-deps.sh), then configure and build Release into build/.
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=
# ON: compiler warnings are errors (.ci/run sets it).
WERROR ?= OFF
# The benchmarks (bench/): built by `make build` and `make run`, not by `make test` (no test runs
# them; they cost a minute of a clean build's 25); .ci/run builds them after the tests.
BENCH ?= ON

# The sanitizer and fuzz checks that CI runs after `make test` (docs/reliability.md).
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
FUZZ_RUNS ?= 10000

.PHONY: all deps build run test test-sanitize test-fuzz test-container format-check clean

all: build

deps:
	@bash scripts/install-deps.sh

build: deps
	@cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release -DDSIR_WERROR=$(WERROR) -DDSIR_BUILD_BENCH=$(BENCH) $(CMAKE_FLAGS) > $(BUILD).configure.log 2>&1 \
	  || { cat $(BUILD).configure.log; exit 1; }
	@cmake --build $(BUILD) -j $(JOBS)

run: build
	@bash scripts/run-quickstart.sh

test: BENCH = OFF
test: build
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS) --timeout 1200

# ASan + UBSan over the unit tests. -O1 -g1: line numbers in reports at a fraction of the compile
# time of full debug info; no benchmarks (not part of the unit label).
test-sanitize: deps
	@cmake -S . -B $(ASAN_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG" -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG" \
	  -DDSIR_SANITIZE=address,undefined -DDSIR_BUILD_BENCH=OFF > $(ASAN_BUILD).configure.log 2>&1 \
	  || { cat $(ASAN_BUILD).configure.log; exit 1; }
	@cmake --build $(ASAN_BUILD) -j $(JOBS)
	@cd $(ASAN_BUILD) && ctest --output-on-failure -L unit -j $(JOBS) --timeout 1200

# The libFuzzer harnesses (clang-14): each replays FUZZ_RUNS inputs (seed 1: the same sequence on
# every machine) from its seeds, and its seeds must be read to the end (tests/fuzz/CMakeLists.txt).
test-fuzz: deps
	@cmake -S . -B $(FUZZ_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang-14 \
	  -DCMAKE_CXX_COMPILER=clang++-14 -DDSIR_FUZZ=ON -DDSIR_FUZZ_RUNS=$(FUZZ_RUNS) \
	  > $(FUZZ_BUILD).configure.log 2>&1 || { cat $(FUZZ_BUILD).configure.log; exit 1; }
	@cmake --build $(FUZZ_BUILD) -j $(JOBS)
	@cd $(FUZZ_BUILD) && ctest --output-on-failure -L fuzz

# The CPU container recipe (docker/Containerfile): a debootstrapped Debian 12 base, the image
# built by buildah, `make test` inside it under podman (tests/container/make_test_in_image.sh).
# Opt-in and slow (~35 min on 2 cores); run as root.
test-container: build
	@DSIR_DEPS=container bash scripts/install-deps.sh
	@cd $(BUILD) && DSIR_CONTAINER_TEST=1 ctest --output-on-failure -L container

# Every C++ file as .clang-format has it (scripts/format.sh formats them).
format-check: deps
	@bash scripts/format.sh --check

clean:
	rm -rf $(BUILD) $(BUILD).configure.log $(ASAN_BUILD) $(ASAN_BUILD).configure.log $(FUZZ_BUILD) \
	  $(FUZZ_BUILD).configure.log
