#!/usr/bin/env bash
# GPU benchmarks (scripts/gpu-check.sh runs them on a GPU machine): dsir on the GPU against DSIR's
# own PyTorch code (bench/peer_dsir.py cuda) on the same GPU, in one run.
#  1. inference: `dsir infer` on 64x64 frames (x8) with DSIR's pretrained weights, per-frame
#     BatchNorm (raw frames go to the GPU and are upscaled there by matrix products; the maps come
#     back for sums and localizations, written in shards), against DSIR's per-frame loop (skimage
#     resize + z-score + model);
#  2. training: `dsir train` on the GPU with batches of 32 frames of 208x208 (26x26 x8), frames/s
#     per epoch from metrics.jsonl (validation and checkpoints included; the next batch is read on
#     a thread of its own into pinned memory), NCHW and channels-last, against DSIR's training
#     step (forward, blurred MSE, backward, Adam) on batches of 32 of 208x208.
# usage: bench/gpu_bench.sh BUILD_DIR REFERENCE.h5 [WORK_DIR]
#        (DEVICE=cpu FRAMES=40 TRAIN_FRAMES=100 try the script itself on a machine without a GPU)
set -euo pipefail
cd "$(dirname "$0")/.."
build=$(realpath "$1") ref=$(realpath "$2") work=${3:-/tmp/dsir-gpu-bench}
[[ -x $build/bench/infer_tools ]] || { echo "gpu_bench.sh: $build/bench/infer_tools is missing: build the benchmarks with make build (make test does not)" >&2; exit 2; }
dsir=$build/dsir tools=$build/bench/infer_tools
device=${DEVICE:-cuda} frames=${FRAMES:-4000} train_frames=${TRAIN_FRAMES:-2000}
rm -rf "$work" && mkdir -p "$work"
echo "machine: $(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null), $(nproc) cores; $(date -u +%F)"
"$tools" make-model "$ref" "$work/dsir.h5"
"$tools" make-stack "$work/stack64.h5" "$frames" 64

# Batch 8 and 64 in float32, and 64 with bfloat16 convolutions (infer.precision, measured not assumed).
for run in 8:float32 64:float32 64:bfloat16; do
  batch=${run%%:*} precision=${run#*:}
  "$dsir" infer infer.device="$device" infer.batch_size="$batch" infer.memory_mb=8192 infer.shard_frames=500 \
    infer.precision="$precision" --checkpoint "$work/dsir.h5" --input "$work/stack64.h5" \
    --output "$work/infer-$batch-$precision" >"$work/infer-$batch-$precision.log" 2>&1
  echo "dsir infer ($device, batch $batch, $precision, $(nproc) threads): $(sed -n 's/.*frames (100%), \([0-9.]*\) frames\/s.*/\1/p' "$work/infer-$batch-$precision.log" | tail -1) frames/s of 64x64;" \
    "stage $(grep -o 'done in [0-9.]* s' "$work/infer-$batch-$precision.log" | tail -1)"
done

# Training frames: DSIR's recipe at 26x26 (simulated raw frames, upscaled as training reads them), then two epochs.
"$dsir" run configs/quickstart.yaml --stages simulate,ingest run.dir="$work/run" simulate.train.frames=$train_frames \
  simulate.train.width=26 simulate.train.height=26 simulate.acquisition.frames=4 >"$work/data.log" 2>&1
# Both memory layouts (train.channels_last) and bfloat16 convolutions (train.precision): issue 12's
# layout and precision options, measured not assumed.
# The default net (detector) and the map net on its trunk (subpixel) in float32 too: the dsir rows
# compare with DSIR's bare step.
for run in dsir:false:float32 dsir:true:float32 dsir:false:bfloat16 subpixel:false:float32 detector:false:float32; do
  model=${run%%:*} rest=${run#*:}
  cl=${rest%%:*} precision=${rest#*:}
  name=train-$model-cl-$cl-$precision
  "$dsir" train configs/quickstart.yaml train.model="$model" run.dir="$work/run" train.device="$device" train.batch_size=32 train.epochs=3 \
    train.validation_fraction=0.1 train.channels_last="$cl" train.precision="$precision" train.output="$work/run/$name" >"$work/$name.log" 2>&1
  echo "$model train ($device, batch 32 of 208x208, channels_last=$cl, $precision): $(python3 -c "import json,sys; r=[json.loads(l) for l in open(sys.argv[1])]; print(' / '.join('%.0f' % x['frames_per_s'] for x in r))" "$work/run/$name/metrics.jsonl") frames/s per epoch (epochs 1/2/3)"
done
grep -m1 "gradient bucket" "$work/train-dsir-cl-false-float32.log" || true

if [[ $device == cuda ]]; then  # the peer with the system's libraries, not those unpacked for dsir
  echo "DSIR's PyTorch code on the same GPU: $(env -u LD_LIBRARY_PATH python3 bench/peer_dsir.py "$ref" cuda)"
fi
