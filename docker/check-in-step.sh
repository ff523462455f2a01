#!/usr/bin/env bash
# The container recipes cannot be built here (no Docker engine, no Apptainer), so this checks
# what can be checked without them: docker/build-in-image.sh installs every package of
# scripts/install-deps.sh except the ones it replaces on purpose (libtorch-dev: LibTorch 2.x CUDA
# instead; the Slurm packages: only the tests' private cluster needs them); Dockerfile and dsir.def
# use the same base image, LibTorch and build script; the scripts parse.
# usage: check-in-step.sh REPO_ROOT
set -euo pipefail
root=${1:?usage: check-in-step.sh REPO_ROOT}
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok: $*"; }
bad() { fail=$((fail + 1)); echo "FAILED: $*"; }

# The words of a bash array `packages=( ... )` in a file, comments dropped.
packages_of() {
  sed -n '/^packages=(/,/^)/p' "$1" | sed '1d;$d; s/#.*//' | tr -s ' \t' '\n' | sed '/^$/d' | sort -u
}
host=$(packages_of "$root/scripts/install-deps.sh")
image=$(packages_of "$root/docker/build-in-image.sh")
[[ -n $host && -n $image ]] && ok "package lists found" || bad "a package list is missing"
replaced="libtorch-dev slurmctld slurmd slurm-client munge"
for p in $host; do
  [[ " $replaced " == *" $p "* ]] && continue
  grep -qx -- "$p" <<<"$image" && ok "image installs $p" || bad "docker/build-in-image.sh lacks $p (scripts/install-deps.sh has it)"
done
for p in $image; do
  case $p in curl | unzip | ca-certificates) continue ;; esac
  grep -qx -- "$p" <<<"$host" && continue
  bad "docker/build-in-image.sh installs $p, scripts/install-deps.sh does not"
done

base_docker=$(sed -n 's/^FROM //p' "$root/docker/Dockerfile")
base_def=$(sed -n 's/^From: //p' "$root/docker/dsir.def")
[[ -n $base_docker && $base_docker == "$base_def" ]] && ok "same base image ($base_docker)" ||
  bad "base images differ: Dockerfile '$base_docker', dsir.def '$base_def'"
url_docker=$(sed -n 's/^ARG LIBTORCH_URL=//p' "$root/docker/Dockerfile")
url_def=$(sed -n 's/^ *LIBTORCH_URL=\(https:[^ ]*\)$/\1/p' "$root/docker/dsir.def")
[[ $url_docker == https://download.pytorch.org/libtorch/cu* && $url_docker == "$url_def" ]] &&
  ok "same LibTorch (CUDA) zip" || bad "LibTorch URLs differ or are not CUDA builds: '$url_docker' / '$url_def'"
for f in Dockerfile dsir.def; do
  grep -q "docker/build-in-image.sh /opt/dsir" "$root/docker/$f" && ok "$f builds with build-in-image.sh" ||
    bad "$f does not run docker/build-in-image.sh"
done
# dsir.def copies what the build needs: every top-level CMake input.
for d in CMakeLists.txt cmake pipeline stages; do
  grep -qE "^ +$d /opt/dsir/$d\$" "$root/docker/dsir.def" && ok "dsir.def copies $d" || bad "dsir.def does not copy $d"
done
bash -n "$root/docker/build-in-image.sh" && ok "build-in-image.sh parses" || bad "build-in-image.sh does not parse"
echo "$pass passed, $fail failed"
[[ $fail -eq 0 ]]
