#!/usr/bin/env bash
# Installs the Debian 12 packages dsir needs to build, test and run. Idempotent: quiet and quick
# when everything is present. Keep docker/Dockerfile and docker/dsir.def in step with this list.
# Every program that the build, the tests (tests/, stages/*/test_*.sh) and `make run` call comes
# from here: a fresh Debian 12 (debootstrap minbase) has no more than its required packages, and
# ../shared/tools/fresh-debian-check.sh proves it on a clean clone.
set -euo pipefail

packages=(
  g++ make cmake ninja-build ccache pkg-config git
  libtorch-dev                       # LibTorch 1.13 (CPU); clusters build against LibTorch 2.x
  libopenblas0-openmp                # BLAS for LibTorch's CPU convolutions (Debian's default, the
                                     # reference BLAS, made training 1.4x slower)
  libopenmpi-dev openmpi-bin
  libhdf5-dev libyaml-cpp-dev libtiff-dev libpng-dev
  libcli11-dev libfmt-dev libspdlog-dev nlohmann-json3-dev
  libgtest-dev libbenchmark-dev
  hdf5-tools procps                  # h5diff/h5dump and pgrep, called by the tests
  clang-14 libclang-rt-14-dev        # libFuzzer and its sanitizer runtimes (tests/fuzz, DSIR_FUZZ)
  clang-format-14                    # scripts/format.sh (the format check of .ci/run)
  slurmctld slurmd slurm-client munge  # Slurm 22.05 for the slurm tests (a private single-node cluster)
  chromium                           # the browser test of report.html (ctest label browser)
)
if [[ ${DSIR_WITH_PEERS:-0} == 1 ]]; then
  # For the benchmarks against DSIR's own PyTorch code (bench/).
  packages+=(python3-torch python3-skimage python3-tifffile python3-h5py python3-numpy time)
fi

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [[ $status == "install ok installed" ]] || missing+=("$p")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

echo "install-deps: installing ${missing[*]}" >&2
sudo=()
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || { echo "install-deps: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
  sudo=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
