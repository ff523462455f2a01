#!/usr/bin/env bash
# Auto mode as a Slurm chain: jobs/submit-pipeline.sh configs/auto.yaml with run.input, on a
# "lab's" EMCCD stack whose camera nobody typed (base 180 ADU, 2 ADU/photon). The first job
# (ingest.sbatch) calibrates, simulates and ingests in one step; every later job is a new process
# whose `dsir run` must take the calibration back from the run folder's camera.yaml, so that each
# step's config.yaml records the calibrated camera, and the report shows the calibration.
# usage: slurm_auto.sh DSIR WORK
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/cluster.sh"
cluster_test_begin "$@"  # dsir, work, root; traps, root check, fresh work folder, MPIRUN
cluster_test_up

source "$root/tests/e2e/lab_stack.sh"
lab_stack "$dsir" "$work" "$work/cell-01.tif" || exit 1

run=$work/run
if ! out=$("$root/jobs/submit-pipeline.sh" --ntasks-per-node 2 --gpus-per-task 0 --time 10 \
  "$root/configs/auto.yaml" run.dir="$run" "run.input=[$work/cell-*.tif]" simulate.train.frames=256 \
  train.epochs=1 2>"$work/submit.err"); then
  cat "$work/submit.err"
  t_bad "submit-pipeline.sh configs/auto.yaml failed"
  t_finish
  exit 1
fi
echo "$out"
names=() ids=()
while read -r name id; do names+=("$name"); ids+=("$id"); done <<<"$out"
[[ ${names[*]} == "ingest train infer reduce" ]] && t_ok "four chained jobs submitted" ||
  t_bad "submitted: '${names[*]}'"
cluster_wait "${ids[3]}" 400 >/dev/null
for k in "${!ids[@]}"; do
  state=$(cluster_job_state "${ids[k]}")
  [[ $state == COMPLETED ]] && t_ok "${names[k]} job ${ids[k]} completed" ||
    { t_bad "${names[k]} job ${ids[k]} ended $state"; tail -20 "$run/slurm/dsir-${names[k]}-${ids[k]}.out" 2>/dev/null; }
done
log() { echo "$run/slurm/dsir-$1-${ids[$2]}.out"; }
t_has "the first job calibrated, simulated and ingested in one step" "$(log ingest 0)" "calibrate,simulate,ingest on 1 rank"
t_has "and continued with the calibrated camera" "$(log ingest 0)" "calibrate: the run continues with camera.base_level="
for k in 1 2 3; do
  t_has "${names[k]} took the calibration back from camera.yaml" "$(log "${names[k]}" "$k")" \
    "calibrate: not run in this step; the calibration of $run/camera.yaml applies"
done

within() { awk -v v="$1" -v t="$2" -v tol="$3" 'BEGIN { exit !(v - t <= tol * t && t - v <= tol * t) }'; }
calibrated=$(sed -n 's/^  base_level: //p' "$run/camera.yaml" | head -1)
[[ -n $calibrated ]] && within "$calibrated" 180 0.05 && t_ok "camera.yaml: base level $calibrated (true 180)" ||
  t_bad "camera.yaml base level '$calibrated'"
# config.yaml is rewritten by every job's `dsir run`: after the last one it must still hold the
# calibrated camera, not the config's defaults.
recorded=$(sed -n 's/^  base_level: //p' "$run/config.yaml" | head -1)
[[ -n $calibrated && $recorded == "$calibrated" ]] && t_ok "the last job's config.yaml records it ($recorded)" ||
  t_bad "config.yaml base level '$recorded', camera.yaml '$calibrated'"
for f in data/input/cell-01.h5 train/model.h5 reconstruction.h5 localizations.csv report.html; do
  t_check "$f written" test -s "$run/$f"
done
t_has "report.html shows the calibration" "$run/report.html" ">Calibration</h2>"
t_finish
