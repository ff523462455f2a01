#!/usr/bin/env bash
# Preemption under a real Slurm: a training job (jobs/train.sbatch, 2 ranks via srun --mpi=pmix)
# gets USR1 as --signal=B:USR1@N delivers it, once its first checkpoint exists; the script passes
# it to the ranks, training saves its state and exits 75, the script requeues the job, and the
# requeued job (same id, SLURM_RESTART_COUNT=1) resumes from the checkpoint and finishes. Its
# per-epoch losses must equal, bit for bit, those of the same training run uninterrupted.
# With `scontrol`, an operator's `scontrol requeue JOB` takes the job down instead (SIGTERM to the
# script and the ranks, SIGKILL KillWait later) and puts it back in the queue: the restarted job
# resumes from the last checkpoint on disk and must end with the same losses.
# usage: slurm_requeue.sh DSIR WORK [usr1|scontrol]
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/cluster.sh"
mode=${3:-usr1}
cluster_test_begin "$1" "$2"  # dsir, work, root; traps, root check, fresh work folder, MPIRUN
run=$work/run
epochs=6
# 3,200 training frames: epochs of seconds, so that the signal, sent a second into the second
# epoch, lands before training ends (320 frames took 0.3 s an epoch with the subpixel net).
common=("$here/tiny.yaml" run.dir="$run" run.threads=1 train.epochs="$epochs" simulate.train.frames=3200)

# Training data, outside Slurm.
"$dsir" run "${common[@]}" --stages simulate,ingest >"$work/data.log" 2>&1 || { cat "$work/data.log"; exit 1; }

cluster_test_up  # the cluster, DSIR exported, in $work
job=$(sbatch --parsable --ntasks=2 --output="$work/train-%j.out" "$root/jobs/train.sbatch" "${common[@]}") ||
  { t_bad "sbatch train.sbatch"; t_finish; exit 1; }
log=$work/train-$job.out
echo "training job $job"

# Wait (bounded) for the first checkpoint, then signal the batch script as Slurm would.
deadline=$((SECONDS + 120))
while ((SECONDS < deadline)); do
  [[ -e $run/train/checkpoint-epoch-0001.h5 ]] && break
  state=$(cluster_job_state "$job")
  [[ $state == PENDING || $state == RUNNING || -z $state ]] || break
  sleep 0.5
done
if [[ -e $run/train/checkpoint-epoch-0001.h5 ]]; then
  t_ok "the first checkpoint appeared while the job ran"
  sleep 1  # into the second epoch: the stop lands mid-epoch
  if [[ $mode == scontrol ]]; then
    timeout 10 scontrol requeue "$job" && t_ok "scontrol requeue $job" || t_bad "scontrol requeue $job"
  else
    timeout 10 scancel --signal=USR1 --batch "$job" && t_ok "USR1 sent to the batch script" || t_bad "scancel --signal=USR1 --batch"
  fi
else
  t_bad "no checkpoint after 120 s (job state $(cluster_job_state "$job"))"
  cat "$log" 2>/dev/null | tail -20
fi
final=$(cluster_wait "$job" 300)
[[ $final == COMPLETED ]] && t_ok "the job completed after its requeue" || t_bad "job ended $final"
restarts=$(cluster_job_field "$job" Restarts)
[[ $restarts == 1 ]] && t_ok "requeued once (Restarts=1)" || t_bad "Restarts=$restarts, wanted 1"
if [[ $mode == usr1 ]]; then
  t_has "the script passed the signal on" "$log" "received USR1: asking training to save a checkpoint"
  t_has "training saved its state and stopped" "$log" "train: stopped by a signal at epoch [0-9]+, step [0-9]+; state saved"
  t_has "the job requeued itself on exit 75" "$log" "exit 75\): requeueing job $job \(scontrol requeue\)"
else
  t_has "training saved its state on the TERM" "$log" "train: stopped by a signal at epoch [0-9]+, step [0-9]+; state saved"
  t_has "the script saw the requeue under way" "$log" "the job is already being requeued \(scontrol requeue from outside\)"
fi
t_has "the requeued job resumed training" "$log" "restart 1: continuing training from its checkpoint \(train.resume=true\)"
t_has "training resumed from the checkpoint" "$log" "train: resuming from .*checkpoint-epoch-000[0-9].h5 \(epoch [0-9]+, step [1-9][0-9]* of the next\)"
t_has "training finished its last epoch" "$log" "train: epoch $epochs/$epochs: train loss"
t_check "model.h5 written" test -s "$run/train/model.h5"
cluster_down

# The same training uninterrupted, outside Slurm: the losses of every epoch must be identical.
"${MPIRUN[@]}" 2 "$dsir" run "${common[@]}" train.output="$work/ref" --stages train >"$work/ref.log" 2>&1 ||
  { t_bad "reference training failed"; tail -20 "$work/ref.log"; }
strip() { sed -E 's/"(frames_per_s|seconds)":[^,}]*,?//g' "$1"; }
if [[ -f $run/train/metrics.jsonl && -f $work/ref/metrics.jsonl ]] &&
  [[ $(wc -l <"$run/train/metrics.jsonl") -eq $epochs ]] &&
  diff <(strip "$run/train/metrics.jsonl") <(strip "$work/ref/metrics.jsonl"); then
  t_ok "every epoch's losses equal the uninterrupted run's ($epochs epochs, each once)"
else
  t_bad "the requeued run's metrics.jsonl differs from the uninterrupted run's"
fi
echo "----- job log -----"
cat "$log" 2>/dev/null | grep -vE "frames \([0-9]+%\)" | tail -40
t_finish
