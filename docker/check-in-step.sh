#!/usr/bin/env bash
# The CUDA recipes cannot be built here (no GPU base image, no Docker engine, no Apptainer; the
# CPU image is built and tested by tests/container/make_test_in_image.sh, label container), so
# this checks what can be checked without them: docker/build-in-image.sh installs through
# scripts/install-deps.sh's groups (one package list); Dockerfile and dsir.def use the same base
# image and LibTorch; all three recipes build with build-in-image.sh; the Containerfile's base is
# the image docker/debian-base.sh makes; the scripts parse.
# usage: check-in-step.sh REPO_ROOT
set -euo pipefail
root=${1:?usage: check-in-step.sh REPO_ROOT}
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok: $*"; }
bad() { fail=$((fail + 1)); echo "FAILED: $*"; }

# One package list: build-in-image.sh installs through scripts/install-deps.sh, never by itself.
grep -q 'bash "$src/scripts/install-deps.sh"' "$root/docker/build-in-image.sh" &&
  ok "build-in-image.sh installs through scripts/install-deps.sh" || bad "build-in-image.sh does not call install-deps.sh"
grep -qE '^[^#]*apt-get install' "$root/docker/build-in-image.sh" &&
  bad "build-in-image.sh installs packages itself (add them to a group of scripts/install-deps.sh)" ||
  ok "build-in-image.sh has no package list of its own"
# The groups it asks for (groups="build", groups+=" torch", ...) exist there.
for g in $(grep -oE 'groups\+?="[^"]*"' "$root/docker/build-in-image.sh" | sed 's/.*="//; s/"$//' | tr ' ' '\n' | sort -u); do
  grep -qE "^$g=\(" "$root/scripts/install-deps.sh" && ok "install-deps.sh has the group $g" ||
    bad "build-in-image.sh asks for the group $g, which scripts/install-deps.sh lacks"
done

base_docker=$(sed -n 's/^FROM //p' "$root/docker/Dockerfile")
base_def=$(sed -n 's/^From: //p' "$root/docker/dsir.def")
[[ -n $base_docker && $base_docker == "$base_def" ]] && ok "same base image ($base_docker)" ||
  bad "base images differ: Dockerfile '$base_docker', dsir.def '$base_def'"
url_docker=$(sed -n 's/^ARG LIBTORCH_URL=//p' "$root/docker/Dockerfile")
url_def=$(sed -n 's/^ *LIBTORCH_URL=\(https:[^ ]*\)$/\1/p' "$root/docker/dsir.def")
[[ $url_docker == https://download.pytorch.org/libtorch/cu* && $url_docker == "$url_def" ]] &&
  ok "same LibTorch (CUDA) zip" || bad "LibTorch URLs differ or are not CUDA builds: '$url_docker' / '$url_def'"
for f in Dockerfile dsir.def Containerfile; do
  grep -q "docker/build-in-image.sh /opt/dsir" "$root/docker/$f" && ok "$f builds with build-in-image.sh" ||
    bad "$f does not run docker/build-in-image.sh"
done
# dsir.def copies what the build needs: every top-level CMake input.
for d in CMakeLists.txt cmake pipeline stages; do
  grep -qE "^ +$d /opt/dsir/$d\$" "$root/docker/dsir.def" && ok "dsir.def copies $d" || bad "dsir.def does not copy $d"
done
base_cpu=$(sed -n 's/^ARG BASE=//p' "$root/docker/Containerfile")
grep -q "^image=$base_cpu\$" "$root/docker/debian-base.sh" && ok "Containerfile's base is debian-base.sh's image ($base_cpu)" ||
  bad "Containerfile's base '$base_cpu' is not the image docker/debian-base.sh makes"
bash -n "$root/docker/debian-base.sh" && ok "debian-base.sh parses" || bad "debian-base.sh does not parse"
bash -n "$root/docker/build-in-image.sh" && ok "build-in-image.sh parses" || bad "build-in-image.sh does not parse"
echo "$pass passed, $fail failed"
[[ $fail -eq 0 ]]
