#!/usr/bin/env bash
# Error paths of sharded inference and reduction, on the fixture's model and acquisition and the
# shards infer_kill_resume.sh left in INFER_WORK/ref/infer: missing checkpoint, a glob matching
# nothing, tiles with per-frame BatchNorm, pixel-size mismatch, a failing rank, an unreadable
# shard, shards of different runs. Exit codes, messages naming file/key/rank, nothing half-written.
# usage: infer_error_checks.sh DSIR FIXTURE_DIR INFER_WORK
set -uo pipefail
dsir=$1 fixture=$2 infer_work=$3
source "$(dirname "$0")/mpi_env.sh"
work=$infer_work/errors
rm -rf "$work" && mkdir -p "$work"
model=$fixture/train/model.h5
acq=$infer_work/archive/cellA.h5
source "$(dirname "$0")/checks.sh"

check "missing checkpoint names the key and file" 2 "infer.checkpoint: file '$work/absent.h5' does not exist" -- \
  "$dsir" infer --checkpoint "$work/absent.h5" --input "$acq" --output "$work/x"
check "a glob matching nothing" 2 "infer.input: '$infer_work/archive/\*.tif': no file matches" -- \
  "$dsir" infer --checkpoint "$model" --input "$infer_work/archive/*.tif" --output "$work/x"
check "tiles refused with per-frame BatchNorm" 2 "tiles need running BatchNorm" -- \
  "$dsir" infer infer.tile_size=16 --checkpoint "$model" --input "$acq" --output "$work/x" --bn per-frame
check "a threshold neither auto nor a number" 2 "infer.threshold: '0x1' is neither auto nor a number" -- \
  "$dsir" infer infer.threshold=0x1 --checkpoint "$model" --input "$acq" --output "$work/x"
check "an emitter mass neither auto nor a number" 2 "infer.emitter_mass: '-1' is neither auto nor a number" -- \
  "$dsir" infer infer.emitter_mass=-1 --checkpoint "$model" --input "$acq" --output "$work/x"
threshold=$(h5dump -a /localize_threshold "$model" | sed -n 's/^ *(0): //p')
check "infer.threshold auto takes the model's own ($threshold)" 0 \
  "localization threshold $threshold \(the model's, chosen in training" -- \
  "$dsir" infer run.threads=1 --checkpoint "$model" --input "$acq" --output "$work/auto"
emitter_mass=$(h5dump -a /localize_emitter_mass "$model" | sed -n 's/^ *(0): //p')
check "infer.emitter_mass auto takes the model's own ($emitter_mass)" 0 \
  "localization emitter mass $emitter_mass \(the model's, chosen in training" -- \
  "$dsir" infer run.threads=1 --checkpoint "$model" --input "$acq" --output "$work/auto-mass"
"$dsir" ingest --frames "$fixture/sim/acquisition.tif" --pixel-size 50 --output "$work/px50.h5" >/dev/null 2>&1
# Rank 0 scans the inputs for all: its error is every rank's, reported once.
once "pixel-size mismatch under MPI: one message, exit 1" 1 "px50.h5: pixel size 50 nm, but the model .* 100 nm" -- \
  "${MPIRUN[@]}" 2 "$dsir" infer --checkpoint "$model" --input "$work/px50.h5" --output "$work/x"
# Rank 1 cannot write its shard (a folder stands in the way): the job aborts, naming rank 1.
mkdir -p "$work/blocked/cellA/shard-00001.h5/x"
check "a failing rank aborts all, rank-tagged" nonzero "ERROR on rank 1 of 2: .*shard-00001.h5" -- \
  "${MPIRUN[@]}" 2 "$dsir" infer infer.schedule=static infer.shard_frames=40 --checkpoint "$model" \
  --input "$acq" --output "$work/blocked"
mkdir -p "$work/corrupt" && cp -r "$infer_work/ref/infer/cellA" "$work/corrupt/"
head -c 2000 /dev/urandom >"$work/corrupt/cellA/shard-00003.h5"
check "unreadable shard names the file" 1 "corrupt/cellA/shard-00003.h5: not a readable HDF5 file" -- \
  "$dsir" reduce --input "$work/corrupt" --output "$work/corrupt-out"
[[ -e $work/corrupt-out/reconstruction.h5 ]] && bad "reduce left outputs after an error" || ok "reduce wrote nothing after the error"
# 0.45: no candidate of training's threshold choice, so never the fixture model's own.
"$dsir" infer run.threads=1 infer.threshold=0.45 --checkpoint "$model" --input "$acq" \
  --output "$work/other" >/dev/null 2>&1
mkdir -p "$work/mixed" && cp -r "$infer_work/ref/infer/cellA" "$work/mixed/" && cp "$work/other/cellA/shard-00000.h5" "$work/mixed/cellA/"
check "shards of different runs are refused" 1 "shard-00001.h5: settings_hash is .* the folder mixes shards of different runs" -- \
  "$dsir" reduce --input "$work/mixed" --output "$work/mixed-out"

echo "$pass passed, $fail failed"
[[ $fail -eq 0 ]]
