#!/usr/bin/env bash
# The base of docker/Containerfile, made without a registry: a Debian 12 minbase root by
# debootstrap (from the mirror the host's apt uses), committed by buildah as
# localhost/dsir-debian-base:bookworm. Run as root.
#   bash docker/debian-base.sh [ROOTFS.tgz]
# ROOTFS.tgz: an existing debootstrapped root as a tarball (e.g. the fresh-machine check's
# base.tgz), to skip debootstrap.
set -euo pipefail
image=localhost/dsir-debian-base:bookworm
tarball=${1:-}
[[ $(id -u) -eq 0 ]] || { echo "debian-base: run as root (debootstrap, buildah)" >&2; exit 2; }
work=$(mktemp -d "${TMPDIR:-/tmp}/dsir-base.XXXXXX")
trap 'rm -rf "$work"' EXIT
if [[ -z $tarball ]]; then
  mirror=$(grep -hoE '^URIs: +[^ ]+/debian$' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' | head -1)
  [[ -n $mirror ]] || mirror=$(grep -hoE '^deb +[a-z]+://[^ ]+/debian ' /etc/apt/sources.list 2>/dev/null | awk '{print $2}' | head -1)
  mirror=${mirror:-http://deb.debian.org/debian}
  echo "debian-base: debootstrap bookworm from $mirror" >&2
  debootstrap --variant=minbase bookworm "$work/root" "$mirror" >"$work/debootstrap.log" 2>&1 ||
    { tail -20 "$work/debootstrap.log" >&2; echo "debian-base: debootstrap failed" >&2; exit 1; }
  tar -C "$work/root" -czf "$work/root.tgz" .
  tarball=$work/root.tgz
fi
[[ -f $tarball ]] || { echo "debian-base: $tarball: no such file" >&2; exit 2; }
container=$(buildah from scratch)
buildah add --quiet "$container" "$tarball" / >/dev/null
# The host's resolver, so that apt reaches the archive during the builds on this image.
buildah copy --quiet "$container" /etc/resolv.conf /etc/resolv.conf >/dev/null
buildah config --env DEBIAN_FRONTEND=noninteractive --cmd /bin/bash "$container"
buildah commit --quiet --rm "$container" "$image" >/dev/null
echo "debian-base: $image" >&2
