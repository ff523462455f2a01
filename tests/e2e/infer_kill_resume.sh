#!/usr/bin/env bash
# Sharded inference at archive scale, end to end, on the e2e fixture's model and acquisition:
#  - an "archive" of two acquisitions (a glob) inferred under mpirun -np 2 with many small shards
#    (static schedule) and reduced: the reference;
#  - the same with the dynamic schedule, one rank SIGKILLed mid-run, then rerun: it must skip
#    the finished shards, and its reduced outputs are compared bit for bit with the reference by
#    infer_e2e_checks (this script leaves both in WORK) and here with cmp;
#  - evaluate's command-line form on one of them.
# Error paths are checked by infer_error_checks.sh on what this leaves.
# usage: infer_kill_resume.sh DSIR FIXTURE_DIR WORK   (FIXTURE_DIR: e2e_pipeline_np2's run folder)
set -uo pipefail
dsir=$1 fixture=$2 work=$3
source "$(dirname "$0")/mpi_env.sh"
rm -rf "$work" && mkdir -p "$work/archive"
model=$fixture/train/model.h5
for a in cellA cellB; do ln -s "$fixture/data/acquisition.h5" "$work/archive/$a.h5"; done
frames_per_acq=80 shard_frames=2
total_shards=$((2 * frames_per_acq / shard_frames))
source "$(dirname "$0")/checks.sh"
infer() {  # infer NP OUT [key=value ...]: the archive, many small shards, one thread per rank
  local np=$1 out=$2
  shift 2
  "${MPIRUN[@]}" "$np" "$dsir" infer run.threads=1 infer.shard_frames=$shard_frames "$@" \
    --checkpoint "$model" --input "$work/archive/*.h5" --output "$out"
}

# Reference: uninterrupted, static schedule.
infer 2 "$work/ref/infer" infer.schedule=static >"$work/ref.log" 2>&1 || { cat "$work/ref.log"; exit 1; }
"$dsir" reduce --input "$work/ref/infer" --output "$work/ref" >>"$work/ref.log" 2>&1 || { cat "$work/ref.log"; exit 1; }

# Killed: dynamic schedule; SIGKILL one rank once some shards exist.
# mpirun itself in the background (not a function's subshell), so its children are the ranks.
"${MPIRUN[@]}" 2 "$dsir" infer run.threads=1 infer.shard_frames=$shard_frames infer.schedule=dynamic \
  --checkpoint "$model" --input "$work/archive/*.h5" --output "$work/kill/infer" >"$work/kill1.log" 2>&1 &
job=$!
count() { find "$work/kill/infer" -name 'shard-*.h5' 2>/dev/null | wc -l; }
for _ in $(seq 1 600); do
  [[ $(count) -ge 12 ]] && break
  kill -0 $job 2>/dev/null || break
  sleep 0.02
done
ranks=$(pgrep -P $job)
victim=$(tail -1 <<<"$ranks")
[[ -n $victim ]] && kill -KILL "$victim"
wait $job
code=$?
# shellcheck disable=SC2086
mpi_wait_for_ranks $ranks  # the other rank may still be ending, holding the folder's lock
at_kill=$(count)
echo "killed rank pid ${victim:-none}: mpirun exit $code, $at_kill of $total_shards shards on disk"
if [[ -n $victim && $code -ne 0 && $at_kill -ge 1 && $at_kill -lt $total_shards ]]; then
  ok "a rank was killed mid-run ($at_kill of $total_shards shards done)"
else
  bad "the kill did not interrupt the run (exit $code, $at_kill of $total_shards shards)"
fi
echo "$at_kill" >"$work/kill/shards_at_kill"

# Resumed: the same command again.
check "rerun skips the finished shards" 0 "infer: [0-9]+ shard\(s\) already complete" -- \
  "${MPIRUN[@]}" 2 "$dsir" infer run.threads=1 infer.shard_frames=$shard_frames infer.schedule=dynamic \
  --checkpoint "$model" --input "$work/archive/*.h5" --output "$work/kill/infer"
[[ $(count) -eq $total_shards ]] && ok "every shard exists after the rerun" || bad "shards missing after the rerun"
if find "$work/kill/infer" -name '*.tmp*' | grep -q .; then bad "temporaries left behind"; else ok "no temporaries left"; fi
check "reduce the resumed run" 0 "reduce: .*cellB/reconstruction" -- "$dsir" reduce --input "$work/kill/infer" --output "$work/kill"
same_outputs "after kill + resume" "$work/ref" "$work/kill" cellA cellB

# Evaluation of one acquisition against the simulation's ground truth (the issue's CLI form).
check "evaluate --locs --gt --tolerance-nm prints JSON" 0 '"tolerance_nm":250' -- "$dsir" evaluate \
  --locs "$work/ref/cellA/localizations.csv" --gt "$fixture/sim/acquisition.csv" --tolerance-nm 50,250

echo "$pass passed, $fail failed"
[[ $fail -eq 0 ]]
