#!/bin/bash
# Compiles (syntax only) every C++ file that uses LibTorch against LibTorch 2.x headers, so a change
# made against Debian 12's LibTorch 1.13 is known to build on the clusters' 2.x. The headers come
# from Debian trixie's libtorch-dev (the CPU package: nccl_transport.cpp, which needs CUDA's
# headers, is left out). Not part of `make test`: it downloads ~12 MB and takes ~10 min on 2 cores.
#   usage: scripts/libtorch2-syntax-check.sh BUILD_DIR [WORK_DIR]
#   BUILD_DIR: a configured build (for its generated headers); WORK_DIR: where the headers go
set -euo pipefail
build=$(realpath "${1:?usage: $0 BUILD_DIR [WORK_DIR]}")
work=${2:-/tmp/dsir-libtorch2}
root=$(cd "$(dirname "$0")/.." && pwd)
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
mkdir -p "$work/logs"
if [ ! -d "$work/root/usr/include/torch" ]; then
  curl -fsS "$mirror/dists/trixie/main/binary-amd64/Packages.xz" -o "$work/Packages.xz"
  deb=$(xz -dc "$work/Packages.xz" | awk '/^Package: libtorch-dev$/ {p = 1} p && /^Filename:/ {print $2; p = 0}')
  [ -n "$deb" ] || { echo "libtorch-dev not found in trixie's package list" >&2; exit 1; }
  echo "headers: $mirror/$deb"
  curl -fsS "$mirror/$deb" -o "$work/libtorch-dev.deb"
  dpkg-deb -x "$work/libtorch-dev.deb" "$work/root"
fi
inc="$work/root/usr/include"
grep -q "TORCH_VERSION_MAJOR 2" "$inc/torch/csrc/api/include/torch/version.h" ||
  { echo "$inc holds no LibTorch 2.x" >&2; exit 1; }
cd "$root"
mapfile -t files < <(grep -rlE "torch|ATen" --include=*.cpp pipeline stages bench | grep -v nccl_transport.cpp | sort)
check() {
  local f=$1 log mpi
  read -ra mpi <<<"$MPI_COMPILE_FLAGS"
  log="$work/logs/$(echo "$f" | tr / _).log"
  if c++ -fsyntax-only -std=c++17 -fopenmp -Wall -Wextra -D_GLIBCXX_USE_CXX11_ABI=1 -DFMT_SHARED \
      -DSPDLOG_COMPILED_LIB -DSPDLOG_FMT_EXTERNAL -DSPDLOG_SHARED_LIB -DDSIR_SHARED_DIR='"/shared"' \
      -DDSIR_SOURCE_DIR='"/source"' -I"$root" -I"$build/generated" -isystem "$inc" \
      -isystem "$inc/torch/csrc/api/include" "${mpi[@]}" "$f" >"$log" 2>&1; then
    echo "ok   $f"
  else
    echo "FAIL $f (log: $log)"
    return 1
  fi
}
MPI_COMPILE_FLAGS=$(mpicxx --showme:compile)
export -f check
export root build inc work MPI_COMPILE_FLAGS
printf '%s\n' "${files[@]}" | xargs -P "$(nproc)" -I{} bash -c 'check {}' || {
  echo "libtorch2-syntax-check: failures above"
  exit 1
}
version=$(awk '/define TORCH_VERSION_(MAJOR|MINOR|PATCH)/{v = v (v == "" ? "" : ".") $3} END{print v}' \
  "$inc/torch/csrc/api/include/torch/version.h")
echo "libtorch2-syntax-check: ${#files[@]} files compile against LibTorch $version's headers"
