#!/usr/bin/env bash
# dsir calibrate through the binary: a sparse simulated EMCCD stack gives camera.yaml (a config the
# simulator accepts, EM on) and calibration.png; bad requests exit 2 (usage) or 1 (data), naming
# the file.
# usage: test_cli.sh DSIR WORKDIR
set -uo pipefail
dsir=$1 work=$2
rm -rf "$work" && mkdir -p "$work"
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok: $1"; }
bad() { fail=$((fail + 1)); echo "FAILED: $1"; }
run_capture() { out=$(timeout 120 "$@" 2>&1); code=$?; }

"$dsir" simulate run.dir="$work/sim" simulate.train.frames=0 simulate.acquisition.frames=300 \
  simulate.acquisition.width=48 simulate.acquisition.height=48 simulate.acquisition.density=0.5 \
  simulate.acquisition.structure=uniform camera.em_gain=100 camera.e_per_adu=50 \
  'psf.fwhm_nm=[260, 260]' 'psf.photons=[800, 2000]' >/dev/null 2>&1 || bad "simulate"
acq="$work/sim/sim/acquisition.tif"

run_capture "$dsir" calibrate --frames "$acq" --output "$work/out/camera.yaml"
if [[ $code -eq 0 && -s "$work/out/camera.yaml" && -s "$work/out/calibration.png" ]]; then
  ok "camera.yaml and calibration.png written"
else
  bad "calibrate (exit $code): $out"
fi
if grep -q "EM register on" "$work/out/camera.yaml"; then ok "EM found"; else bad "EM not found: $(cat "$work/out/camera.yaml")"; fi
run_capture "$dsir" config show "$work/out/camera.yaml"
if [[ $code -eq 0 && $out == *"em_gain"* ]]; then ok "camera.yaml is a valid config"; else bad "config show camera.yaml (exit $code): $out"; fi

run_capture "$dsir" calibrate
if [[ $code -eq 2 && $out == *"calibrate.frames"* ]]; then ok "no frames: exit 2"; else bad "no frames (exit $code): $out"; fi
run_capture "$dsir" calibrate --frames "$work/missing.tif"
if [[ $code -eq 2 && $out == *"missing.tif"* ]]; then ok "missing file: exit 2"; else bad "missing file (exit $code): $out"; fi
"$dsir" simulate run.dir="$work/one" simulate.train.frames=1 >/dev/null 2>&1 || bad "simulate one frame"
run_capture "$dsir" calibrate --frames "$work/one/sim/train.tif"
if [[ $code -eq 1 && $out == *"train.tif"*"1 frame"* ]]; then ok "a single frame: exit 1 naming the file"; else bad "single frame (exit $code): $out"; fi

echo "$pass passed, $fail failed"
[[ $fail -eq 0 ]]
