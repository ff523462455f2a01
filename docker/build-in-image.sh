#!/usr/bin/env bash
# Builds dsir inside a CUDA image: the one script behind docker/Dockerfile and docker/dsir.def, so
# the two cannot drift apart. Installs the build dependencies (the list of scripts/install-deps.sh,
# with LibTorch 2.x for CUDA from pytorch.org instead of Debian's CPU libtorch-dev, and without the
# Slurm packages, which only the tests' private cluster uses), then configures and builds dsir.
# docker/check-in-step.sh (a ctest) checks the lists agree.
#   LIBTORCH_URL=... bash docker/build-in-image.sh SOURCE_DIR
# Environment: LIBTORCH_URL (required), TORCH_CUDA_ARCH_LIST (GPU architectures to build for; no
# GPU is visible during an image build), DSIR_BUILD_TESTS (OFF).
set -euo pipefail
src=${1:?usage: build-in-image.sh SOURCE_DIR}
: "${LIBTORCH_URL:?LIBTORCH_URL: the LibTorch 2.x CUDA zip to build against}"

packages=(
  g++ make cmake ninja-build ccache pkg-config git
  libopenmpi-dev openmpi-bin
  libhdf5-dev libyaml-cpp-dev libtiff-dev libpng-dev
  libcli11-dev libfmt-dev libspdlog-dev nlohmann-json3-dev
  libgtest-dev libbenchmark-dev
  hdf5-tools procps libopenblas0-openmp
  clang-14 libclang-rt-14-dev        # libFuzzer (tests/fuzz), as scripts/install-deps.sh
  clang-format-14                    # scripts/format.sh, as scripts/install-deps.sh
  chromium                           # the browser test of report.html, as scripts/install-deps.sh
  curl unzip ca-certificates       # to fetch LibTorch
)
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
rm -rf /var/lib/apt/lists/*

curl -fsSL "$LIBTORCH_URL" -o /tmp/libtorch.zip
unzip -q /tmp/libtorch.zip -d /opt
rm /tmp/libtorch.zip
[[ -f /opt/libtorch/share/cmake/Torch/TorchConfig.cmake ]] || { echo "build-in-image: $LIBTORCH_URL is not a LibTorch zip" >&2; exit 1; }

export TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-7.0;8.0;8.6;8.9;9.0}"
cmake -S "$src" -B "$src/build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH=/opt/libtorch \
  -DDSIR_BUILD_TESTS="${DSIR_BUILD_TESTS:-OFF}" -DDSIR_BUILD_BENCH=OFF
cmake --build "$src/build"
"$src/build/dsir" --version
