#!/usr/bin/env bash
# Command-line contract: exit codes, error messages naming file/line/key, rank-tagged aborts
# under MPI without hanging, and no half-written outputs.
# usage: cli_checks.sh DSIR WORKDIR
set -uo pipefail
dsir=$1 work=$2
source "$(dirname "$0")/mpi_env.sh"
rm -rf "$work" && mkdir -p "$work"
source "$(dirname "$0")/checks.sh"

cat >"$work/typo.yaml" <<'Y'
train:
  epochs: 3
  lrr: 0.1
Y
check "unknown key: file:line:col and did-you-mean, exit 2" 2 "typo.yaml:3:3: unknown key 'train.lrr' \(did you mean 'train.lr'\?\)" -- "$dsir" config show "$work/typo.yaml"
printf 'train:\n  epochs: 0\n' >"$work/range.yaml"
check "out of range names key and range" 2 "range.yaml:2:3: train.epochs = 0 is out of range \[1, 1e\+06\]" -- "$dsir" train "$work/range.yaml"
check "wrong type names key" 2 "train.lr expects a number" -- "$dsir" config show train.lr=fast
check "unknown override suggests" 2 "unknown key 'upscale.factr' \(did you mean 'upscale.factor'\?\)" -- "$dsir" upscale upscale.factr=4
check "missing config file" 2 "nope.yaml: config file not found" -- "$dsir" run "$work/nope.yaml"
check "misspelt command: did-you-mean and the list, exit 2" 2 "unknown command 'trian' \(did you mean 'train'\?\); the commands: run, " -- "$dsir" trian "$work/nope.yaml"
check "a data file where the config goes names the flag" 2 "'acquisition.h5' is a data file, not a config \(CONFIG.yaml\); \`dsir infer\` reads files given with --checkpoint \(infer.checkpoint\), --input \(infer.input\), e.g. dsir infer --input acquisition.h5" -- "$dsir" infer acquisition.h5
check "a key without '=' shows the override" 2 "'train.epochs' is a config key given without a value: an override is key=value \(train.epochs=3\)" -- "$dsir" config show "$work/range.yaml" train.epochs 3
check "missing input file names it" 2 "upscale.input: file '$work/absent.h5' does not exist" -- "$dsir" upscale --input "$work/absent.h5" --output "$work/u.h5"
check "bad flag is a usage error" 2 "" -- "$dsir" ingest --no-such-flag
check "help exits 0" 0 "--frames" -- "$dsir" ingest --help
check "run.verbose (--verbose) logs debug lines: the effective config" 0 "debug: +epochs: 3" -- "$dsir" config show run.verbose=true train.epochs=3
out=$("$dsir" config show train.epochs=3 2>&1)
grep -q "debug:" <<<"$out" && bad "debug lines without --verbose" || ok "no debug lines without --verbose"
# evaluate: undefined metrics are null, and a mismatch of frames or field is a warning.
printf '"id","frame","x [nm]","y [nm]"\n' >"$work/no-locs.csv"
printf '"id","frame","x [nm]","y [nm]"\n1,1,500,500\n2,2,1500,1500\n' >"$work/gt.csv"
check "evaluate with no localizations: null RMSE and efficiency, and a warning" 0 \
  '"rmse_lateral_nm":null.*"efficiency":null' -- "$dsir" evaluate --locs "$work/no-locs.csv" --gt "$work/gt.csv"
check "evaluate with no localizations says so" 0 "warning: evaluate: there are no localizations" -- \
  "$dsir" evaluate --locs "$work/no-locs.csv" --gt "$work/gt.csv"
printf '"id","frame","x [nm]","y [nm]"\n1,1,500,500\n2,2,5500,5500\n3,2,6000,300\n' >"$work/wide-locs.csv"
check "evaluate warns when the localizations lie beyond the ground truth's field" 0 \
  "warning: evaluate: only 33 % of the localizations .* lie in the ground truth's field" -- \
  "$dsir" evaluate --locs "$work/wide-locs.csv" --gt "$work/gt.csv"
check "help shows each flag's type, range and default" 0 "--tolerance-nm FLOAT in \\[0, 1e\\+06\\]=\\[50, 250\\]" -- "$dsir" evaluate --help
check "help shows a choice's values" 0 "--drift \\{none\\|rcc\\}=none" -- "$dsir" reduce --help
once "config errors are reported once under MPI, exit 2" 2 "unknown key 'run.sed'" -- "${MPIRUN[@]}" 2 "$dsir" config show run.sed=1

# A failure on one rank only: rank 1 ingests a corrupt acquisition while rank 0 succeeds and
# waits; the job must abort naming rank 1 and the file, not hang.
mkdir -p "$work/r/sim"
"$dsir" simulate run.dir="$work/r" simulate.train.frames=4 simulate.acquisition.frames=4 >/dev/null 2>&1
# An error every rank reaches inside a stage (each rank opens the stack and finds the patch too
# large): printed once by rank 0, a clean exit 2 on every rank, no abort.
"$dsir" ingest --frames "$work/r/sim/acquisition.tif" --output "$work/shared.h5" >/dev/null 2>&1
once "a stage error every rank reaches is printed once, exit 2" 2 "upscale.patch_size: 100 exceeds the 64x64 frames" -- \
  "${MPIRUN[@]}" 2 "$dsir" upscale --input "$work/shared.h5" --output "$work/u.h5" upscale.patch_size=100
head -c 300 "$work/r/sim/acquisition.tif" >"$work/r/sim/acquisition.tmp" && mv "$work/r/sim/acquisition.tmp" "$work/r/sim/acquisition.tif"
check "rank-local error aborts all ranks with a rank tag" nonzero "ERROR on rank 1 of 2: .*acquisition.tif" -- "${MPIRUN[@]}" 2 "$dsir" ingest run.dir="$work/r"
if [[ -e "$work/r/data/acquisition.h5" ]] || ls -A "$work/r/data" 2>/dev/null | grep -q '\.tmp'; then
  bad "a half-written output was left behind"
else
  ok "nothing half-written left behind"
fi

echo "$pass passed, $fail failed"
[[ $fail -eq 0 ]]
