#!/usr/bin/env bash
# Ingest throughput and memory, all tools on the same files in one run.
# Part "big", a >= 4 GiB BigTIFF:
#   cat FILE > /dev/null     the read floor
#   dsir ingest              under /usr/bin/time -v: wall time and peak RSS (must stay < 512 MiB)
#   Python tifffile + h5py   bench/ingest_peer.py, writing the same raw.h5 layout
# Part "archive": archive mode (one raw.h5 per file) on 4 files of 1000 frames, 1 and 2 MPI ranks.
# Each run starts with its input evicted from the page cache (posix_fadvise DONTNEED); `cat` is
# timed once more with the file cached. The multi-GiB files are deleted at the end.
# usage: bench/ingest.sh [BUILD_DIR] [WORK_DIR]
#   needs DSIR_WITH_PEERS=1 bash scripts/install-deps.sh (python3-tifffile, python3-h5py, time)
#   DSIR_BENCH_FRAMES: frames of 512 x 512 uint16 in the big file (default 8400 = 4.1 GiB)
#   DSIR_BENCH_PARTS: which parts to run (default "big archive")
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
work=${2:-/tmp/dsir-bench-ingest}
frames=${DSIR_BENCH_FRAMES:-8400}
parts=${DSIR_BENCH_PARTS:-big archive}
py=/usr/bin/python3
source tests/e2e/mpi_env.sh
mkdir -p "$work"
trap 'rm -rf "$work"/big.tif "$work"/dsir.h5 "$work"/peer.h5 "$work"/.*.tmp* "$work"/many "$work"/archive*' EXIT

evict() { $py -c 'import os,sys; fd=os.open(sys.argv[1],os.O_RDONLY); os.posix_fadvise(fd,0,0,os.POSIX_FADV_DONTNEED); os.close(fd)' "$1"; }
# measure NAME COMMAND...: a table row with wall seconds, MB/s of $bytes, peak RSS, and the
# 1-minute load average at the end (other work on the machine shows there).
measure() {
  local name=$1
  shift
  local t0 t1 wall rss
  t0=$(date +%s.%N)
  /usr/bin/time -v -o "$work/time.txt" "$@" >"$work/out.txt" 2>&1 || { cat "$work/out.txt"; exit 1; }
  t1=$(date +%s.%N)
  wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN{print b - a}')
  rss=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$work/time.txt")
  awk -v n="$name" -v w="$wall" -v b="$bytes" -v r="$rss" -v l="$(cut -d' ' -f1 /proc/loadavg)" \
    'BEGIN{printf "| %s | %.2f | %.0f | %.0f | %s |\n", n, w, b/1e6/w, r/1024, l}'
}

echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, $(free -g | awk '/^Mem:/{print $2}') GiB RAM; date: $(date -u +%F)"

if [[ $parts == *big* ]]; then
  echo "making $frames frames of 512 x 512 uint16 in $work/big.tif ..."
  $py bench/ingest_make_tiff.py "$work/big.tif" "$frames"
  bytes=$(stat -c %s "$work/big.tif")
  echo "input: $(awk -v b="$bytes" 'BEGIN{printf "%.2f GiB (%.0f bytes), BigTIFF", b/2^30, b}')"
  echo "| tool | wall (s) | MB/s of TIFF | peak RSS (MiB) | load |"
  echo "|---|---|---|---|---|"
  evict "$work/big.tif"
  measure "cat FILE > /dev/null (cold)" sh -c "cat '$work/big.tif' > /dev/null"
  measure "cat FILE > /dev/null (cached)" sh -c "cat '$work/big.tif' > /dev/null"
  evict "$work/big.tif"
  measure "dsir ingest" "$build/dsir" ingest run.dir="$work/run" --frames "$work/big.tif" --output "$work/dsir.h5"
  evict "$work/big.tif"
  measure "Python tifffile + h5py" $py bench/ingest_peer.py "$work/big.tif" "$work/peer.h5"
  echo "output: dsir $(stat -c %s "$work/dsir.h5" | awk '{printf "%.2f GiB", $1/2^30}'), peer $(stat -c %s "$work/peer.h5" | awk '{printf "%.2f GiB", $1/2^30}')"
  # Same frames in both files (frame by frame; h5diff takes minutes on GiBs).
  $py -c '
import sys, h5py, numpy as np
a, b = h5py.File(sys.argv[1], "r")["frames"], h5py.File(sys.argv[2], "r")["frames"]
same = a.shape == b.shape and all(np.array_equal(a[k], b[k]) for k in range(a.shape[0]))
print("frames:", "identical" if same else "DIFFER")
sys.exit(0 if same else 1)' "$work/dsir.h5" "$work/peer.h5"
  rm -f "$work/big.tif" "$work/dsir.h5" "$work/peer.h5"
fi

if [[ $parts == *archive* ]]; then
  echo "archive mode: 4 files x 1000 frames of 512 x 512 uint16"
  mkdir -p "$work/many"
  for k in 1 2 3 4; do $py bench/ingest_make_tiff.py "$work/many/acq_$k.tif" 1000; done
  bytes=$(cat "$work"/many/*.tif | wc -c)
  echo "| ranks | wall (s) | MB/s of TIFF | peak RSS of one process (MiB) | load |"
  echo "|---|---|---|---|---|"
  for np in 1 2; do
    for f in "$work"/many/*.tif; do evict "$f"; done
    measure "$np" "${MPIRUN[@]}" "$np" "$build/dsir" ingest run.dir="$work/run" --archive \
      --frames "$work/many/*.tif" --output "$work/archive$np"
  done
fi
