#!/usr/bin/env bash
# Issue 14 end to end, on the fixture run (tests/e2e/tiny.yaml): evaluate with ground truth adds
# FRC and NeNA to metrics.json; a run without ground truth gets FRC and NeNA only; an explicit
# evaluate.gt that is missing stays an error; reduce.drift: rcc refuses time bins with too few
# localizations, naming the bin, and writes nothing; on a longer acquisition (400 frames, no drift
# simulated) it corrects by ~0 nm, writes drift.csv/drift.png and raw columns that the CSV reader
# takes, and a rerun with reduce.drift: none takes them away. Honest exports (issue 14 item 5):
# ThunderSTORM's uncertainty column and the photometry flags, failed fits flagged or dropped alike
# in the CSV and picasso's file, and evaluate reading picasso's file as it reads the CSV.
# usage: quality_checks.sh DSIR FIXTURE_DIR WORK
set -uo pipefail
dsir=$1 fixture=$2 work=$3
rm -rf "$work" && mkdir -p "$work"
source "$(dirname "$0")/checks.sh"

has() {  # has NAME FILE PATTERN
  if grep -qE -- "$3" "$2" 2>/dev/null; then ok "$1"; else bad "$1 (no /$3/ in $2)"; fi
}

has "metrics.json with ground truth keeps the matching" "$fixture/metrics.json" '"jaccard"'
has "metrics.json with ground truth has the FRC resolution" "$fixture/metrics.json" '"frc_resolution_nm": ([0-9.e+-]+|null)'
has "metrics.json with ground truth has the NeNA precision" "$fixture/metrics.json" '"nena_precision_nm": ([0-9.e+-]+|null)'
[[ -s $fixture/frc.png && -s $fixture/nena.png ]] && ok "frc.png and nena.png beside metrics.json" ||
  bad "frc.png and nena.png beside metrics.json"

# A run folder with localizations and a reconstruction but no data/acquisition.h5.
mkdir -p "$work/nogt"
cp "$fixture/localizations.csv" "$fixture/reconstruction.h5" "$work/nogt/"
check "evaluate without ground truth: FRC and NeNA only" 0 "no ground truth" -- \
  "$dsir" evaluate run.dir="$work/nogt"
has "no ground truth: ground_truth is null" "$work/nogt/metrics.json" '"ground_truth": null'
has "no ground truth: FRC key" "$work/nogt/metrics.json" '"frc_resolution_nm"'
has "no ground truth: NeNA key" "$work/nogt/metrics.json" '"nena_precision_nm"'
grep -q '"matching"' "$work/nogt/metrics.json" && bad "no ground truth: no matching" || ok "no ground truth: no matching"
check "an explicit evaluate.gt that is missing is still an error" 2 "evaluate.gt: file '$work/absent.csv' does not exist" -- \
  "$dsir" evaluate run.dir="$work/nogt" --gt "$work/absent.csv"

# 40 bins of 2 frames: ~30 localizations each, far below what a cross-correlation needs.
check "reduce.drift: rcc with too few localizations per bin names the bin" 1 \
  "reduce.drift: rcc: time bin 1 of 40 \(frames 1-2\) has [0-9]+ localizations, fewer than the 100" -- \
  "$dsir" reduce --input "$fixture/infer" --output "$work/drift" --drift rcc reduce.drift_bins=40
[[ -e $work/drift/reconstruction.h5 || -e $work/drift/drift.csv ]] && bad "reduce wrote nothing after the drift error" ||
  ok "reduce wrote nothing after the drift error"

long=$work/long
"$dsir" run "$(dirname "$0")/tiny.yaml" run.dir="$long" run.threads=1 simulate.acquisition.frames=400 \
  simulate.acquisition.width=48 simulate.acquisition.height=48 --stages simulate,ingest,infer \
  infer.checkpoint="$fixture/train/model.h5" >"$work/long.log" 2>&1 || { bad "the 400-frame run"; tail -5 "$work/long.log"; }
check "reduce.drift: rcc on 400 frames without drift finds none" 0 "drift corrected by RCC \(10 bins, .* largest drift [0-4] nm\)" -- \
  "$dsir" reduce run.dir="$long" --drift rcc
