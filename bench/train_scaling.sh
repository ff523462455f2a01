#!/usr/bin/env bash
# Training throughput of `dsir train` (DSIR's net, 26x26 frames upscaled to 208x208, global batch
# 32, one thread per rank) on 1 and 2 MPI ranks: frames/s from train/metrics.jsonl (epoch 2, so
# start-up is excluded), reading upscaled.h5 or raw.h5. usage: bench/train_scaling.sh [BUILD_DIR] [WORK_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build} work=${2:-/tmp/dsir-train-scaling}
source tests/e2e/mpi_env.sh
dsir=$build/dsir
rm -rf "$work" && mkdir -p "$work"
common=(run.dir="$work/data" run.seed=1 simulate.train.frames=640 simulate.acquisition.frames=0
        train.validation_fraction=0.05 train.batch_size=32 train.epochs=2 run.threads=1)
"$dsir" run --stages simulate,ingest,upscale "${common[@]}" >/dev/null 2>&1
echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; date: $(date -u +%F); load: $(cut -d' ' -f1-3 /proc/loadavg)"
# From upscaled.h5 (the upscale stage's file) and from raw.h5 (items upscaled as they are read).
for input in upscaled raw; do
  file=$work/data/data/train-upscaled.h5
  [[ $input == raw ]] && file=$work/data/data/train.h5
  for np in 1 2; do
    "${MPIRUN[@]}" "$np" "$dsir" train "${common[@]}" train.input="$file" train.output="$work/$input-np$np" >/dev/null 2>&1
    fps=$(sed -n 2p "$work/$input-np$np/metrics.jsonl" | sed 's/.*"frames_per_s":\([0-9.]*\).*/\1/')
    echo "from $input.h5, ranks $np: $fps frames/s"
  done
done
