#!/usr/bin/env bash
# Builds dsir inside an image: the one script behind every container recipe (docker/Dockerfile
# and docker/dsir.def for CUDA, docker/Containerfile for the CPU image), so they cannot drift
# apart. Packages come from scripts/install-deps.sh (one list); then configure and build.
#   bash docker/build-in-image.sh SOURCE_DIR
# Environment:
#   LIBTORCH_URL          a LibTorch 2.x zip (CUDA) to build against; unset: Debian's LibTorch 1.13 (CPU)
#   TORCH_CUDA_ARCH_LIST  GPU architectures to build for (no GPU is visible during an image build)
#   DSIR_BUILD_TESTS      ON: also the tests and what they call (the CPU image; Debian only, since
#                         the tests' packages include Debian's chromium and Slurm). Default OFF.
set -euo pipefail
src=${1:?usage: build-in-image.sh SOURCE_DIR}
tests=${DSIR_BUILD_TESTS:-OFF}

groups="build"
[[ -n ${LIBTORCH_URL:-} ]] && groups+=" fetch" || groups+=" torch"
[[ $tests == ON ]] && groups+=" test"
DSIR_DEPS=$groups bash "$src/scripts/install-deps.sh"
rm -rf /var/lib/apt/lists/*

cmake_args=(-G Ninja -DCMAKE_BUILD_TYPE=Release -DDSIR_BUILD_TESTS="$tests" -DDSIR_BUILD_BENCH=OFF)
if [[ -n ${LIBTORCH_URL:-} ]]; then
  curl -fsSL "$LIBTORCH_URL" -o /tmp/libtorch.zip
  unzip -q /tmp/libtorch.zip -d /opt
  rm /tmp/libtorch.zip
  [[ -f /opt/libtorch/share/cmake/Torch/TorchConfig.cmake ]] ||
    { echo "build-in-image: $LIBTORCH_URL is not a LibTorch zip" >&2; exit 1; }
  export TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-7.0;8.0;8.6;8.9;9.0}"
  cmake_args+=(-DCMAKE_PREFIX_PATH=/opt/libtorch)
fi
# The same configuration as `make test` (Makefile) for the CPU image, so `make test` inside it
# builds nothing again.
cmake -S "$src" -B "$src/build" "${cmake_args[@]}"
cmake --build "$src/build"
"$src/build/dsir" --version
