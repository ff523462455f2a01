#!/usr/bin/env bash
# Accuracy per training minute (issue 14 item 1, docs/accuracy.md): every lever trains for the
# same wall-clock budget (train.time_limit_min) from the same seed on camera-matched simulated
# frames, then infers, reduces and evaluates on one held-out simulated filament acquisition per
# seed at 6 emitters/µm² with Deep-STORM demo 1's camera (docs/simulator.md: base 100 ADU,
# 2 ADU/photon, EM, 20 background photons, ThunderSTORM's sampled PSF). Scores: image Pearson
# after a 20 nm blur, JI and RMSE at 50 nm. Writes bench/results/accuracy-levers-<UTC>.json and
# prints the markdown table for docs/accuracy.md. Run on an otherwise idle machine: a budget is
# wall-clock time.
# usage: bench/accuracy_levers.sh [BUILD_DIR] [WORK_DIR]
# Environment: BUDGET_MIN (15), SEEDS ("1": the levers share one seed; the recipe takes several),
#              LEVERS (names below; default all), RANKS (2), TRAIN_FRAMES (4000 of 20x20)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build} work=${2:-/tmp/dsir-accuracy-levers}
budget=${BUDGET_MIN:-15} seeds=${SEEDS:-1} ranks=${RANKS:-2} train_frames=${TRAIN_FRAMES:-4000}
source tests/e2e/mpi_env.sh
dsir=$(realpath "$build/dsir")
mkdir -p "$work" bench/results

camera=(camera.pixel_size_nm=100 camera.base_level=100 camera.em_gain=2 camera.e_per_adu=1
        camera.background_photons=20 psf.model=sampled)
# The recipe every lever starts from: what the quick start trains with, on training frames at
# the target's density, epochs enough that the budget ends training; training emitters placed
# uniformly as DSIR's (the schema's default is filaments since 2026-12-02: train-filaments), a
# constant rate (the schema's default is a cosine over the budget since 2026-12-03).
base=("${camera[@]}" "simulate.train.frames=$train_frames" simulate.train.width=20 simulate.train.height=20
      simulate.train.density=6 simulate.train.structure=uniform train.epochs=1000 train.batch_size=16 train.lr=1e-3 train.lr_schedule=constant train.label_scale=100
      train.validation_fraction=0.1 "train.time_limit_min=$budget" infer.shard_frames=50)
