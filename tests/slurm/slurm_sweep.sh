#!/usr/bin/env bash
# A 3-task FWHM sweep under a real Slurm: jobs/submit-sweep.sh plans tests/slurm/sweep-tiny.yaml
# (sweep.fwhm [1.5, 3, 6]), submits jobs/sweep-fwhm.sbatch as a job array (one rank per task, two
# tasks at a time on the 2-core node) and the summary job after it. Every task must run the
# pipeline in its own folder with its own train.loss.fwhm, and the summary must list the three
# runs, complete, with losses, JI, RMSE and image correlation, as CSV, Markdown and PNG. One task
# is preempted during training (USR1 to its batch script): it must requeue itself, skip the steps
# it had finished (simulate, ingest), resume training, and still be in the summary.
# usage: slurm_sweep.sh DSIR WORK
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/cluster.sh"
cluster_test_begin "$@"  # dsir, work, root; traps, root check, fresh work folder, MPIRUN
cluster_test_up  # the cluster, DSIR exported, in $work

sweep=$work/sweep
if ! out=$("$root/jobs/submit-sweep.sh" --ntasks-per-node 1 --cpus-per-task 1 --gpus-per-task 0 --time 10 \
  "$here/sweep-tiny.yaml" "$sweep" run.threads=1 2>"$work/submit.err"); then
  cat "$work/submit.err"
  t_bad "submit-sweep.sh failed"
  t_finish
  exit 1
fi
echo "$out"
array=$(awk '$1 == "sweep" {print $2}' <<<"$out")
summary=$(awk '$1 == "summary" {print $2}' <<<"$out")
[[ -n $array && -n $summary ]] && t_ok "array and summary jobs submitted" || t_bad "submit printed: $out"
t_check "the plan lists 3 tasks" test "$(wc -l <"$sweep/tasks.tsv")" -eq 4
[[ $(cluster_job_field "$summary" Dependency) == afterany:${array}* || $(cluster_job_state "$summary") != PENDING ]] &&
  t_ok "the summary waits for the whole array" || t_bad "summary dependency: $(cluster_job_field "$summary" Dependency)"

# Preempt task 0 once its first epoch is checkpointed.
deadline=$((SECONDS + 180))
while ((SECONDS < deadline)); do
  [[ -e $sweep/fwhm-1.5/train/checkpoint-epoch-0001.h5 ]] && break
  sleep 0.2
done
if [[ -e $sweep/fwhm-1.5/train/checkpoint-epoch-0001.h5 ]]; then
  timeout 10 scancel --signal=USR1 --batch "${array}_0" && t_ok "USR1 sent to task 0 during training" ||
    t_bad "scancel --signal=USR1 --batch ${array}_0"
else
  t_bad "task 0 wrote no checkpoint in 180 s"
fi

final=$(cluster_wait "$summary" 400)
[[ $final == COMPLETED ]] && t_ok "the summary job completed" || t_bad "summary job ended $final"
states=$(timeout 10 scontrol show job "$array" | grep -o 'JobState=[A-Z_]*' | sort | uniq -c | tr -s ' ')
[[ $states == " 3 JobState=COMPLETED" ]] && t_ok "the 3 array tasks completed" || t_bad "array task states: $states"
for f in 1.5 3 6; do
  d=$sweep/fwhm-$f
  t_has "fwhm-$f ran with train.loss.fwhm=$f" "$d/config.yaml" "^    fwhm: $f\$"
  t_check "fwhm-$f has its metrics.json" test -s "$d/metrics.json"
  t_check "fwhm-$f has its model" test -s "$d/train/model.h5"
done
logs=("$sweep"/slurm/dsir-sweep-"${array}"_*.out)
[[ ${#logs[@]} -eq 3 ]] && t_ok "one log per task" || t_bad "task logs: ${logs[*]}"
t_has "a task says which run it is" "$sweep/slurm/dsir-sweep-${array}_1.out" "task 1 of 3: fwhm-3 \(train.loss.fwhm=3, train.loss.kernel_size=5\)"
log0=$sweep/slurm/dsir-sweep-${array}_0.out
t_has "task 0 checkpointed on the signal" "$log0" "train: stopped by a signal at epoch [0-9]+, step [0-9]+"
t_has "task 0 requeued itself" "$log0" "requeueing job [0-9]+ \(scontrol requeue\)"
t_has "the requeued task skipped the steps it had done" "$log0" "restart 1: skipping simulate,ingest \(finished before the requeue\)"
t_has "the requeued task resumed training" "$log0" "train: resuming from .*fwhm-1.5/train/checkpoint-epoch-000[0-9].h5"
[[ $(grep -c "simulate: started" "$log0") -eq 1 ]] && t_ok "task 0 simulated once" || t_bad "task 0 simulated $(grep -c "simulate: started" "$log0") times"
restarts=$(cluster_job_field "${array}_0" Restarts)
[[ $restarts == 1 ]] && t_ok "task 0 was requeued once (Restarts=1)" || t_bad "task 0: Restarts=$restarts"

csv=$sweep/summary.csv
if [[ -f $csv ]]; then
  t_check "summary.csv: header + 3 rows" test "$(wc -l <"$csv")" -eq 4
  t_has "summary.csv header" "$csv" "^name,fwhm,kernel_size,epochs,train_loss,val_loss,jaccard_50nm,rmse_nm_50nm,jaccard_250nm,rmse_nm_250nm,image_pearson,status$"
  num='-?[0-9][0-9.e+-]*'
  for f in 1.5 3 6; do
    t_has "summary row fwhm-$f complete with numbers" "$csv" \
      "^fwhm-$f,$f,5,3,$num,$num,$num,($num)?,$num,($num)?,$num,ok$"  # no RMSE when nothing matched
  done
  [[ $(cut -d, -f2 "$csv" | tail -n +2 | tr '\n' ' ') == "1.5 3 6 " ]] && t_ok "rows ordered by FWHM" || t_bad "row order"
else
  t_bad "no summary.csv"
  cat "$sweep"/slurm/dsir-sweep-summary-*.out 2>/dev/null | tail -20
fi
t_has "summary.md has the table" "$sweep/summary.md" "^\| fwhm-3 \| 3 \| 5 \| 3 \|"
t_check "summary.png written" test -s "$sweep/summary.png"
t_has "the summary job printed the table" "$sweep/slurm/dsir-sweep-summary-$summary.out" "^\| run \| FWHM \(px\)"
t_finish
