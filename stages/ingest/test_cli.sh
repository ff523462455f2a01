#!/usr/bin/env bash
# The ingest stage through the dsir binary: one stack from a glob, archive mode spread over 2
# ranks (one raw.h5 per file, same bits as one rank), and the exit codes of bad requests.
# usage: test_cli.sh DSIR SOURCE_DIR WORKDIR
set -uo pipefail
dsir=$1 src=$2 work=$3
source "$src/tests/e2e/mpi_env.sh"
rm -rf "$work" && mkdir -p "$work"
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok: $1"; }
bad() { fail=$((fail + 1)); echo "FAILED: $1"; }
run_capture() { out=$(timeout 120 "$@" 2>&1); code=$?; }
frames_shape() { h5dump -H -d /frames "$1" 2>/dev/null | sed -n 's/.*DATASPACE  SIMPLE { ( \([0-9, ]*\) ).*/\1/p'; }

# Three small stacks to ingest: 5, 3 and 2 frames of 20 x 16 pixels.
declare -A count=([1]=5 [2]=3 [10]=2)
for n in 1 2 10; do
  "$dsir" simulate run.dir="$work/src$n" run.seed=$n simulate.train.frames=${count[$n]} \
    simulate.train.width=20 simulate.train.height=16 >/dev/null 2>&1 || bad "simulate source $n"
  cp "$work/src$n/sim/train.tif" "$work/stack_$n.tif"
done

run_capture "$dsir" ingest --frames "$work/stack_*.tif" --output "$work/one.h5"
if [[ $code -eq 0 && $(frames_shape "$work/one.h5") == "10, 16, 20" ]]; then ok "a glob forms one 10-frame stack"; else bad "glob stack (exit $code, shape $(frames_shape "$work/one.h5")): $out"; fi

run_capture "${MPIRUN[@]}" 2 "$dsir" ingest --archive --frames "$work/stack_*.tif" --output "$work/archive2"
if [[ $code -eq 0 && $out == *"3 files, 10 frames"* ]]; then ok "archive on 2 ranks: rank 0 reports all 3 files"; else bad "archive on 2 ranks (exit $code): $out"; fi
run_capture "$dsir" ingest --archive --frames "$work/stack_*.tif" --output "$work/archive1"
[[ $code -eq 0 ]] || bad "archive on 1 rank (exit $code): $out"
for n in 1 2 10; do
  want=${count[$n]}
  if [[ $(frames_shape "$work/archive2/stack_$n.h5") == "$want, 16, 20" ]] &&
     h5diff "$work/archive1/stack_$n.h5" "$work/archive2/stack_$n.h5" /frames /frames >/dev/null 2>&1; then
    ok "archive: stack_$n.h5 has $want frames, the same on 1 and 2 ranks"
  else
    bad "archive: stack_$n.h5"
  fi
done

run_capture "$dsir" ingest --archive --frames "$work/stack_1.tif" --locs "$work/src1/sim/train.csv" --output "$work/x"
if [[ $code -eq 2 && $out == *"ingest.locs"* ]]; then ok "archive with one CSV: exit 2 naming ingest.locs"; else bad "archive + locs (exit $code): $out"; fi
run_capture "$dsir" ingest --frames "$work/nothing_*.tif" --output "$work/none.h5"
if [[ $code -eq 1 && $out == *"nothing_*.tif"* ]]; then ok "a glob matching nothing: exit 1 naming it"; else bad "empty glob (exit $code): $out"; fi
printf '"frame","x [nm]","y [nm]"\n1,100,200\n7,100,200\n' >"$work/beyond.csv"
run_capture "$dsir" ingest --frames "$work/stack_1.tif" --locs "$work/beyond.csv" --output "$work/beyond/raw.h5"
if [[ $code -eq 1 && $out == *"beyond.csv"*"frame 7"* && -z $(ls -A "$work/beyond" 2>/dev/null) ]]; then
  ok "frame beyond the stack: exit 1 naming file and frame, nothing left"
else
  bad "frame beyond (exit $code): $out"
fi

echo "$pass passed, $fail failed"
[[ $fail -eq 0 ]]
