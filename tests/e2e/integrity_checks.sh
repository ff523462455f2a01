#!/usr/bin/env bash
# Integrity of inference shards and checkpoints, and the infer output folder's lock, on the e2e
# fixture's model and acquisition (docs/reliability.md):
#  - a shard with one byte of its /sum data flipped: reduce exits 1 naming the file and the
#    checksum; infer rerun on the folder says so, recomputes that shard alone, and the reduced
#    result equals the uninterrupted run's bit for bit;
#  - a model and a training checkpoint with a byte of a weight flipped: infer and train --resume
#    exit 1 naming the file;
#  - a second infer (mpirun -np 2) on a folder a first one is writing exits 1 with one message
#    naming the holder, and the first ends with the reference result; the lock of a process that
#    has ended is taken over (log line), another host's is refused.
# usage: integrity_checks.sh DSIR H5_DATA_OFFSET FIXTURE_DIR WORK
set -uo pipefail
dsir=$1 offset_tool=$2 fixture=$3 work=$4
source "$(dirname "$0")/mpi_env.sh"
source "$(dirname "$0")/checks.sh"
rm -rf "$work" && mkdir -p "$work/archive"
model=$fixture/train/model.h5
# Four links to the acquisition (80 frames each): enough work for a second job to meet the first.
for a in cellA cellB cellC cellD; do ln -s "$fixture/data/acquisition.h5" "$work/archive/$a.h5"; done
infer_args=(infer run.threads=1 infer.shard_frames=8 --checkpoint "$model" --input "$work/archive/*.h5")

# flip FILE DATASET: inverts one byte in the middle of the dataset's stored data (its first chunk):
# the most significant byte of a float32 or float64 value (8-aligned + 7, little-endian), so that
# the value changes beyond float rounding and a silent sum would show in the outputs.
flip() {
  local where
  where=$("$offset_tool" "$1" "$2") || { bad "no data offset for $1:$2"; return 1; }
  local at=$(($(cut -d' ' -f1 <<<"$where") + $(cut -d' ' -f2 <<<"$where") / 16 * 8 + 7))
  local byte
  byte=$(od -An -tu1 -j "$at" -N1 "$1" | tr -d ' ')
  printf "$(printf '\\%03o' $((byte ^ 255)))" | dd of="$1" bs=1 seek="$at" conv=notrunc status=none
}

# Reference: uninterrupted.
"$dsir" "${infer_args[@]}" --output "$work/ref/infer" >"$work/ref.log" 2>&1 || { cat "$work/ref.log"; exit 1; }
"$dsir" reduce --input "$work/ref/infer" --output "$work/ref" >>"$work/ref.log" 2>&1 || { cat "$work/ref.log"; exit 1; }
shards=$(find "$work/ref/infer" -name 'shard-*.h5' | wc -l)

# A corrupted shard.
cp -r "$work/ref/infer" "$work/corrupt"
victim=$work/corrupt/cellB/shard-00003.h5
flip "$victim" /sum
cmp -s "$victim" "$work/ref/infer/cellB/shard-00003.h5" && bad "the shard was not changed"
check "reduce: a shard with a flipped byte in /sum is an error naming it" 1 \
  "cellB/shard-00003.h5: /sum: read failed: checksum mismatch" -- \
  "$dsir" reduce --input "$work/corrupt" --output "$work/corrupt-out"
[[ -e $work/corrupt-out/cellB/reconstruction.h5 ]] && bad "reduce wrote cellB's reconstruction from a corrupt shard"
out=$(timeout 120 "$dsir" "${infer_args[@]}" --output "$work/corrupt" 2>&1)
code=$?
if [[ $code -eq 0 ]] &&
   grep -qE "cellB/shard-00003.h5: /sum: read failed: checksum mismatch.*; recomputing the shard" <<<"$out" &&
   grep -q "infer: $((shards - 1)) shard(s) already complete" <<<"$out"; then
  ok "infer rerun: the corrupt shard is named and recomputed, the other $((shards - 1)) reused"
else
  bad "infer rerun on the corrupt folder (exit $code): $(tail -5 <<<"$out")"
fi
check "reduce after the rerun" 0 "reduce: " -- "$dsir" reduce --input "$work/corrupt" --output "$work/corrupt-out"
same_outputs "to the uninterrupted run's after recomputing" "$work/ref" "$work/corrupt-out" cellA cellB cellC cellD

# A corrupted model and a corrupted training checkpoint.
weight=$(h5ls -r "$model" | awk '$1 ~ /^\/state\/.*weight$/ && $2 == "Dataset" { print $1; exit }')
cp "$model" "$work/model.h5"
flip "$work/model.h5" "$weight"
check "infer with a model whose $weight has a flipped byte: an error naming it" 1 \
  "model.h5: $weight: read failed: checksum mismatch" -- \
  "$dsir" infer run.threads=1 --checkpoint "$work/model.h5" --input "$work/archive/cellA.h5" --output "$work/bad-model"
