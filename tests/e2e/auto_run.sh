#!/usr/bin/env bash
# Auto mode (configs/auto.yaml) under mpirun -np 2 on a "lab's" acquisition whose camera nobody
# typed: an EMCCD stack simulated with base level 180 ADU and 2 ADU per photon. calibrate finds
# them, the stages after it run with them (config.yaml records them, the ingested raw.h5 carries
# them), every stage of the chain leaves its outputs, and a key the user sets wins.
# usage: auto_run.sh DSIR WORK
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
source "$here/checks.sh"
source "$here/mpi_env.sh"
dsir=$(realpath "$1")
work=$2
rm -rf "$work" && mkdir -p "$work"
work=$(realpath "$work")

source "$here/lab_stack.sh"
lab_stack "$dsir" "$work" "$work/cell-01.tif" || exit 1

run=$work/run
small=(simulate.train.frames=256 train.epochs=1 train.batch_size=16)
timeout 540 "${MPIRUN[@]}" 2 "$dsir" run "$root/configs/auto.yaml" --input "$work/cell-*.tif" run.dir="$run" \
  "${small[@]}" >"$work/run.log" 2>&1
code=$?
[[ $code -eq 0 ]] && grep -q "report: wrote" "$work/run.log" && ok "auto run under mpirun -np 2 (input a glob)" ||
  { bad "auto run (exit $code)"; grep -vE "frames \([0-9]+%\)" "$work/run.log" | tail -25; }

within() { awk -v v="$1" -v t="$2" -v tol="$3" 'BEGIN { exit !(v - t <= tol * t && t - v <= tol * t) }'; }
value_of() { sed -n "s/^  $1: //p" "$2" | head -1; }  # a camera: key of a nested config.yaml
base=$(value_of base_level "$run/config.yaml")
[[ -n $base ]] && within "$base" 180 0.05 && ok "the run's config.yaml has the calibrated base level ($base, true 180)" ||
  bad "base level '$base' in $run/config.yaml, true 180"
em=$(value_of em_gain "$run/config.yaml")
awk -v g="${em:-0}" 'BEGIN { exit !(g >= 1) }' && ok "EM found (em_gain $em)" || bad "em_gain '$em': EM not found"
[[ -s $run/camera.yaml && -s $run/calibration.png ]] && ok "camera.yaml and calibration.png in the run folder" ||
  bad "no camera.yaml or calibration.png in $run"
grep -q "calibrate: the run continues with camera.base_level=" "$work/run.log" && ok "the log says what the run continues with" ||
  bad "no 'continues with' line in the log"
grep -q "kept as the config sets them: .*camera" "$work/run.log" && bad "nothing was set by hand in the second run, yet keys were kept" ||
  ok "no key kept when none was set"
raw=$run/data/input/cell-01.h5
[[ -s $raw ]] && ok "ingest wrote the acquisition to data/input/cell-01.h5" || bad "no $raw"
camera=$(h5dump -a /camera "$raw" 2>/dev/null | tr -d '\\' | grep -o '"base_level":[0-9.e+]*' | head -1 | cut -d: -f2)
[[ -n $camera ]] && within "$camera" 180 0.05 && ok "its camera attribute is the calibrated one ($camera)" ||
  bad "camera attribute base_level '$camera'"
[[ -s $run/train/model.h5 && -s $run/reconstruction.png && -s $run/localizations.csv ]] &&
  ok "trained, reconstructed and exported" || bad "a stage's output is missing"
grep -q '>Calibration</h2>' "$run/report.html" 2>/dev/null && ok "report.html shows the calibration" ||
  bad "no Calibration section in report.html"
# A key the user sets wins over the calibration, and is said to.
check "a key set by hand is kept" 0 "kept as the config sets them: camera.base_level \(calibrated" -- \
  "$dsir" run "$root/configs/auto.yaml" --input "$work/cell-01.tif" run.dir="$work/kept" \
  --stages calibrate camera.base_level=175
check "auto run without inputs: exit 2 naming the key" 2 "calibrate.frames: no frames given" -- \
  "$dsir" run "$root/configs/auto.yaml" run.dir="$work/none"

echo "$pass passed, $fail failed"
[[ $fail -eq 0 ]]
