#!/usr/bin/env bash
# Submits a dsir pipeline as a chain of Slurm jobs, each starting when the one before it succeeded
# (--dependency=afterok; a failure cancels the rest: --kill-on-invalid-dep=yes):
#   ingest (+ simulate) -> [upscale] -> train -> infer -> reduce (+ evaluate)
# (upscale only when run.stages asks for upscaled.h5 files: training reads the raw frames itself)
# Jobs whose stages the config's run.stages leaves out are not submitted. Prints one line per job,
# "STAGE JOBID", on stdout. Job logs go to {run.dir}/slurm/<job name>-<job id>.out.
#
# usage: jobs/submit-pipeline.sh [options] CONFIG [key=value ...]
#   training and inference: --nodes x --ntasks-per-node ranks, --gpus-per-task each
#   ingest, upscale, reduce: --data-ntasks ranks on one node, no GPU
# Options (and their environment defaults):
#   --data-ntasks N       DSIR_DATA_NTASKS, default 1
#   --time-data T, --time-train T, --time-infer T   DSIR_TIME_DATA, DSIR_TIME_TRAIN, DSIR_TIME_INFER
#                         (each falls back to --time / DSIR_TIME, then the partition's default)
#   and the common ones: -p/--partition, -A/--account, -N/--nodes, --ntasks-per-node,
#   --gpus-per-task (default 1; 0 on CPU partitions), --cpus-per-task, -t/--time, --signal-lead,
#   --sbatch-arg ARG, --dry-run (see jobs/dsir-job.sh). How dsir is found and launched: DSIR,
#   DSIR_CONTAINER, DSIR_LAUNCHER, DSIR_SRUN_MPI (jobs/dsir-job.sh, docs/slurm.md).
# Example:
#   jobs/submit-pipeline.sh -p gpu -A myproject --nodes 2 --ntasks-per-node 4 --time-train 08:00:00 \
#       configs/quickstart.yaml run.dir="$SCRATCH/runs/q1"
set -euo pipefail
jobs_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=jobs/dsir-job.sh
source "$jobs_dir/dsir-job.sh"
DSIR_JOB_NAME=submit-pipeline

usage() { sed -n '/^# usage:/,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; }
dsir_submit_defaults
data_ntasks=${DSIR_DATA_NTASKS:-1}
time_data=${DSIR_TIME_DATA:-} time_train=${DSIR_TIME_TRAIN:-} time_infer=${DSIR_TIME_INFER:-}
pipeline_option() {  # this script's own options, for dsir_submit_parse
  case $1 in
    --data-ntasks) data_ntasks=${2:?--data-ntasks needs a value}; DSIR_SHIFT=2 ;;
    --time-data) time_data=${2:?--time-data needs a value}; DSIR_SHIFT=2 ;;
    --time-train) time_train=${2:?--time-train needs a value}; DSIR_SHIFT=2 ;;
    --time-infer) time_infer=${2:?--time-infer needs a value}; DSIR_SHIFT=2 ;;
  esac
}
dsir_submit_parse pipeline_option "$@"
args=("${DSIR_ARGS[@]}")
[[ ${#args[@]} -ge 1 ]] || { usage >&2; exit 2; }
[[ -f ${args[0]} ]] || dsir_job_die "config file '${args[0]}' not found"
args[0]=$(realpath "${args[0]}")
[[ $data_ntasks =~ ^[1-9][0-9]*$ ]] || dsir_job_die "--data-ntasks: '$data_ntasks' is not a positive number"

dsir_job_init
dsir_submit_prepare
stages=$(dsir_config_stages "${args[@]}")
run_dir=$(dsir_config_get run.dir "${args[@]}")
[[ $DSIR_DRY_RUN == 1 ]] || mkdir -p "$run_dir/slurm"
logs=$(realpath -m "$run_dir/slurm")
dsir_sbatch_common
dsir_sbatch_ranks

has() { [[ ,$stages, == *,$1,* ]]; }
prev=""
submit() {  # submit NAME TIME SCRIPT SBATCH_ARGS...
  local name=$1 time=$2 script=$3
  shift 3
  local dep=()
  [[ -n $prev ]] && dep=(--dependency=afterok:"$prev" --kill-on-invalid-dep=yes)
  local t=()
  [[ -n $time ]] && t=(--time="$time")
  prev=$(dsir_sbatch "${DSIR_SB[@]}" "${t[@]}" "$@" "${dep[@]}" --job-name="dsir-$name" \
    --output="$logs/%x-%j.out" "$jobs_dir/$script" "${args[@]}")
  echo "$name $prev"
}
any=0
if has calibrate || has simulate || has ingest; then submit ingest "$time_data" ingest.sbatch --ntasks="$data_ntasks" --nodes=1; any=1; fi
if has upscale; then submit upscale "$time_data" upscale.sbatch --ntasks="$data_ntasks" --nodes=1; any=1; fi
if has train; then
  submit train "$time_train" train.sbatch "${DSIR_SB_RANKS[@]}" --signal=B:USR1@"$DSIR_SIGNAL_LEAD"
  any=1
fi
if has infer; then submit infer "$time_infer" infer.sbatch "${DSIR_SB_RANKS[@]}"; any=1; fi
if has reduce || has evaluate || has report; then submit reduce "$time_data" reduce.sbatch --ntasks="$data_ntasks" --nodes=1; any=1; fi
((any)) || dsir_job_die "run.stages ($stages) has none of the stages this chain submits"
dsir_job_log "logs in $logs; watch with: squeue --me; outputs in $run_dir"
