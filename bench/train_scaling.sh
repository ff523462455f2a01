#!/usr/bin/env bash
# Training throughput of `dsir train` (DSIR's net, 26x26 frames upscaled to 208x208, global batch
# 32, one thread per rank) on 1 and 2 MPI ranks: frames/s of the second epoch from
# train/metrics.jsonl (start-up excluded), reading raw.h5 (items upscaled as read, the pipeline's
# default) or upscaled.h5. The rank counts alternate within each round, so that drifts of a
# shared machine's speed fall on both alike; the 2-rank/1-rank ratio is taken per round and its
# median reported. Writes bench/results/train-scaling-<UTC>.json (machine, date, load).
# usage: bench/train_scaling.sh [BUILD_DIR] [WORK_DIR]
# Environment: ROUNDS (3), TRAIN_FRAMES (640), INPUTS ("raw upscaled")
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build} work=${2:-/tmp/dsir-train-scaling}
rounds=${ROUNDS:-3} frames=${TRAIN_FRAMES:-640} inputs=${INPUTS:-raw upscaled}
source tests/e2e/mpi_env.sh
dsir=$build/dsir
rm -rf "$work" && mkdir -p "$work" bench/results
common=(train.model=dsir run.dir="$work/data" run.seed=1 simulate.train.frames="$frames" simulate.acquisition.frames=0
        train.validation_fraction=0.05 train.batch_size=32 train.epochs=2 run.threads=1)
stages=simulate,ingest
[[ " $inputs " == *" upscaled "* ]] && stages+=,upscale
"$dsir" run --stages "$stages" "${common[@]}" >"$work/data.log" 2>&1 || { tail -5 "$work/data.log"; exit 1; }
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; date: $(date -u +%F); load: $load_before"
runs=()
for round in $(seq "$rounds"); do
  for input in $inputs; do
    file=$work/data/data/train.h5
    [[ $input == upscaled ]] && file=$work/data/data/train-upscaled.h5
    for np in 1 2; do
      out=$work/$input-np$np-r$round
      "${MPIRUN[@]}" "$np" "$dsir" train "${common[@]}" train.input="$file" train.output="$out" >"$out.log" 2>&1 ||
        { tail -5 "$out.log"; exit 1; }
      fps=$(sed -n 2p "$out/metrics.jsonl" | sed 's/.*"frames_per_s":\([0-9.]*\).*/\1/')
      echo "round $round, from $input.h5, ranks $np: $fps frames/s"
      runs+=("{\"round\": $round, \"input\": \"$input\", \"ranks\": $np, \"frames_per_s\": $fps}")
    done
  done
done
python3 - "$(date -u +%Y%m%dT%H%M%SZ)" "$load_before" "$frames" "${runs[@]}" <<'PY'
import json, os, statistics, subprocess, sys, time
stamp, load_before, frames, *runs = sys.argv[1:]
runs = [json.loads(r) for r in runs]
cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
model = next((l.split(":", 1)[1].strip() for l in cpu.splitlines() if l.startswith("Model name")), "?")
summary = {}
for inp in dict.fromkeys(r["input"] for r in runs):
    by_round = {}
    for r in runs:
        if r["input"] == inp:
            by_round.setdefault(r["round"], {})[r["ranks"]] = r["frames_per_s"]
    ratios = [v[2] / v[1] for v in by_round.values() if 1 in v and 2 in v]
    summary[inp] = {"ratios": [round(x, 3) for x in ratios], "median_ratio": round(statistics.median(ratios), 3),
                    "median_fps_1": statistics.median(v[1] for v in by_round.values()),
                    "median_fps_2": statistics.median(v[2] for v in by_round.values())}
    print(f"from {inp}.h5: 2 ranks / 1 rank per round {summary[inp]['ratios']}, median {summary[inp]['median_ratio']}")
out = f"bench/results/train-scaling-{stamp}.json"
json.dump({"machine": f"{model}, {os.cpu_count()} cores", "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "load_before": load_before.split(), "load_after": open("/proc/loadavg").read().split()[:3],
           "command": "bench/train_scaling.sh", "train_frames": int(frames), "runs": runs, "summary": summary},
          open(out, "w"), indent=1)
print(f"(written {out})")
PY
