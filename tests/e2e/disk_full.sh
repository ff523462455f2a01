#!/usr/bin/env bash
# Disk full (tests/fault/enospc.cpp under LD_PRELOAD: writes to regular files fail with ENOSPC
# after a byte budget): each stage exits 1 or 2 (never a signal), names its output, and leaves
# neither the output nor a temporary file behind; with the space back, the same command works.
# usage: disk_full.sh DSIR LIBENOSPC WORKDIR
set -uo pipefail
dsir=$1 enospc=$2 work=$3
rm -rf "$work" && mkdir -p "$work"
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok: $1"; }
bad() { fail=$((fail + 1)); echo "FAILED: $1"; }
full() { out=$(LD_PRELOAD=$enospc DSIR_FAULT_ENOSPC_AFTER=$1 timeout 120 "${@:2}" 2>&1); code=$?; }
leftovers() { find "$work" -name '.*.tmp*' | wc -l; }

"$dsir" simulate run.dir="$work/sim" run.seed=3 simulate.train.frames=40 simulate.train.width=32 \
  simulate.train.height=32 >/dev/null 2>&1 || bad "simulate"
tif=$work/sim/sim/train.tif csv=$work/sim/sim/train.csv

# A stage that fails on a full disk: exit 1 or 2, the output named, nothing left behind.
expect_clean_failure() {  # what output
  if [[ ($code -eq 1 || $code -eq 2) && $out == *"$2"* && ! -e $2 && $(leftovers) -eq 0 ]]; then
    ok "$1 on a full disk: exit $code, names the output, leaves nothing"
  else
    bad "$1 on a full disk (exit $code, output exists: $([[ -e $2 ]] && echo yes || echo no), temporaries: $(leftovers)): $out"
  fi
}

for budget in 0 4096 60000; do
  full $budget "$dsir" ingest --frames "$tif" --locs "$csv" --output "$work/raw.h5"
  expect_clean_failure "ingest (budget $budget bytes)" "$work/raw.h5"
done
"$dsir" ingest --frames "$tif" --locs "$csv" --output "$work/raw.h5" >/dev/null 2>&1 && [[ -e $work/raw.h5 ]] &&
  ok "ingest with the space back" || bad "ingest with the space back"

for budget in 0 100000; do
  full $budget "$dsir" upscale --input "$work/raw.h5" --output "$work/up.h5"
  expect_clean_failure "upscale (budget $budget bytes)" "$work/up.h5"
done
"$dsir" upscale --input "$work/raw.h5" --output "$work/up.h5" >/dev/null 2>&1 && [[ -e $work/up.h5 ]] &&
  ok "upscale with the space back" || bad "upscale with the space back"

echo "$pass passed, $fail failed"
[[ $fail -eq 0 ]]