# Training frames on random filaments of their own (2 per 2x2 um frame: about the test's emitters
# per um of filament) instead of uniformly placed emitters: the default recipe's placement.
filaments="simulate.train.structure=filaments simulate.train.filaments=2"
# Each lever: a name and the overrides that differ from the base (one change at a time).
declare -A lever=(
  [base]=""
  [dsir-resize]="train.model=dsir-resize"
  [deepstorm]="train.model=deepstorm"
  [labels-deepstorm]="upscale.labels=deepstorm"
  [labels-gaussian]="upscale.labels=gaussian"
  [labels-gaussian-2]="upscale.labels=gaussian upscale.label_sigma_px=2"
  [label-scale-10]="train.label_scale=10"
  [label-scale-1000]="train.label_scale=1000"
  [density-3]="simulate.train.density=3"
  [density-10]="simulate.train.density=10"
  [batch-32]="train.batch_size=32"
  [lr-3e-4]="train.lr=3e-4"
  [plateau]="train.plateau.patience=2"
  [bn-running]="train.bn_inference=running"
  [loss-fwhm-5]="train.loss.fwhm=5 train.loss.kernel_size=9"
  [dsir-preset]="train.lr=1e-4 train.label_scale=1 train.batch_size=32"
  [train-filaments]="$filaments"
  [filaments-resize]="$filaments train.model=dsir-resize"
  [filaments-deepstorm]="$filaments train.model=deepstorm"
  # Its convolutions in bfloat16 (train.precision; 1.6x the frames per second on an AVX512-BF16 CPU).
  [filaments-deepstorm-bf16]="$filaments train.model=deepstorm train.precision=bfloat16"
  # Convolutions at camera pixels, the map painted by a sub-pixel shuffle (stages/train/models/subpixel_net.h).
  [filaments-subpixel]="$filaments train.model=subpixel"
  # Its ~160k weights memorise 3,600 items within 2 minutes (validation loss rises after epoch 14):
  # 25x the frames, fresh simulated data being nearly free (8,600 frames/s), 2 % of them to validate.
  [filaments-subpixel-100k]="$filaments train.model=subpixel simulate.train.frames=100000 train.validation_fraction=0.02"
  # The same with the rate annealed to 0 along a cosine over the 5 epochs that 15 minutes hold.
  [filaments-subpixel-100k-cosine]="$filaments train.model=subpixel simulate.train.frames=100000 train.validation_fraction=0.02 train.lr_schedule=cosine train.epochs=5"
  # The cosine over the whole budget (train.lr_schedule under train.time_limit_min), convolutions in
  # bfloat16 (1.58x the frames per second of float32 here).
  [filaments-subpixel-100k-cosine-bf16]="$filaments train.model=subpixel simulate.train.frames=100000 train.validation_fraction=0.02 train.lr_schedule=cosine train.epochs=20 train.precision=bfloat16"
  # The schema's recipe since 2026-12-03: the cosine over the whole budget in float32.
  [filaments-subpixel-100k-cosine-budget]="$filaments train.model=subpixel simulate.train.frames=100000 train.validation_fraction=0.02 train.lr_schedule=cosine train.epochs=20"
  # The same trunk with DECODE's output and loss (stages/train/models/detector_net.h): per camera
  # pixel an emitter's probability, position and spread, no blurred map.
  [filaments-detector-100k-cosine-budget]="$filaments train.model=detector simulate.train.frames=100000 train.validation_fraction=0.02 train.lr_schedule=cosine train.epochs=20"
  # The detector on training frames of a wider photon range than the target's (80-2050) and
  # at a higher density (10/um^2, the target's 6).
  [detector-photons-wide]="$filaments train.model=detector simulate.train.frames=100000 train.validation_fraction=0.02 train.lr_schedule=cosine train.epochs=20 psf.photons=[40,4000]"
  [detector-density-10]="$filaments train.model=detector simulate.train.frames=100000 train.validation_fraction=0.02 train.lr_schedule=cosine train.epochs=20 simulate.train.density=10"
  # Twice the frames: at 9 epochs of 100,000 the training loss fell away from the validation loss.
  [filaments-subpixel-200k-cosine-bf16]="$filaments train.model=subpixel simulate.train.frames=200000 train.validation_fraction=0.01 train.lr_schedule=cosine train.epochs=20 train.precision=bfloat16"
  # On top of train-filaments (the default recipe since 2026-12-02): the loss kernel, label form
  # and training density around it.
  [filaments-fwhm-2]="$filaments train.loss.fwhm=2"
  [filaments-fwhm-5]="$filaments train.loss.fwhm=5 train.loss.kernel_size=9"
  [filaments-gaussian]="$filaments upscale.labels=gaussian"
  [filaments-dense]="simulate.train.structure=filaments simulate.train.filaments=3 simulate.train.density=9"
  # Not a lever on the base: what a user gets who sets only the camera, the PSF, the training
  # density and the time budget (issue 14), every other key at the schema's default.
  [defaults]="@DEFAULTS@"
  # A schedule spans train.epochs: the epochs the base finished within the budget (@EPOCHS@).
  [cosine]="train.lr_schedule=cosine train.epochs=@EPOCHS@"
  [one-cycle]="train.lr_schedule=one-cycle train.epochs=@EPOCHS@"
)
names=${LEVERS:-base dsir-resize deepstorm train-filaments filaments-resize filaments-deepstorm labels-deepstorm labels-gaussian labels-gaussian-2 label-scale-10 label-scale-1000 density-3 density-10 batch-32 lr-3e-4 plateau cosine one-cycle bn-running loss-fwhm-5 dsir-preset}
for name in $names; do [[ -v "lever[$name]" ]] || { echo "unknown lever '$name' (known: ${!lever[*]})" >&2; exit 2; }; done

