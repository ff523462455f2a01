#!/usr/bin/env bash
# Run HERE (Debian 12), before a device run: fetches the Debian packages that the GPU machine
# lacks (its image has CUDA, PyTorch/LibTorch 2.x, CMake and a compiler, but no Open MPI, HDF5,
# yaml-cpp, ... development files) into .devdeps/ (git-ignored), with DSIR's reference file for
# the parity test. scripts/gpu-check.sh unpacks them there with dpkg -x. Usage:
#   bash scripts/gpu-deps.sh && (device run: carry .devdeps, command: bash scripts/gpu-check.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
out=.devdeps
mkdir -p "$out/debs" "$out/shared/reference/dsir"
# Development files and the run-time libraries beneath them, short of the C/C++ runtimes.
packages=(
  libopenmpi-dev libopenmpi3 openmpi-bin openmpi-common libpmix2 libhwloc15 libevent-core-2.1-7
  libevent-pthreads-2.1-7 libfabric1 libibverbs1 librdmacm1 libnl-3-200 libnl-route-3-200
  libpsm-infinipath1 libpsm2-2 libucx0 libnuma1 libmunge2
  libhdf5-dev libhdf5-103-1 libhdf5-hl-100 libsz2 libaec0 libcurl4 libssl3 libbrotli1 libgssapi-krb5-2
  libkrb5-3 libk5crypto3 libkrb5support0 libcom-err2 libkeyutils1 libldap-2.5-0 libsasl2-2 libnghttp2-14
  libpsl5 libidn2-0 libunistring2 librtmp1 libgnutls30 libhogweed6 libnettle8 libgmp10 libp11-kit0
  libtasn1-6 libffi8 libssh2-1
  libyaml-cpp-dev libyaml-cpp0.7
  libtiff-dev libtiff6 libdeflate0 libjbig0 libjpeg62-turbo liblerc4 libwebp7 libzstd1 liblzma5
  libpng-dev libpng16-16 zlib1g-dev zlib1g
  libspdlog-dev libspdlog1.10 libfmt-dev libfmt9 nlohmann-json3-dev libcli11-dev
  libgtest-dev libgmock-dev googletest
)
missing=()
for p in "${packages[@]}"; do ls "$out/debs/${p}_"*.deb >/dev/null 2>&1 || missing+=("$p"); done
if ((${#missing[@]})); then (cd "$out/debs" && apt-get download "${missing[@]}"); fi
# Tests read ../shared; the device run carries the one file they need from it.
cp -f ../shared/reference/dsir/reference_26px.h5 "$out/shared/reference/dsir/"
du -sh "$out"