# The newest checkpoint corrupt: resume passes it over, naming it, for the one before, and
# training to the same epoch ends with the uninterrupted run's weights. Every checkpoint corrupt:
# an error naming the last one tried.
cp -r "$fixture/train" "$work/train"
checkpoints=($(ls "$work/train"/checkpoint-epoch-*.h5 | sort))
newest=${checkpoints[-1]}
epochs=$(basename "$newest" .h5)
epochs=$((10#${epochs#checkpoint-epoch-}))
# The fixture's own training (its effective config, two ranks), so that the weights can match.
train_args=(train "$fixture/config.yaml" --input "$fixture/data/train.h5" --output "$work/train" --resume)
if [[ ${#checkpoints[@]} -ge 2 ]]; then
  flip "$newest" "$weight"
  check "train --resume with the newest checkpoint's $weight flipped: it resumes from the one before" 0 \
    "not resuming from .*$(basename "$newest"): $weight: read failed: checksum mismatch.*; trying .*$(basename "${checkpoints[-2]}")" -- \
    "${MPIRUN[@]}" 2 "$dsir" "${train_args[@]}" --epochs "$epochs"
  h5diff -q "$fixture/train/$(basename "$newest")" "$newest" /state /state &&
    ok "the retrained $(basename "$newest") equals the uninterrupted run's (/state)" ||
    bad "the retrained $(basename "$newest") differs from the uninterrupted run's"
else
  bad "the fixture's training left fewer than 2 checkpoints (${checkpoints[*]})"
fi
for c in "${checkpoints[@]}"; do flip "$c" "$weight"; done
check "train --resume with every checkpoint's $weight flipped: an error naming the oldest" 1 \
  "$(basename "${checkpoints[0]}"): $weight: read failed: checksum mismatch" -- \
  "$dsir" "${train_args[@]}" --epochs 9

# Two jobs on one folder. The first job's ranks are stopped (SIGSTOP) once its lock exists, so
# that the second surely meets a running first whatever the machine's speed, then continued.
lock=$work/locked/.dsir-infer.lock
"${MPIRUN[@]}" 2 "$dsir" "${infer_args[@]}" infer.schedule=static --output "$work/locked" >"$work/first.log" 2>&1 &
first=$!
for _ in $(seq 1 3000); do
  [[ -s $lock ]] && break
  sleep 0.01
done
ranks=$(pgrep -P $first)
[[ -n $ranks ]] && kill -STOP $ranks
holder=$(sed -n 's/^pid=//p' "$lock" 2>/dev/null)
kill -0 $first 2>/dev/null && [[ -n $holder ]] && ok "the first job holds the lock (PID $holder)" ||
  bad "the first job had ended before the second started"
out=$(timeout 120 "${MPIRUN[@]}" 2 "$dsir" "${infer_args[@]}" --output "$work/locked" 2>&1)
code=$?
[[ -n $ranks ]] && kill -CONT $ranks
if [[ $code -eq 1 && -n $holder && $out == *"$lock: the folder is in use by another dsir infer (host $(hostname), PID $holder,"* &&
      $(grep -c "dsir: error" <<<"$out") -eq 1 && $out != *"ERROR on rank"* ]]; then
  ok "a second infer on the folder exits 1 with one message naming the holder"
else
  bad "a second infer on a locked folder (exit $code, holder '${holder}'): $(tail -3 <<<"$out")"
fi
wait $first && ok "the first infer ends normally" || { bad "the first infer failed"; tail -5 "$work/first.log"; }
[[ -e $lock ]] && bad "the lock file is left after the run" || ok "the lock file is removed at the end"
"$dsir" reduce --input "$work/locked" --output "$work/locked-out" >/dev/null 2>&1
same_outputs "to the reference after the refused second job" "$work/ref" "$work/locked-out" cellA cellB cellC cellD

# A lock left by a process of this host that has ended is taken over; another host's is refused.
dead=$(bash -c 'echo $$')
printf 'host=%s\npid=%s\nstarted=2026-01-01T00:00:00Z\n' "$(hostname)" "$dead" >"$lock"
check "the lock of an ended process is taken over" 0 \
  "took over the lock of .*/locked/.dsir-infer.lock from a process that has ended \(host $(hostname), PID $dead," -- \
  "$dsir" "${infer_args[@]}" --output "$work/locked"
printf 'host=elsewhere.example\npid=1\nstarted=2026-01-01T00:00:00Z\n' >"$lock"
check "another host's lock is refused with advice" 1 \
  "locked by another dsir infer \(host elsewhere.example, PID 1, .*cannot be checked from host.*remove the lock file" -- \
  "$dsir" "${infer_args[@]}" --output "$work/locked"

echo "$pass passed, $fail failed"
[[ $fail -eq 0 ]]
