#!/usr/bin/env bash
# Training under mpirun -np 2 with one rank SIGKILLed at a random moment, several trials: the job
# must end within 60 s with a non-zero exit (no rank left hanging in a collective), and
# `--resume` must then end with weights bit-identical to an uninterrupted run (h5diff of /state).
# usage: train_rank_killed.sh DSIR WORKDIR [TRIALS]
set -uo pipefail
dsir=$1 work=$2 trials=${3:-3}
source "$(dirname "$0")/mpi_env.sh"
rm -rf "$work" && mkdir -p "$work"
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok: $1"; }
bad() { fail=$((fail + 1)); echo "FAILED: $1"; }

# 1,600 frames: epochs long enough that most kills land after the first checkpoint (with 320 the
# subpixel net's four epochs took ~1 s after ~1.5 s of start-up, and no kill came after one).
common=(run.dir="$work/data" run.seed=21 run.threads=1 simulate.train.frames=1600 simulate.train.width=16
        simulate.train.height=16 simulate.acquisition.frames=0 train.batch_size=8 train.validation_fraction=0.125
        train.epochs=4)
"$dsir" run --stages simulate,ingest "${common[@]}" >"$work/data.log" 2>&1 || { cat "$work/data.log"; exit 1; }
train() { "${MPIRUN[@]}" 2 "$dsir" train "${common[@]}" "$@"; }
t0=$(date +%s.%N)
train train.output="$work/ref" >"$work/ref.log" 2>&1 || { cat "$work/ref.log"; exit 1; }
ref_seconds=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
resumed_from_checkpoint=0

RANDOM=7
for t in $(seq "$trials"); do
  out=$work/trial$t
  # A moment between 35 % and 90 % of an uninterrupted run's wall time: mostly after the first
  # of its four epoch checkpoints, sometimes before.
  delay=$(awk -v r=$RANDOM -v s="$ref_seconds" 'BEGIN { printf "%.2f", (0.35 + 0.55 * r / 32767) * s }')
  mpi_kill_one_rank "$delay" "$out.log" "${MPIRUN[@]}" 2 "$dsir" train "${common[@]}" train.output="$out"
  if [[ -z $victim ]]; then
    ok "trial $t: the run ended before the kill at ${delay} s (nothing to kill)"
  elif [[ $code -ne 0 && $took -le 60 ]]; then
    ok "trial $t: rank pid $victim killed at ${delay} s; the job ended in ${took} s with exit $code"
  else
    bad "trial $t: after the kill at ${delay} s the job ended in ${took} s with exit $code"
  fi
  checkpoints=$(find "$out" -name 'checkpoint-epoch-*.h5' 2>/dev/null | wc -l)
  [[ $checkpoints -gt 0 ]] && resumed_from_checkpoint=$((resumed_from_checkpoint + 1))
  train train.output="$out" train.resume=true >>"$out.log" 2>&1 || bad "trial $t: --resume failed"
  if h5diff "$work/ref/checkpoint-epoch-0004.h5" "$out/checkpoint-epoch-0004.h5" /state /state >/dev/null 2>&1; then
    ok "trial $t: resumed from $checkpoints checkpoint(s), the weights equal the uninterrupted run's"
  else
    bad "trial $t: the resumed weights differ from the uninterrupted run's (see $out.log)"
  fi
  if find "$out" -name '.*.tmp*' | grep -q .; then bad "trial $t: temporaries left after the resume"; fi
done

# Resuming from nothing is the easy case: at least one trial must have resumed from a checkpoint.
[[ $resumed_from_checkpoint -gt 0 ]] && ok "$resumed_from_checkpoint trial(s) resumed from a checkpoint" ||
  bad "no trial was killed after a checkpoint (uninterrupted run: $ref_seconds s)"

echo "$pass passed, $fail failed"
[[ $fail -eq 0 ]]
