#!/usr/bin/env bash
# Installs the Debian 12 packages dsir needs to build, test and run. Idempotent: quiet and quick
# when everything is present. The container recipes install through it (docker/build-in-image.sh).
# Every program that the build, the tests (tests/, stages/*/test_*.sh) and `make run` call comes
# from here: a fresh Debian 12 (debootstrap minbase) has no more than its required packages, and
# ../shared/tools/fresh-debian-check.sh proves it on a clean clone.
set -euo pipefail

# The packages, in groups. DSIR_DEPS names the groups to install (default: build torch test,
# what `make run` and `make test` need on a Debian 12 host):
#   build      compile and run dsir (every recipe)
#   torch      Debian's LibTorch 1.13 (CPU); the CUDA images fetch LibTorch 2.x instead
#   test       what the tests call (tests/, stages/*/test_*.sh) and .ci/run's format check
#   container  buildah, podman and debootstrap for the opt-in container test (make test-container)
#   peers      DSIR's own PyTorch code for the benchmarks (bench/); DSIR_WITH_PEERS=1 adds it
#   fetch      curl and unzip: the CUDA images' download of LibTorch (docker/build-in-image.sh)
# The container recipes install through this script too (docker/build-in-image.sh), so there is
# one list.
build=(
  g++ make cmake ninja-build ccache pkg-config git
  libopenmpi-dev openmpi-bin
  libhdf5-dev libyaml-cpp-dev libtiff-dev libpng-dev
  libcli11-dev libfmt-dev libspdlog-dev nlohmann-json3-dev
  libopenblas0-openmp                # BLAS for LibTorch's CPU convolutions (Debian's default, the
                                     # reference BLAS, made training 1.4x slower)
  procps                             # pgrep/nproc, called by the scripts
)
torch=(libtorch-dev)                 # LibTorch 1.13 (CPU); clusters build against LibTorch 2.x
test=(
  libgtest-dev libbenchmark-dev
  hdf5-tools                         # h5diff/h5dump, called by the tests
  clang-14 libclang-rt-14-dev        # libFuzzer and its sanitizer runtimes (tests/fuzz, DSIR_FUZZ)
  clang-format-14                    # scripts/format.sh (the format check of .ci/run)
  slurmctld slurmd slurm-client munge  # Slurm 22.05 for the slurm tests (a private single-node cluster)
  chromium                           # the browser test of report.html (ctest label browser)
)
container=(buildah podman runc debootstrap)  # runc: crun refuses hosts with hybrid cgroups
peers=(python3-torch python3-skimage python3-tifffile python3-h5py python3-numpy time)
fetch=(curl unzip ca-certificates)

groups=${DSIR_DEPS:-build torch test}
[[ ${DSIR_WITH_PEERS:-0} == 1 ]] && groups+=" peers"
packages=()
for g in $groups; do
  case $g in
    build) packages+=("${build[@]}") ;;
    torch) packages+=("${torch[@]}") ;;
    test) packages+=("${test[@]}") ;;
    container) packages+=("${container[@]}") ;;
    peers) packages+=("${peers[@]}") ;;
    fetch) packages+=("${fetch[@]}") ;;
    *) echo "install-deps: unknown group '$g' in DSIR_DEPS (build torch test container peers fetch)" >&2; exit 2 ;;
  esac
done

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