[[ $(head -1 "$long/drift.csv") == "frame,drift_x_nm,drift_y_nm" && $(wc -l <"$long/drift.csv") -eq 401 && -s $long/drift.png ]] &&
  ok "drift.csv (a row per frame) and drift.png" || bad "drift.csv (a row per frame) and drift.png"
has "localizations.csv keeps the raw coordinates" "$long/localizations.csv" '"confidence","photometry_flags","x_raw \[nm\]","y_raw \[nm\]"$'
check "the CSV reader takes the drift-corrected table" 0 '"localizations":[1-9]' -- \
  "$dsir" evaluate run.dir="$long" --locs "$long/localizations.csv" --gt "$long/data/acquisition.h5"
check "reduce.drift: none afterwards" 0 "localizations" -- "$dsir" reduce run.dir="$long"
[[ ! -e $long/drift.csv && ! -e $long/drift.png ]] && ok "none removes the earlier drift files" ||
  bad "none removes the earlier drift files"
grep -q x_raw "$long/localizations.csv" && bad "none: no raw columns" || ok "none: no raw columns"

# Honest exports, on the fixture's shards.
check "reduce counts the localizations whose photometry failed" 0 "[0-9]+ of [1-9][0-9]* localizations failed photometry" -- \
  "$dsir" reduce --input "$fixture/infer" --output "$work/flag"
has "localizations.csv: ThunderSTORM's uncertainty column, confidence, flags" "$work/flag/localizations.csv" \
  '^"id","frame","x \[nm\]","y \[nm\]","sigma \[nm\]","intensity \[photon\]","offset \[photon\]","bkgstd \[photon\]","uncertainty \[nm\]","confidence","photometry_flags"$'
check "reduce.failed_photometry: drop" 0 "failed photometry" -- \
  "$dsir" reduce --input "$fixture/infer" --output "$work/drop" reduce.failed_photometry=drop
rows() { echo $(($(wc -l <"$1") - 1)); }
failed_rows() { awk -F, 'NR > 1 && $NF > 0' "$1" | wc -l; }  # photometry_flags is the last column
flagged=$(failed_rows "$work/flag/localizations.csv")
echo "fixture: $flagged of $(rows "$work/flag/localizations.csv") localizations flagged"
[[ $(rows "$work/drop/localizations.csv") -eq $(($(rows "$work/flag/localizations.csv") - flagged)) &&
  $(failed_rows "$work/drop/localizations.csv") -eq 0 ]] && ok "drop leaves out exactly the flagged rows" ||
  bad "drop leaves out exactly the flagged rows"
check "a reduce.failed_photometry that is not flag or drop is a config error" 2 "reduce.failed_photometry" -- \
  "$dsir" reduce --input "$fixture/infer" --output "$work/hide" reduce.failed_photometry=hide
# evaluate on picasso's file: the same localizations, matches and flags as on the CSV.
counts() { grep -oE '"(localizations|photometry_failed|tp|fp|fn)":[0-9]+' <<<"$1" | tr '\n' ' '; }
from_csv=$(counts "$("$dsir" evaluate run.dir="$work/flag" --locs "$work/flag/localizations.csv" \
  --gt "$fixture/data/acquisition.h5" 2>/dev/null)")
from_picasso=$(counts "$("$dsir" evaluate run.dir="$work/flag" --locs "$work/flag/localizations.hdf5" \
  --gt "$fixture/data/acquisition.h5" 2>/dev/null)")
[[ $from_csv == *'"tp":'* && $from_csv == "$from_picasso" ]] && ok "evaluate on picasso's file counts as on the CSV" ||
  bad "evaluate on picasso's file counts as on the CSV ($from_csv vs $from_picasso)"
[[ $from_csv == *"\"photometry_failed\":$flagged "* ]] && ok "metrics.json counts the flagged localizations" ||
  bad "metrics.json counts the flagged localizations ($from_csv; $flagged flagged)"
cp "$work/flag/localizations.hdf5" "$work/lone.hdf5"
check "a picasso file without its .yaml is an error naming the .yaml" 1 "$work/lone.yaml: no such file" -- \
  "$dsir" evaluate run.dir="$work/flag" --locs "$work/lone.hdf5"

echo "$pass passed, $fail failed"
[[ $fail -eq 0 ]]