stamp=$(date -u +%Y%m%dT%H%M%SZ)
out=bench/results/accuracy-levers-$stamp.json
echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; date: $(date -u +%F); load: $(cut -d' ' -f1-3 /proc/loadavg); budget $budget min; seeds $seeds; $ranks ranks" >&2
rows=()
for seed in $seeds; do
  # The held-out acquisition of this seed: 300 frames of 64x64, filaments, 6/µm² (seed + 1000,
  # so that no lever's training frames share its random streams).
  test_dir=$work/test-$seed
  if [[ ! -s $test_dir/data/acquisition.h5 ]]; then
    "$dsir" run --stages simulate,ingest run.dir="$test_dir" run.seed=$((seed + 1000)) "${camera[@]}" \
      simulate.train.frames=0 simulate.acquisition.frames=300 simulate.acquisition.width=64 \
      simulate.acquisition.height=64 simulate.acquisition.density=6 simulate.acquisition.structure=filaments \
      >"$test_dir.log" 2>&1 || { tail -5 "$test_dir.log"; exit 1; }
  fi
  for name in $names; do
    dir=$work/$name-$seed
    overrides=${lever[$name]} recipe=("${base[@]}")
    if [[ $overrides == @DEFAULTS@ ]]; then
      overrides="" recipe=("${camera[@]}" simulate.train.density=6 "train.time_limit_min=$budget")
    fi
    if [[ $overrides == *@EPOCHS@* ]]; then
      [[ -s $work/base-$seed/train/metrics.jsonl ]] ||
        { echo "$name needs the base lever's run first (LEVERS=\"base $name\")" >&2; continue; }
      epochs=$(grep -c . "$work/base-$seed/train/metrics.jsonl")
      overrides=${overrides//@EPOCHS@/$((epochs > 0 ? epochs : 1))}
    fi
    # shellcheck disable=SC2086  # the lever's overrides are words
    if ! "${MPIRUN[@]}" "$ranks" "$dsir" run --stages simulate,ingest,train,infer,reduce,evaluate run.dir="$dir" \
      run.seed="$seed" "${recipe[@]}" $overrides simulate.acquisition.frames=0 \
      "infer.input=[$test_dir/data/acquisition.h5]" evaluate.gt="$test_dir/data/acquisition.h5" \
      >"$dir.log" 2>&1; then
      echo "$name seed $seed: failed (log $dir.log)" >&2
      tail -5 "$dir.log" >&2
      continue
    fi
    row=$(python3 - "$dir" "$name" "$seed" "$overrides" <<'PY'
import json, re, sys
d, name, seed, overrides = sys.argv[1:]
# infer.threshold auto: the model's own, chosen at the end of training, as infer's log says.
found = re.search(r"infer: localization threshold ([0-9.e+-]+)", open(f"{d}.log").read())
threshold = float(found.group(1)) if found else float("nan")
found = re.search(r"infer: localization emitter mass ([0-9.e+-]+)", open(f"{d}.log").read())
emitter_mass = float(found.group(1)) if found else float("nan")
m = json.load(open(f"{d}/metrics.json"))
at50 = next(t for t in m["matching"] if t["tolerance_nm"] == 50)["hungarian"]
# No metrics.jsonl: the budget ended within the first epoch (model.h5 holds the weights then).
try:
    epochs = [json.loads(l) for l in open(f"{d}/train/metrics.jsonl") if l.strip()]
except FileNotFoundError:
    epochs = []
print(json.dumps({"lever": name, "overrides": overrides, "seed": int(seed), "pearson_20nm": m["image"]["pearson"],
                  "ji_50nm": at50["jaccard"], "rmse_50nm": at50["rmse_lateral_nm"],
                  "epochs": len(epochs), "localizations": m["localizations"], "threshold": threshold,
                  "emitter_mass": emitter_mass}))
PY
)
    echo "$row" >&2
    rows+=("$row")
  done
done
[[ ${#rows[@]} -gt 0 ]] || { echo "accuracy_levers: no run finished" >&2; exit 1; }
python3 - "$out" "$budget" "$seeds" "$ranks" "${rows[@]}" <<'PY'
import json, os, platform, statistics, subprocess, sys, time
out, budget, seeds, ranks, *rows = sys.argv[1:]
rows = [json.loads(r) for r in rows]
cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
model = next((l.split(":", 1)[1].strip() for l in cpu.splitlines() if l.startswith("Model name")), "?")
json.dump({"machine": f"{model}, {os.cpu_count()} cores", "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "load": open("/proc/loadavg").read().split()[:3], "budget_min": float(budget), "seeds": seeds.split(),
           "ranks": int(ranks), "command": "bench/accuracy_levers.sh", "runs": rows}, open(out, "w"), indent=1)
print(f"| lever | Pearson @20 nm | JI @50 nm | RMSE @50 nm | epochs in {budget} min | threshold | emitter mass | seeds |")
print("|---|---|---|---|---|---|---|---|")
for lever in dict.fromkeys(r["lever"] for r in rows):
    rs = [r for r in rows if r["lever"] == lever]
    mean = lambda k: statistics.mean(r[k] for r in rs)
    each = lambda key: "/".join(format(r.get(key, 0), "g") for r in rs)
    print(f"| {lever} | {mean('pearson_20nm'):.4f} | {mean('ji_50nm'):.4f} | {mean('rmse_50nm'):.1f} | "
          f"{mean('epochs'):.1f} | {each('threshold')} | {each('emitter_mass')} | {len(rs)} |")
print(f"(written {out})", file=sys.stderr)
PY
