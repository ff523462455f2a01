#!/usr/bin/env bash
# One MPI rank SIGKILLed at a random moment in every data stage under mpirun -np 2 (training has
# its own test, train_rank_killed.sh, since it also resumes): the job must end within 60 s with a
# non-zero exit (no rank left waiting in a collective for a dead peer); the previous outputs the
# stage was replacing must be intact (each file equal to the old one or to the finished new one,
# never half-written); and the stage rerun must give the uninterrupted run's outputs with no
# temporaries left.
# usage: stage_rank_killed.sh DSIR WORK [STAGES]   (default: simulate,ingest,upscale,infer,reduce,evaluate)
set -uo pipefail
dsir=$1 work=$2 stages=${3:-simulate,ingest,upscale,infer,reduce,evaluate}
here=$(cd "$(dirname "$0")" && pwd)
source "$here/mpi_env.sh"
rm -rf "$work" && mkdir -p "$work"
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok: $1"; }
bad() { fail=$((fail + 1)); echo "FAILED: $1"; }

run=$work/run  # every run of a stage happens in this folder, so that the paths files record agree
common=("$here/tiny.yaml" run.dir="$run" run.threads=1 simulate.train.frames=400 simulate.acquisition.frames=200
        simulate.acquisition.width=48 simulate.acquisition.height=48 train.epochs=1)

# Everything once, serially: each stage below then replaces outputs that exist, as a rerun does.
"$dsir" run "${common[@]}" >"$work/base.log" 2>&1 || { tail -20 "$work/base.log"; exit 1; }
mv "$run" "$work/base"

# Same content: HDF5 files up to the creation time and rank count their provenance records.
same_file() {
  if [[ $1 == *.h5 || $1 == *.hdf5 ]]; then
    local report rc=0
    report=$(h5diff -v "$1" "$2" 2>&1) || rc=$?
    ((rc <= 1)) || return 1  # 2: a file HDF5 cannot read, e.g. cut short
    awk '
      /^(attribute|dataset|group|datatype)/ { what = $0 }
      $1 == "x" && $2 ~ /^\// { differ = 1 }              # an object in one file only
      /^[1-9][0-9]* differences? found/ { if (what !~ /<(created_utc|mpi_ranks) of/) differ = 1 }
      /(Not comparable|Some objects are not comparable)/ { differ = 1 }
      END { exit differ }' <<<"$report"
  else
    cmp -s "$1" "$2"
  fi
}
# Files of the reference run that the run folder lacks or has with other content.
outputs_differing() {
  local ref=$1 dir=$2 f
  (cd "$ref" && find . -type f ! -name dsir.log ! -name provenance.json | sort) | while read -r f; do
    [[ -f $dir/$f ]] && same_file "$ref/$f" "$dir/$f" || echo "$f"
  done
}

RANDOM=13
IFS=, read -r -a stage_list <<<"$stages"
for stage in "${stage_list[@]}"; do
  # The uninterrupted run, timed. Inference would find its shards done and resume past them all
  # (infer_kill_resume tests that): it starts from none.
  rm -rf "$work/before" && cp -a "$work/base" "$work/before"
  [[ $stage == infer ]] && rm -rf "$work/before/infer"
  fresh() { rm -rf "$run" && cp -a "$work/before" "$run"; }
  fresh
  t0=$(date +%s.%N)
  "${MPIRUN[@]}" 2 "$dsir" run "${common[@]}" --stages "$stage" >"$work/$stage-ref.log" 2>&1 ||
    { bad "$stage: the uninterrupted run failed"; tail -5 "$work/$stage-ref.log"; continue; }
  ref_seconds=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
  rm -rf "$work/$stage-ref" && mv "$run" "$work/$stage-ref"

  # The same run with one rank killed at 40–90 % of the uninterrupted run's wall time.
  fresh
  delay=$(awk -v r=$RANDOM -v s="$ref_seconds" 'BEGIN { printf "%.2f", (0.40 + 0.50 * r / 32767) * s }')
  mpi_kill_one_rank "$delay" "$work/$stage-kill.log" "${MPIRUN[@]}" 2 "$dsir" run "${common[@]}" --stages "$stage"
  if [[ -z $victim ]]; then
    ok "$stage: the run ended before the kill at ${delay} s of ${ref_seconds} s (nothing to kill)"
  elif [[ $code -ne 0 && $took -le 60 ]]; then
    ok "$stage: rank pid $victim killed at ${delay} s of ${ref_seconds} s; the job ended in ${took} s with exit $code"
  else
    bad "$stage: after the kill at ${delay} s the job ended in ${took} s with exit $code"
  fi
  # Nothing half-written: each output is the previous one or the finished new one.
  torn=()
  while read -r f; do
    [[ -z $f ]] && continue
    [[ ! -e $run/$f && ! -e $work/before/$f ]] && continue  # not written yet
    same_file "$work/before/$f" "$run/$f" || torn+=("$f")
  done < <(outputs_differing "$work/$stage-ref" "$run")
  [[ ${#torn[@]} -eq 0 ]] && ok "$stage: after the kill every output is the old or the new one, whole" ||
    bad "$stage: after the kill, neither old nor new: ${torn[*]}"

  # Rerun: the uninterrupted run's outputs, no temporaries.
  "${MPIRUN[@]}" 2 "$dsir" run "${common[@]}" --stages "$stage" >>"$work/$stage-kill.log" 2>&1 ||
    bad "$stage: the rerun failed (see $work/$stage-kill.log)"
  differing=$(outputs_differing "$work/$stage-ref" "$run" | tr '\n' ' ')
  [[ -z $differing ]] && ok "$stage: the rerun's outputs equal the uninterrupted run's" ||
    bad "$stage: after the rerun these differ from the uninterrupted run's: $differing"
  if find "$run" -name '.*.tmp*' | grep -q .; then bad "$stage: temporaries left after the rerun"; fi
done

echo "$pass passed, $fail failed"
[[ $fail -eq 0 ]]
