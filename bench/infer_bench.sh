#!/usr/bin/env bash
# Inference benchmarks for docs/benchmarks.md ("Inference"), all on this machine in one run:
#  1. `dsir infer` end to end on 64x64 frames (x8) with DSIR's pretrained weights (per-frame
#     BatchNorm), 1 and 2 ranks, one thread each: frames/s and the 2-rank speed-up;
#  2. DSIR's own PyTorch loop on 64x64 frames, one thread (bench/peer_dsir.py), and dsir's
#     per-frame hot path (bench_dsir BM_InferFrame/64, one thread);
#  3. memory: one network call per upscaled pixel (infer_tools memory), peak RSS of infer on a
#     >= 4 GiB raw.h5 (generated here, sampled for LIMIT seconds, deleted) and on 512x512
#     frames that the memory budget tiles (running BatchNorm).
# usage: [ONLY_SCALING=1] bench/infer_bench.sh [BUILD_DIR] [WORK_DIR] [LIMIT_SECONDS]
#        (the peer needs DSIR_WITH_PEERS=1 bash scripts/install-deps.sh; run on an idle machine)
set -euo pipefail
cd "$(dirname "$0")/.."
build=$(realpath "${1:-build}") work=${2:-/tmp/dsir-infer-bench} limit=${3:-330}
[[ -x $build/bench/infer_tools ]] || { echo "infer_bench.sh: $build/bench/infer_tools is missing: build the benchmarks with make build (make test does not)" >&2; exit 2; }
source tests/e2e/mpi_env.sh
ref=../shared/reference/dsir/reference_26px.h5
tools=$build/bench/infer_tools dsir=$build/dsir
rm -rf "$work" && mkdir -p "$work"
trap 'rm -f "$work/big.h5"' EXIT
echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; $(date -u +%F); load:$(cut -d' ' -f1-3 /proc/loadavg)"
"$tools" make-model "$ref" "$work/dsir.h5"
"$tools" make-stack "$work/stack64.h5" 320 64
rate() { sed -n 's/.*infer: [0-9]*\/[0-9]* frames (100%), \([0-9.]*\) frames\/s.*/\1/p' "$1" | tail -1; }

echo "== dsir infer, 320 frames of 64x64, shards of 16, one thread per rank"
# CPU seconds too (mpirun's rusage includes its ranks): on a machine shared with other work the
# wall-clock speed-up says more about the neighbours than about dsir.
for np in 1 2; do
  /usr/bin/time -f "cpu %U %S" -o "$work/np$np.time" "${MPIRUN[@]}" $np "$dsir" infer run.threads=1 \
    infer.shard_frames=16 --checkpoint "$work/dsir.h5" --input "$work/stack64.h5" --output "$work/out$np" \
    >"$work/np$np.log" 2>&1
  echo "ranks $np: $(rate "$work/np$np.log") frames/s while inferring; stage $(grep -o 'done in [0-9.]* s' "$work/np$np.log");" \
    "$(awk '/^cpu/ { printf "%.1f CPU s (user + sys, all ranks)", $2 + $3 }' "$work/np$np.time")"
done
awk -v a="$(rate "$work/np1.log")" -v b="$(rate "$work/np2.log")" 'BEGIN { printf "2 ranks / 1 rank: %.2fx\n", b / a }'
[[ ${ONLY_SCALING:-0} == 1 ]] && exit 0

echo "== DSIR's PyTorch loop (one thread) and dsir's per-frame hot path (one thread)"
/usr/bin/python3 bench/peer_dsir.py "$ref"
if [[ -x $build/bench/bench_dsir ]]; then
  "$build/bench/bench_dsir" --benchmark_filter='BM_InferFrame/64' --benchmark_min_time=5
fi

echo "== memory of one network call"
for s in 32 64 128; do "$tools" memory $s 1 per-frame; done
"$tools" memory 64 4 running

echo "== peak RSS: complete run on the 320-frame stack (one rank, 2 threads)"
/usr/bin/time -f "peak RSS %M KiB, %e s" "$dsir" infer run.threads=2 --checkpoint "$work/dsir.h5" \
  --input "$work/stack64.h5" --output "$work/rss-small" 2>&1 | grep -E "peak RSS|frames/s"
echo "== peak RSS: a >= 4 GiB raw.h5 (540,000 frames of 64x64), stopped after $limit s"
"$tools" make-stack "$work/big.h5" 540000 64
ls -l --block-size=M "$work/big.h5"
"$tools" read-rss "$work/big.h5" | tail -3
# The peak RSS (VmHWM) sampled every 15 s: it must stop growing.
timeout -s INT "$limit" "$dsir" infer run.threads=2 --checkpoint "$work/dsir.h5" --input "$work/big.h5" \
  --output "$work/rss-big" >"$work/rss-big.log" 2>&1 &
guard=$!
sleep 2
rank=$(pgrep -P $guard)
for t in $(seq 15 15 "$limit"); do
  sleep 15
  kill -0 "$rank" 2>/dev/null || break
  echo "t=$t s: peak RSS $(awk '/VmHWM/ { print $2 }' /proc/$rank/status) KiB, $(find "$work/rss-big" -name 'shard-*.h5' | wc -l) shards"
done
wait $guard || true
echo "shards completed: $(find "$work/rss-big" -name 'shard-*.h5' | wc -l) of $(((540000 + 63) / 64))"
rm -f "$work/big.h5"
echo "== peak RSS: 3 frames of 512x512 (4096x4096 upscaled), tiled by the budget, running BatchNorm"
"$tools" make-stack "$work/stack512.h5" 3 512
/usr/bin/time -f "peak RSS %M KiB, %e s" "$dsir" infer run.threads=2 --bn running --checkpoint "$work/dsir.h5" \
  --input "$work/stack512.h5" --output "$work/rss-512" 2>&1 | grep -E "peak RSS|tiles|frames/s"
