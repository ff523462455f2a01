#!/usr/bin/env bash
# CPU throughput of dsir against DSIR's own PyTorch code, one thread each, in one run; writes a
# JSON result (machine, date, load before and after, every figure and the ratios) to
# bench/results/cpu-<UTC time>.json and prints it. docs/benchmarks.md's CPU tables come from these.
#  - inference end to end: `dsir infer` (read raw.h5, upscale, network, localizations with
#    photometry, shards) on 64x64 frames (x8) with DSIR's pretrained weights and per-frame
#    BatchNorm, engine auto (the fused kernel on an AVX2 CPU) and libtorch, 1 and 2 ranks;
#    DSIR's loop: skimage resize + z-score + its PyTorch model per frame, flush-to-zero on;
#  - training: `dsir train` (26x26 frames x8 = 208x208, batch 32, epoch 2 of metrics.jsonl) on 1
#    and 2 ranks, and DSIR's bare training step (forward, blurred MSE, backward, Adam, batch 32
#    of 208x208 tensors already in memory).
# usage: bench/cpu_bench.sh [BUILD_DIR] [WORK_DIR]   (needs DSIR_WITH_PEERS=1 bash scripts/install-deps.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
build=$(realpath "${1:-build}") work=${2:-/tmp/dsir-cpu-bench}
source tests/e2e/mpi_env.sh
ref=../shared/reference/dsir/reference_26px.h5
dsir=$build/dsir tools=$build/bench/infer_tools
frames=${FRAMES:-960}
rm -rf "$work" && mkdir -p "$work" bench/results
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
"$tools" make-model "$ref" "$work/dsir.h5" >/dev/null
"$tools" make-stack "$work/stack64.h5" "$frames" 64 >/dev/null
"$tools" make-stack "$work/stack64-small.h5" 96 64 >/dev/null
rate() { sed -n 's/.*infer: [0-9]*\/[0-9]* frames (100%), \([0-9.]*\) frames\/s.*/\1/p' "$1" | tail -1; }

infer() {  # name ranks stack [key=value ...]
  local name=$1 np=$2 stack=$3
  shift 3
  "${MPIRUN[@]}" "$np" "$dsir" infer run.threads=1 infer.shard_frames=32 --checkpoint "$work/dsir.h5" \
    --input "$stack" --output "$work/$name" "$@" >"$work/$name.log" 2>&1
  rate "$work/$name.log"
}
echo "dsir infer..." >&2
fused1=$(infer fused-np1 1 "$work/stack64.h5")
fused2=$(infer fused-np2 2 "$work/stack64.h5")
plain1=$(infer libtorch-np1 1 "$work/stack64-small.h5" infer.engine=libtorch)

echo "DSIR's own code..." >&2
peer=$(/usr/bin/python3 bench/peer_dsir.py "$ref")

echo "dsir train..." >&2
common=(run.dir="$work/train-data" run.seed=1 simulate.train.frames=640 simulate.acquisition.frames=0
        train.validation_fraction=0.05 train.batch_size=32 train.epochs=2 run.threads=1)
"$dsir" run --stages simulate,ingest,upscale "${common[@]}" >"$work/train-data.log" 2>&1
train_fps() {
  "${MPIRUN[@]}" "$1" "$dsir" train "${common[@]}" train.output="$work/train-np$1" >"$work/train-np$1.log" 2>&1
  sed -n 2p "$work/train-np$1/metrics.jsonl" | sed 's/.*"frames_per_s":\([0-9.]*\).*/\1/'
}
train1=$(train_fps 1)
train2=$(train_fps 2)

out=bench/results/cpu-$(date -u +%Y%m%dT%H%M%SZ).json
/usr/bin/python3 - "$out" <<EOF
import json, sys, subprocess
peer = json.loads('''$peer''')
cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
model = next((l.split(":", 1)[1].strip() for l in cpu.splitlines() if l.startswith("Model name")), "?")
r = {
  "benchmark": "bench/cpu_bench.sh", "date_utc": "$(date -u +%FT%TZ)",
  "machine": {"cpu": model, "cores": $(nproc), "memory_gib": round($(awk '/MemTotal/ {print $2}' /proc/meminfo) / 2**20, 1)},
  "load_before": "$load_before", "load_after": open("/proc/loadavg").read().split()[:3],
  "threads_per_process": 1,
  "dsir": {"infer_fps_64_fused_np1": $fused1, "infer_fps_64_fused_np2": $fused2,
           "infer_fps_64_libtorch_np1": $plain1, "train_fps_208_batch32_np1": $train1,
           "train_fps_208_batch32_np2": $train2},
  "dsir_peer": peer,
}
r["ratios"] = {
  "infer_fused_vs_dsir_loop": r["dsir"]["infer_fps_64_fused_np1"] / peer["infer_fps_64"],
  "infer_libtorch_vs_dsir_loop": r["dsir"]["infer_fps_64_libtorch_np1"] / peer["infer_fps_64"],
  "infer_fused_vs_libtorch": r["dsir"]["infer_fps_64_fused_np1"] / r["dsir"]["infer_fps_64_libtorch_np1"],
  "infer_np2_vs_np1": r["dsir"]["infer_fps_64_fused_np2"] / r["dsir"]["infer_fps_64_fused_np1"],
  "train_vs_dsir_step": r["dsir"]["train_fps_208_batch32_np1"] / peer["train_fps_208_batch32"],
  "train_np2_vs_np1": r["dsir"]["train_fps_208_batch32_np2"] / r["dsir"]["train_fps_208_batch32_np1"],
}
json.dump(r, open(sys.argv[1], "w"), indent=2)
print(json.dumps(r, indent=2))
EOF
echo "written: $out" >&2
