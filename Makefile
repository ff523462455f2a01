# The two commands of the README: `make run` and `make test`. Both install missing Debian
# packages (scripts/install-deps.sh), then configure and build Release into build/.
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=

.PHONY: all deps build run test clean

all: build

deps:
	@bash scripts/install-deps.sh

build: deps
	@cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS) > $(BUILD).configure.log 2>&1 \
	  || { cat $(BUILD).configure.log; exit 1; }
	@cmake --build $(BUILD) -j $(JOBS)

run: build
	@bash scripts/run-quickstart.sh

test: build
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS) --timeout 1200

clean:
	rm -rf $(BUILD) $(BUILD).configure.log
