#!/usr/bin/env bash
# The simulate stage through the dsir binary: the DSIR preset validates against the whole schema
# and simulates 26x26 frames with ThunderSTORM's CSV header; simulate.format=h5 writes the same
# frames and ground truth as TIFF + ingest, on any number of ranks; bad masks fail cleanly.
# usage: test_cli.sh DSIR SOURCE_DIR WORKDIR
set -uo pipefail
dsir=$1 src=$2 work=$3
source "$src/tests/e2e/mpi_env.sh"
rm -rf "$work" && mkdir -p "$work"
preset=$src/configs/dsir-preset.yaml
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok: $1"; }
bad() { fail=$((fail + 1)); echo "FAILED: $1"; }
expect() {  # expect NAME COMMAND...: the command succeeds
  local name=$1
  shift
  if "$@" >"$work/last.log" 2>&1; then ok "$name"; else bad "$name"; tail -5 "$work/last.log"; fi
}
# Sets `code` and `out`.
run_capture() { out=$(timeout 120 "$@" 2>&1); code=$?; }

expect "preset validates against the full schema" "$dsir" config show "$preset"
"$dsir" config show "$preset" >"$work/effective.yaml" 2>/dev/null
for want in "  pixel_size_nm: 100" "  base_level: 100" "  e_per_adu: 1" "  background_photons: 20" \
            "  em_gain: 0" "  fwhm_nm: \[200, 300\]" "  photons: \[80, 2050\]" "    frames: 5000" \
            "    width: 26" "    height: 26" "    density: 2" "  validation_fraction: 0.3" \
            "  batch_size: 32" "  lr: 1e-04" "  label_scale: 1"; do
  if grep -qx -- "$want" "$work/effective.yaml"; then ok "preset has /$want/"; else bad "preset lacks /$want/"; fi
done

small=(run.dir="$work/tiff" simulate.train.frames=30 simulate.acquisition.frames=12
       simulate.acquisition.width=20 simulate.acquisition.height=20)
expect "preset simulates TIFF + CSV" "$dsir" simulate "$preset" "${small[@]}"
header='"id","frame","x [nm]","y [nm]","sigma [nm]","intensity [photon]","offset [photon]","bkgstd [photon]"'
if [[ $(head -1 "$work/tiff/sim/train.csv") == "$header" ]]; then ok "ThunderSTORM's exact CSV header"; else bad "CSV header"; fi
expect "ingest of the simulated TIFFs" "$dsir" ingest "$preset" "${small[@]}"

h5run=(run.dir="$work/h5" simulate.train.frames=30 simulate.acquisition.frames=12
       simulate.acquisition.width=20 simulate.acquisition.height=20 simulate.format=h5 simulate.chunk_frames=7)
expect "simulate.format=h5 on 2 ranks" "${MPIRUN[@]}" 2 "$dsir" simulate "$preset" "${h5run[@]}"
for set in train acquisition; do
  if h5diff "$work/tiff/data/$set.h5" "$work/h5/data/$set.h5" /frames /frames >"$work/diff.log" 2>&1; then
    ok "$set.h5 /frames: simulate.format=h5 on 2 ranks == TIFF + ingest on 1 rank, bit for bit"
  else
    bad "$set.h5 /frames differs"; head -5 "$work/diff.log"
  fi
  # The CSV keeps 5 decimals (ThunderSTORM's format), raw.h5 full doubles: equal within 6e-6.
  # Only the source_file attribute may differ.
  h5diff -d 6e-6 "$work/tiff/data/$set.h5" "$work/h5/data/$set.h5" /emitters /emitters >"$work/diff.log" 2>&1
  rc=$?
  if [[ $rc -le 1 ]] && ! grep -qvE '^attribute: <source_file of </emitters>>|^[0-9]+ differences found$' "$work/diff.log"; then
    ok "$set.h5 /emitters: the same ground truth (within the CSV's 5 decimals)"
  else
    bad "$set.h5 /emitters differs (h5diff exit $rc)"; head -5 "$work/diff.log"
  fi
done
run_capture "$dsir" ingest "$preset" "${h5run[@]}"
if [[ $code -eq 0 && $out == *"nothing to ingest"* ]]; then ok "ingest after simulate.format=h5 is a no-op"; else bad "ingest after h5 (exit $code): $out"; fi

# A density mask thins the acquisition: the mean count becomes density x area x mean weight
# (here 5 x 4 µm² x 40 frames x w, Poisson), with a one-frame simulated TIFF as the mask.
"$dsir" simulate run.dir="$work/maskimg" simulate.train.frames=1 simulate.train.width=20 \
  simulate.train.height=20 >/dev/null 2>&1
masked=(simulate.train.frames=0 simulate.acquisition.frames=40 simulate.acquisition.width=20
        simulate.acquisition.height=20 simulate.acquisition.structure=uniform simulate.acquisition.density=5)
"$dsir" simulate run.dir="$work/mask" "${masked[@]}" simulate.acquisition.mask="$work/maskimg/sim/train.tif" \
  >"$work/mask.log" 2>&1
with=$(($(wc -l <"$work/mask/sim/acquisition.csv") - 1))
w=$(sed -n 's/.*mean weight \([0-9.]*\)).*/\1/p' "$work/mask.log")
if [[ -n $w ]] && awk -v n="$with" -v w="$w" 'BEGIN{m = 800 * w; exit !(w < 0.9 && (n - m)^2 < 25 * m)}'; then
  ok "a density mask thins the acquisition ($with emitters, mean weight $w: expected $(awk -v w="$w" 'BEGIN{print 800 * w}'))"
else
  bad "density mask: $with emitters, mean weight '$w'"
fi
rm -rf "$work/mask"

# Density masks that cannot be used.
run_capture "$dsir" simulate run.dir="$work/mask" simulate.train.frames=3 simulate.acquisition.frames=1 \
  simulate.acquisition.mask="$work/absent.tif"
if [[ $code -eq 2 && $out == *"simulate.acquisition.mask"*"absent.tif"* ]]; then ok "missing mask: exit 2 naming key and file"; else bad "missing mask (exit $code): $out"; fi
head -c 100 "$work/tiff/sim/train.tif" >"$work/broken.tif"
run_capture "$dsir" simulate run.dir="$work/mask" simulate.train.frames=3 simulate.acquisition.frames=1 \
  simulate.acquisition.mask="$work/broken.tif"
if [[ $code -eq 1 && $out == *"broken.tif"* && ! -e $work/mask/sim/acquisition.tif && ! -e $work/mask/sim/train.tif ]]; then ok "corrupt mask: exit 1 naming the file, nothing written"; else bad "corrupt mask (exit $code): $out"; fi

echo "$pass passed, $fail failed"
[[ $fail -eq 0 ]]
