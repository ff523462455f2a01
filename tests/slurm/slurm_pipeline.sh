#!/usr/bin/env bash
# The chained pipeline under a real Slurm: jobs/submit-pipeline.sh submits ingest (+ simulate) ->
# train (2 ranks, srun --mpi=pmix) -> infer (2 ranks) -> reduce (+ evaluate) at test
# size with --dependency=afterok; every job must complete, each after the one before it ended, and
# the run folder must hold the reconstruction, localizations, metrics and model. Then a chain whose
# training fails: the jobs after it must be cancelled, not left pending.
# usage: slurm_pipeline.sh DSIR WORK
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/cluster.sh"
cluster_test_begin "$@"  # dsir, work, root; traps, root check, fresh work folder, MPIRUN
cluster_test_up  # the cluster, DSIR exported, in $work

run=$work/run
if ! out=$("$root/jobs/submit-pipeline.sh" --ntasks-per-node 2 --gpus-per-task 0 --time 10 \
  "$here/tiny.yaml" run.dir="$run" 2>"$work/submit.err"); then
  cat "$work/submit.err"
  t_bad "submit-pipeline.sh failed"
  t_finish
  exit 1
fi
echo "$out"
names=() ids=()
while read -r name id; do names+=("$name"); ids+=("$id"); done <<<"$out"
[[ ${names[*]} == "ingest train infer reduce" ]] && t_ok "four chained jobs submitted, ids printed" ||
  t_bad "submitted: '${names[*]}'"
dep=$(cluster_job_field "${ids[1]}" Dependency)
[[ $dep == afterok:${ids[0]}* || $(cluster_job_state "${ids[1]}") != PENDING ]] &&
  t_ok "train waits for ingest (Dependency=$dep)" || t_bad "train's dependency is '$dep'"

final=$(cluster_wait "${ids[3]}" 400)
prev_end=""
for k in "${!ids[@]}"; do
  id=${ids[k]} name=${names[k]}
  state=$(cluster_job_state "$id")
  if [[ $state == COMPLETED ]]; then t_ok "$name job $id completed"; else
    t_bad "$name job $id ended $state"
    cat "$run/slurm/dsir-$name-$id.out" 2>/dev/null | tail -20
  fi
  start=$(cluster_job_field "$id" StartTime)
  [[ -z $prev_end || ! $start < $prev_end ]] && t_ok "$name started ($start) after the job before it ended (${prev_end:-first})" ||
    t_bad "$name started $start before the previous job ended $prev_end"
  prev_end=$(cluster_job_field "$id" EndTime)
  t_check "$name's log is in run.dir/slurm" test -s "$run/slurm/dsir-$name-$id.out"
done
echo "last job: $final"
t_has "ingest simulated first (run.stages has simulate)" "$run/slurm/dsir-ingest-${ids[0]}.out" "simulate,ingest on 1 rank"
t_has "training ran on 2 ranks under srun --mpi=pmix" "$run/slurm/dsir-train-${ids[1]}.out" \
  "global batch 16 over 2 rank\(s\)"
t_has "training read the raw frames (no upscale job)" "$run/slurm/dsir-train-${ids[1]}.out" \
  "items upscaled from raw.h5 as read"
t_has "inference ran on 2 ranks" "$run/slurm/dsir-infer-${ids[2]}.out" "infer: started \(2 ranks\)"
t_has "reduce ran evaluate and report too (run.stages has them)" "$run/slurm/dsir-reduce-${ids[3]}.out" "reduce,evaluate,report on 1 rank"
for f in train/model.h5 reconstruction.h5 reconstruction.tif reconstruction.png localizations.csv config.yaml dsir.log report.html; do
  t_check "$f written" test -s "$run/$f"
done
t_has "metrics.json has the image correlation" "$run/metrics.json" '"pearson"'
t_has "metrics.json has JI at 250 nm" "$run/metrics.json" '"tolerance_nm": 250'

# A failing chain: training's input is missing; infer and reduce must be cancelled, not hang.
bad=$work/bad
if out=$("$root/jobs/submit-pipeline.sh" --ntasks-per-node 2 --gpus-per-task 0 "$here/tiny.yaml" \
  run.dir="$bad" "run.stages=[train, infer, reduce]" train.input="$work/absent.h5" 2>"$work/submit-bad.err"); then
  read -r -a last <<<"$(tail -1 <<<"$out")"
  read -r -a first <<<"$(head -1 <<<"$out")"
  [[ $(wc -l <<<"$out") -eq 3 && ${first[0]} == train ]] && t_ok "only the stages of run.stages are submitted" ||
    t_bad "submitted: $out"
  cluster_wait "${last[1]}" 120 >/dev/null
  [[ $(cluster_job_state "${first[1]}") == FAILED ]] && t_ok "the training job failed" ||
    t_bad "training job: $(cluster_job_state "${first[1]}")"
  t_has "its log names the missing input" "$bad/slurm/dsir-train-${first[1]}.out" "train.input: file '$work/absent.h5' does not exist"
  state=$(cluster_job_state "${last[1]}")
  reason=$(cluster_job_field "${last[1]}" Reason)
  [[ $state == CANCELLED ]] && t_ok "the jobs after it were cancelled ($reason)" || t_bad "reduce job: $state ($reason)"
else
  cat "$work/submit-bad.err"
  t_bad "submit-pipeline.sh (failing chain) failed"
fi

# The whole pipeline as one job (jobs/pipeline.sbatch) with the other launcher and the container
# code path: DSIR_LAUNCHER=mpirun inside the allocation, DSIR_CONTAINER set. No container runtime
# runs here, so a stand-in `apptainer` on PATH checks the call it gets (exec [flags] IMAGE dsir ...)
# and runs dsir itself.
mkdir -p "$work/fakebin"
touch "$work/dsir.sif"
cat >"$work/fakebin/apptainer" <<'FAKE'
#!/usr/bin/env bash
[[ $1 == exec ]] || { echo "stand-in apptainer: expected 'exec', got '$1'" >&2; exit 97; }
shift
while [[ $1 == --* ]]; do shift; done
[[ $1 == */dsir.sif && $2 == dsir ]] || { echo "stand-in apptainer: expected IMAGE dsir, got '$1 $2'" >&2; exit 98; }
shift 2
exec "$DSIR_INSIDE" "$@"
FAKE
chmod +x "$work/fakebin/apptainer"
one=$work/one
job=$(env PATH="$work/fakebin:$PATH" DSIR_INSIDE="$dsir" DSIR_CONTAINER="$work/dsir.sif" DSIR_LAUNCHER=mpirun \
  DSIR_MPIRUN_ARGS="--oversubscribe" sbatch --parsable --ntasks=2 --output="$work/one-%j.out" \
  "$root/jobs/pipeline.sbatch" "$here/tiny.yaml" run.dir="$one" train.epochs=1)
state=$(cluster_wait "$job" 300)
[[ $state == COMPLETED ]] && t_ok "pipeline.sbatch (mpirun, container) completed" ||
  { t_bad "pipeline.sbatch job ended $state"; tail -30 "$work/one-$job.out"; }
t_has "it launched with mpirun through the container" "$work/one-$job.out" \
  "simulate,ingest on 2 rank\(s\): mpirun --bind-to none --oversubscribe .*apptainer exec .*dsir.sif dsir run"
t_has "training ran as its own step on 2 ranks" "$work/one-$job.out" "global batch 16 over 2 rank\(s\)"
t_check "its reconstruction and metrics exist" test -s "$one/reconstruction.tif" -a -s "$one/metrics.json"
t_finish
