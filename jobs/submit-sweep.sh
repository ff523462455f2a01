#!/usr/bin/env bash
# Submits a loss-kernel sweep: plans it (`dsir sweep plan`: SWEEP_DIR/tasks.tsv and the frozen
# SWEEP_DIR/sweep.yaml), submits jobs/sweep-fwhm.sbatch as a job array with one task per run, and
# a summary job after the whole array (jobs/sweep-summary.sbatch, --dependency=afterany) that
# writes SWEEP_DIR/summary.{csv,md,png}. Prints "sweep ARRAY_JOBID" and "summary JOBID" on stdout.
# Task logs go to SWEEP_DIR/slurm/.
#
# usage: jobs/submit-sweep.sh [options] SWEEP.yaml SWEEP_DIR [key=value ...]
#   each task: --nodes x --ntasks-per-node ranks with --gpus-per-task each
#   key=value overrides apply to every task (they are frozen into SWEEP_DIR/sweep.yaml)
# Options (and their environment defaults):
#   --max-parallel K      DSIR_SWEEP_MAX_PARALLEL: at most K tasks at once (--array=...%K)
#   and the common ones: -p/--partition, -A/--account, -N/--nodes, --ntasks-per-node,
#   --gpus-per-task (default 1; 0 on CPU partitions), --cpus-per-task, -t/--time, --signal-lead,
#   --sbatch-arg ARG, --dry-run (see jobs/dsir-job.sh).
# Example:
#   jobs/submit-sweep.sh -p gpu -A myproject --time 04:00:00 configs/sweep-fwhm.yaml "$SCRATCH/sweeps/fwhm"
set -euo pipefail
jobs_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=jobs/dsir-job.sh
source "$jobs_dir/dsir-job.sh"
DSIR_JOB_NAME=submit-sweep

usage() { sed -n '/^# usage:/,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; }
dsir_submit_defaults
max_parallel=${DSIR_SWEEP_MAX_PARALLEL:-}
sweep_option() {  # this script's own option, for dsir_submit_parse
  case $1 in
    --max-parallel) max_parallel=${2:?--max-parallel needs a value}; DSIR_SHIFT=2 ;;
  esac
}
dsir_submit_parse sweep_option "$@"
args=("${DSIR_ARGS[@]}")
[[ ${#args[@]} -ge 2 ]] || { usage >&2; exit 2; }
sweep_yaml=${args[0]} sweep_dir=${args[1]}
overrides=("${args[@]:2}")
[[ -f $sweep_yaml ]] || dsir_job_die "sweep config '$sweep_yaml' not found"
[[ -z $max_parallel || $max_parallel =~ ^[1-9][0-9]*$ ]] || dsir_job_die "--max-parallel: '$max_parallel' is not a positive number"

dsir_job_init
dsir_submit_prepare
mkdir -p "$sweep_dir/slurm"  # the plan is written there even with --dry-run
sweep_yaml=$(realpath "$sweep_yaml")
sweep_dir=$(realpath "$sweep_dir")
n=$(dsir_serial sweep plan "$sweep_dir" "$sweep_yaml" "${overrides[@]}")
[[ $n =~ ^[1-9][0-9]*$ ]] || dsir_job_die "dsir sweep plan printed '$n' instead of a task count"
export DSIR_SWEEP_PLANNED=1
dsir_sbatch_common
dsir_sbatch_ranks
array=0-$((n - 1))${max_parallel:+%$max_parallel}
sweep_job=$(dsir_sbatch "${DSIR_SB[@]}" "${DSIR_SB_RANKS[@]}" --array="$array" --signal=B:USR1@"$DSIR_SIGNAL_LEAD" \
  --job-name=dsir-sweep --output="$sweep_dir/slurm/%x-%A_%a.out" \
  "$jobs_dir/sweep-fwhm.sbatch" "$sweep_yaml" "$sweep_dir")
echo "sweep $sweep_job"
summary_job=$(dsir_sbatch "${DSIR_SB[@]}" --ntasks=1 --dependency=afterany:"$sweep_job" \
  --job-name=dsir-sweep-summary --output="$sweep_dir/slurm/%x-%j.out" \
  "$jobs_dir/sweep-summary.sbatch" "$sweep_dir")
echo "summary $summary_job"
dsir_job_log "$n task(s) (--array=$array); runs in $sweep_dir/<fwhm-...>/, summary in $sweep_dir/summary.md"
