#!/usr/bin/env bash
# The CPU container recipe built and tested (ctest label container, opt-in: `make test-container`):
# the Debian 12 base debootstrapped and committed by buildah (docker/debian-base.sh, no registry),
# docker/Containerfile built by buildah from the checkout's files, then `make test` inside the
# image under podman, with ../shared mounted where the tests look for it. Run as root, with
# DSIR_CONTAINER_TEST=1 (else it skips: exit 77).
# usage: make_test_in_image.sh REPO_ROOT WORK_DIR SHARED_DIR
# Environment: DSIR_BASE_TGZ  a debootstrapped root as a tarball, to skip debootstrap
#              DSIR_IMAGE     the image's name (localhost/dsir-cpu:test)
set -euo pipefail
# Opt-in: it builds an image and the whole suite inside it (~35 min on 2 cores).
[[ ${DSIR_CONTAINER_TEST:-0} == 1 ]] || { echo "skipped: opt-in, DSIR_CONTAINER_TEST=1 (make test-container)"; exit 77; }
root=${1:?usage: make_test_in_image.sh REPO_ROOT WORK_DIR SHARED_DIR}
work=${2:?usage: make_test_in_image.sh REPO_ROOT WORK_DIR SHARED_DIR}
shared=${3:?usage: make_test_in_image.sh REPO_ROOT WORK_DIR SHARED_DIR}
image=${DSIR_IMAGE:-localhost/dsir-cpu:test}
for cmd in buildah podman git; do
  command -v "$cmd" >/dev/null || { echo "$cmd not found: DSIR_DEPS=container bash scripts/install-deps.sh"; exit 1; }
done
[[ $(id -u) -eq 0 ]] || { echo "the container test runs as root (debootstrap, buildah, podman)"; exit 1; }
[[ -d $shared/data ]] || { echo "$shared: no shared data folder"; exit 1; }
mkdir -p "$work"
step() { echo "container: $* ($(date -u +%H:%M:%S))"; }

if ! podman image exists localhost/dsir-debian-base:bookworm; then
  step "making the Debian 12 base"
  bash "$root/docker/debian-base.sh" ${DSIR_BASE_TGZ:+"$DSIR_BASE_TGZ"}
fi

# The build context: the checkout's tracked and unignored files, as a clean clone would have them
# (no build folders, no runs).
step "copying the checkout"
rm -rf "$work/context" && mkdir -p "$work/context"
git -C "$root" ls-files -z --cached --others --exclude-standard |
  (cd "$root" && tar --null --ignore-failed-read -T - -cf -) | tar -C "$work/context" -xf -

step "building $image (log $work/build.log)"
# chroot isolation: the RUN steps need no OCI runtime (docker/Containerfile).
buildah bud --isolation chroot -f docker/Containerfile -t "$image" "$work/context" >"$work/build.log" 2>&1 ||
  { tail -30 "$work/build.log"; echo "FAILED: buildah bud (log $work/build.log)"; exit 1; }

# podman as root asks for more open files and processes than a host's hard limits may allow
# (and cannot raise them without CAP_SYS_RESOURCE); podman itself caps processes at 32768. crun
# refuses hosts with cgroup v1 and v2 mounted together (hybrid), runc runs there.
nofile=$(ulimit -Hn) nproc=$(ulimit -Hu)
[[ $nofile == unlimited || $nofile -gt 1048576 ]] && nofile=1048576
[[ $nproc == unlimited || $nproc -gt 32768 ]] && nproc=32768
run_args=(--rm --ulimit "nofile=$nofile:$nofile" --ulimit "nproc=$nproc:$nproc" --shm-size 2g
  -v "$(cd "$shared" && pwd):/opt/shared:ro" -e DSIR_REQUIRE_SHARED=1 --entrypoint bash)
command -v runc >/dev/null && run_args+=(--runtime runc)

step "make test inside $image (log $work/make-test.log)"
t0=$(date +%s)
if ! podman run "${run_args[@]}" "$image" -lc 'cd /opt/dsir && make test' >"$work/make-test.log" 2>&1; then
  tail -40 "$work/make-test.log"
  echo "FAILED: make test in the image after $(($(date +%s) - t0)) s (log $work/make-test.log)"
  exit 1
fi
summary=$(grep -E 'tests passed|tests failed' "$work/make-test.log" | tail -1)
echo "$summary"
[[ $summary == "100% tests passed"* ]] || { echo "FAILED: $summary"; exit 1; }
echo "container: make test ok in the image in $(($(date +%s) - t0)) s"
