#!/usr/bin/env bash
# CPU throughput of dsir against DSIR's own PyTorch code, one thread each, in one run; writes a
# JSON result (machine, date, load before and after, every sample, medians and ratios) to
# bench/results/cpu-<UTC time>.json and prints it. docs/benchmarks.md's CPU tables come from these.
# This machine's speed drifts by ±20 % within minutes (shared hosts), so dsir and the peer are
# measured alternately, ROUNDS times each, and the ratios are of the medians.
#  - inference end to end: `dsir infer` (read raw.h5, upscale, network, localizations with
#    photometry, shards) on 64x64 frames (x8) with DSIR's pretrained weights and per-frame
#    BatchNorm, engine auto (the fused kernel on an AVX2 CPU) and libtorch, 1 and 2 ranks;
#    DSIR's loop: skimage resize + z-score + its PyTorch model per frame, flush-to-zero on;
#  - training: `dsir train` (26x26 frames x8 = 208x208, batch 32, epoch 2 of metrics.jsonl:
#    reading, validation and checkpoints included) on 1 and 2 ranks, and DSIR's bare training step
#    (forward, blurred MSE, backward, Adam, batch 32 of 208x208 tensors already in memory).
# usage: [ROUNDS=3] bench/cpu_bench.sh [BUILD_DIR] [WORK_DIR]
#        (needs DSIR_WITH_PEERS=1 bash scripts/install-deps.sh; run on an otherwise idle machine)
set -euo pipefail
cd "$(dirname "$0")/.."
build=$(realpath "${1:-build}") work=${2:-/tmp/dsir-cpu-bench}
[[ -x $build/bench/infer_tools ]] || { echo "cpu_bench.sh: $build/bench/infer_tools is missing: build the benchmarks with make build (make test does not)" >&2; exit 2; }
source tests/e2e/mpi_env.sh
ref=../shared/reference/dsir/reference_26px.h5
dsir=$build/dsir tools=$build/bench/infer_tools
rounds=${ROUNDS:-3}
rm -rf "$work" && mkdir -p "$work" bench/results
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
"$tools" make-model "$ref" "$work/dsir.h5" >/dev/null
"$tools" make-stack "$work/stack64.h5" 960 64 >/dev/null
"$tools" make-stack "$work/stack64-small.h5" 96 64 >/dev/null
rate() { sed -n 's/.*infer: [0-9]*\/[0-9]* frames (100%), \([0-9.]*\) frames\/s.*/\1/p' "$1" | tail -1; }
peer() { /usr/bin/python3 bench/peer_dsir.py "$ref" cpu "$1" | sed 's/.*: \([0-9.]*\)}/\1/'; }
infer() {  # name ranks stack [key=value ...]
  local name=$1 np=$2 stack=$3
  shift 3
  rm -rf "${work:?}/${name:?}"
  "${MPIRUN[@]}" "$np" "$dsir" infer run.threads=1 infer.shard_frames=32 --checkpoint "$work/dsir.h5" \
    --input "$stack" --output "$work/$name" "$@" >"$work/$name.log" 2>&1
  rate "$work/$name.log"
}
common=(train.model=dsir run.dir="$work/train-data" run.seed=1 simulate.train.frames=640 simulate.acquisition.frames=0
        train.validation_fraction=0.05 train.batch_size=32 train.epochs=2 run.threads=1)
train() {  # ranks
  rm -rf "$work/train-np$1"
  "${MPIRUN[@]}" "$1" "$dsir" train "${common[@]}" train.output="$work/train-np$1" >"$work/train-np$1.log" 2>&1
  sed -n 2p "$work/train-np$1/metrics.jsonl" | sed 's/.*"frames_per_s":\([0-9.]*\).*/\1/'
}
"$dsir" run --stages simulate,ingest "${common[@]}" >"$work/train-data.log" 2>&1

fused=() plain=() peer_infer=() trains=() peer_train=()
for r in $(seq "$rounds"); do
  echo "round $r of $rounds..." >&2
  fused+=("$(infer fused-np1 1 "$work/stack64.h5")")
  peer_infer+=("$(peer infer)")
  plain+=("$(infer libtorch-np1 1 "$work/stack64-small.h5" infer.engine=libtorch)")
  trains+=("$(train 1)")
  peer_train+=("$(peer train)")
done
echo "2 ranks..." >&2
fused2=$(infer fused-np2 2 "$work/stack64.h5")
train2=$(train 2)

out=bench/results/cpu-$(date -u +%Y%m%dT%H%M%SZ).json
list() { local IFS=,; echo "[$*]"; }
/usr/bin/python3 - "$out" <<PY
import json, statistics, subprocess, sys
med = statistics.median
cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
model = next((l.split(":", 1)[1].strip() for l in cpu.splitlines() if l.startswith("Model name")), "?")
s = {"dsir_infer_fps_64_fused_np1": $(list "${fused[@]}"), "dsir_infer_fps_64_libtorch_np1": $(list "${plain[@]}"),
     "dsir_train_fps_208_batch32_np1": $(list "${trains[@]}"),
     "peer_infer_fps_64": $(list "${peer_infer[@]}"), "peer_train_fps_208_batch32": $(list "${peer_train[@]}")}
m = {k: med(v) for k, v in s.items()}
m["dsir_infer_fps_64_fused_np2"] = $fused2
m["dsir_train_fps_208_batch32_np2"] = $train2
r = {
  "benchmark": "bench/cpu_bench.sh", "date_utc": "$(date -u +%FT%TZ)",
  "machine": {"cpu": model, "cores": $(nproc), "memory_gib": round($(awk '/MemTotal/ {print $2}' /proc/meminfo) / 2**20, 1)},
  "load_before": "$load_before", "load_after": " ".join(open("/proc/loadavg").read().split()[:3]),
  "threads_per_process": 1, "rounds": $rounds, "samples": s, "medians": m,
  "ratios": {
    "infer_fused_vs_dsir_loop": m["dsir_infer_fps_64_fused_np1"] / m["peer_infer_fps_64"],
    "infer_libtorch_vs_dsir_loop": m["dsir_infer_fps_64_libtorch_np1"] / m["peer_infer_fps_64"],
    "infer_np2_vs_np1": m["dsir_infer_fps_64_fused_np2"] / m["dsir_infer_fps_64_fused_np1"],
    "train_vs_dsir_step": m["dsir_train_fps_208_batch32_np1"] / m["peer_train_fps_208_batch32"],
    "train_np2_vs_np1": m["dsir_train_fps_208_batch32_np2"] / m["dsir_train_fps_208_batch32_np1"],
  },
}
json.dump(r, open(sys.argv[1], "w"), indent=2)
print(json.dumps(r, indent=2))
PY
echo "written: $out" >&2
