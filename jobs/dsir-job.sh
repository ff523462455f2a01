# shellcheck shell=bash
# Sourced by jobs/*.sbatch and jobs/submit-*.sh: how to run dsir under Slurm. Nothing
# cluster-specific is hard-coded; everything below can be changed through the environment
# (sbatch passes the submitting shell's environment to the job):
#   DSIR             the dsir binary (default: `dsir` on PATH, else build/dsir in the submit folder)
#   DSIR_CONTAINER   an Apptainer/Singularity image (dsir.sif, docker/dsir.def): dsir runs inside it
#   DSIR_CONTAINER_RUNTIME   apptainer or singularity (default: whichever is installed)
#   DSIR_CONTAINER_ARGS      extra arguments to `apptainer exec` (default: --nv when a GPU is visible;
#                            add --bind /scratch etc. for data outside the home folder)
#   DSIR_LAUNCHER    srun (default) or mpirun: how the ranks start inside the allocation
#   DSIR_SRUN_MPI    srun's --mpi plugin (default pmix: what Debian's Open MPI needs; pmi2 only
#                    works with an Open MPI built with Slurm's PMI-2)
#   DSIR_SRUN_ARGS, DSIR_MPIRUN_ARGS   extra launcher arguments (word-split)
#   DSIR_REQUEUE     1 (default): when training checkpoints on a signal (exit 75), requeue the job
#                    (scontrol requeue); 0: exit 75 and leave resubmitting to you
# One rank per Slurm task: size jobs with --nodes, --ntasks-per-node and --gpus-per-task=1.

dsir_job_log() { echo "[$(date '+%F %T')] ${DSIR_JOB_NAME:-dsir-job}: $*" >&2; }
dsir_job_die() {
  dsir_job_log "error: $*"
  exit 2
}

# DSIR_CMD: how to start one dsir process (perhaps inside the container).
dsir_job_init() {
  DSIR_JOB_NAME=${SLURM_JOB_NAME:-${DSIR_JOB_NAME:-dsir-job}}
  if [[ -n ${DSIR_CONTAINER:-} ]]; then
    [[ -f $DSIR_CONTAINER ]] || dsir_job_die "DSIR_CONTAINER: image '$DSIR_CONTAINER' does not exist"
    local runtime=${DSIR_CONTAINER_RUNTIME:-}
    if [[ -z $runtime ]]; then
      runtime=$(command -v apptainer || command -v singularity || true)
      [[ -n $runtime ]] || dsir_job_die "DSIR_CONTAINER is set but neither apptainer nor singularity is on PATH (module load apptainer?)"
    fi
    local args
    if [[ -n ${DSIR_CONTAINER_ARGS+x} ]]; then
      read -r -a args <<<"$DSIR_CONTAINER_ARGS"
    else
      args=()
      [[ -n ${SLURM_JOB_GPUS:-${CUDA_VISIBLE_DEVICES:-}} ]] && args=(--nv)
    fi
    DSIR_CMD=("$runtime" exec "${args[@]}" "$DSIR_CONTAINER" dsir)
  else
    local bin=${DSIR:-}
    if [[ -z $bin ]]; then
      bin=$(command -v dsir || true)
      [[ -z $bin && -n ${SLURM_SUBMIT_DIR:-} && -x $SLURM_SUBMIT_DIR/build/dsir ]] && bin=$SLURM_SUBMIT_DIR/build/dsir
      [[ -z $bin && -x build/dsir ]] && bin=$PWD/build/dsir
    fi
    [[ -n $bin ]] || dsir_job_die "no dsir binary: set DSIR=/path/to/dsir, put dsir on PATH, or set DSIR_CONTAINER"
    [[ -x $bin ]] || dsir_job_die "DSIR: '$bin' is not an executable file"
    DSIR_CMD=("$bin")
  fi
}

# The launcher that starts one rank per Slurm task of the allocation.
dsir_launcher() {
  local extra
  case ${DSIR_LAUNCHER:-srun} in
    srun)
      read -r -a extra <<<"${DSIR_SRUN_ARGS:-}"
      # Since Slurm 22.05 srun does not inherit --cpus-per-task from the job: pass it on.
      [[ -n ${SLURM_CPUS_PER_TASK:-} ]] && export SRUN_CPUS_PER_TASK=$SLURM_CPUS_PER_TASK
      DSIR_LAUNCH=(srun --mpi="${DSIR_SRUN_MPI:-pmix}" --kill-on-bad-exit=1 "${extra[@]}") ;;
    mpirun)
      # Open MPI reads the allocation from Slurm (one rank per task) and starts its daemons with srun.
      read -r -a extra <<<"${DSIR_MPIRUN_ARGS:-}"
      DSIR_LAUNCH=(mpirun --bind-to none "${extra[@]}") ;;
    *) dsir_job_die "DSIR_LAUNCHER: '${DSIR_LAUNCHER}' is neither srun nor mpirun" ;;
  esac
}

# One dsir process (config inspection, planning, summaries).
dsir_serial() { "${DSIR_CMD[@]}" "$@"; }

# A key of the effective config: dsir_config_get KEY CONFIG [key=value ...]. Prints the value as
# `dsir config show` writes it (strings unquoted, lists as [a, b]).
dsir_config_get() {
  local key=$1
  shift
  local yaml
  yaml=$("${DSIR_CMD[@]}" config show "$@") || dsir_job_die "the config does not load (dsir config show $*)"
  awk -v key="$key" '
    {
      match($0, /^ */); depth = RLENGTH / 2; line = substr($0, RLENGTH + 1)
      i = index(line, ":"); path[depth] = substr(line, 1, i - 1); value = substr(line, i + 2)
      full = path[0]; for (d = 1; d <= depth; d++) full = full "." path[d]
      if (full == key) {
        if (value ~ /^".*"$/) value = substr(value, 2, length(value) - 2)
        print value; found = 1; exit
      }
    }
    END { exit found ? 0 : 1 }' <<<"$yaml" || dsir_job_die "no config key '$key'"
}

# The run.stages of a config as a comma-separated list: simulate,ingest,...
dsir_config_stages() { dsir_config_get run.stages "$@" | tr -d '[]" '; }
# The NAMEs that the comma-separated STAGES has, in the order given: dsir_stages_among STAGES NAME...
dsir_stages_among() {
  local stages=$1 out="" s
  shift
  for s in "$@"; do [[ ,$stages, == *,$s,* ]] && out+=${out:+,}$s; done
  echo "$out"
}

# Runs `dsir run CONFIG [key=value ...] --stages STAGES`, one rank per task, with the preemption
# contract: a USR1 or TERM to this script (sbatch --signal=B:USR1@N, scancel --signal=USR1 --batch,
# preemption) is passed on to the ranks as USR1 while training runs; training saves a checkpoint and
# exits 75; the job is then requeued (scontrol requeue) and, restarted (SLURM_RESTART_COUNT > 0),
# continues with train.resume=true. Stages before and after training run as their own steps, since
# only training can stop on a signal; a step finished before a requeue is not repeated after it.
#   dsir_run_stages STAGES CONFIG [key=value ...]
dsir_run_stages() {
  local stages=$1
  shift
  local before="" train="" after="" s seen_train=0 all
  IFS=, read -r -a all <<<"$stages"
  for s in "${all[@]}"; do
    [[ -z $s ]] && continue
    if [[ $s == train ]]; then
      train=train
      seen_train=1
    elif ((seen_train)); then
      after+=${after:+,}$s
    else
      before+=${before:+,}$s
    fi
  done
  local run_dir restarts=${SLURM_RESTART_COUNT:-0}
  run_dir=$(dsir_config_get run.dir "$@")
  mkdir -p "$run_dir/slurm"
  DSIR_STOP_SIGNAL="" DSIR_HAS_TRAIN=$train
  trap '_dsir_on_signal USR1' USR1
  trap '_dsir_on_signal TERM' TERM
  local part list mark overrides rc r
  for part in before train after; do
    case $part in
      before) list=$before ;;
      train) list=$train ;;
      after) list=$after ;;
    esac
    [[ -z $list ]] && continue
    mark=$run_dir/slurm/job-${SLURM_JOB_ID:-local}.$part.done
    if ((restarts > 0)) && [[ -e $mark ]]; then
      dsir_job_log "restart $restarts: skipping $list (finished before the requeue)"
      continue
    fi
    if [[ -n $DSIR_STOP_SIGNAL && $part == train ]]; then
      _dsir_requeue "$DSIR_STOP_SIGNAL arrived before training started"
    fi
    overrides=()
    if [[ $part == train ]] && ((restarts > 0)); then
      overrides=(train.resume=true)
      dsir_job_log "restart $restarts: continuing training from its checkpoint (train.resume=true)"
    fi
    dsir_job_log "$list on ${SLURM_NTASKS:-1} rank(s): ${DSIR_LAUNCH[*]} ${DSIR_CMD[*]} run $* ${overrides[*]} --stages $list"
    DSIR_STEP_PART=$part DSIR_STEP_LIST=$list
    "${DSIR_LAUNCH[@]}" "${DSIR_CMD[@]}" run "$@" "${overrides[@]}" --stages "$list" &
    DSIR_STEP_PID=$!
    # A trapped signal interrupts `wait` (status > 128) while the step runs on: wait again.
    while :; do
      DSIR_TRAPPED=0
      r=0
      wait "$DSIR_STEP_PID" || r=$?
      if [[ $DSIR_TRAPPED == 1 && $r -gt 128 ]]; then
        kill -0 "$DSIR_STEP_PID" 2>/dev/null && continue
        rc=0
        wait "$DSIR_STEP_PID" || rc=$?
        [[ $rc -eq 127 ]] && rc=$r
      else
        rc=$r
      fi
      break
    done
    DSIR_STEP_PID=""
    if [[ $rc -eq 75 ]]; then
      _dsir_requeue "training saved a checkpoint and stopped (exit 75)"
    elif [[ $rc -ne 0 ]]; then
      dsir_job_log "$list failed (exit $rc)"
      exit "$rc"
    fi
    : >"$mark"
  done
  trap - USR1 TERM
}

_dsir_on_signal() {
  DSIR_TRAPPED=1
  DSIR_STOP_SIGNAL=$1
  if [[ -z ${DSIR_STEP_PID:-} ]]; then
    dsir_job_log "received $1 between steps"
  elif [[ ${DSIR_STEP_PART:-} == train ]]; then
    dsir_job_log "received $1: asking training to save a checkpoint and stop (USR1 to the ranks)"
    kill -USR1 "$DSIR_STEP_PID" 2>/dev/null || true
  elif [[ ${DSIR_STEP_PART:-} == before && -n ${DSIR_HAS_TRAIN:-} ]]; then
    dsir_job_log "received $1 during ${DSIR_STEP_LIST:-}, which cannot stop early: it goes on, then the job requeues itself before training"
  else
    dsir_job_log "received $1 during ${DSIR_STEP_LIST:-}, which cannot stop early: it goes on (finished inference shards are kept on a requeue)"
  fi
}

# Requeues this job (same job id; it restarts with SLURM_RESTART_COUNT + 1) and ends the script.
_dsir_requeue() {
  if [[ ${DSIR_REQUEUE:-1} == 1 && -n ${SLURM_JOB_ID:-} ]]; then
    dsir_job_log "$1: requeueing job $SLURM_JOB_ID (scontrol requeue)"
    local said
    if said=$(scontrol requeue "$SLURM_JOB_ID" 2>&1); then
      exit 0
    fi
    # An operator's or the scheduler's own `scontrol requeue` took the job down (TERM): it is
    # already on its way back to the queue.
    if [[ $said == *"pending execution"* ]]; then
      dsir_job_log "the job is already being requeued (scontrol requeue from outside): it restarts from the checkpoint"
      exit 0
    fi
    dsir_job_log "scontrol requeue failed ($said) (job submitted with --no-requeue, or requeueing disabled?): resubmit it; training continues with train.resume=true"
  else
    dsir_job_log "$1: not requeued (DSIR_REQUEUE=${DSIR_REQUEUE:-1}); resubmit with train.resume=true"
  fi
  exit 75
}

# ---- Submitting (jobs/submit-pipeline.sh, jobs/submit-sweep.sh) ---------------------------------
# Options both submit scripts take; each has an environment default, none is hard-coded:
#   -p, --partition P     DSIR_PARTITION (else sbatch's own default / SBATCH_PARTITION)
#   -A, --account A       DSIR_ACCOUNT (else SBATCH_ACCOUNT)
#   -N, --nodes N         DSIR_NODES, default 1            nodes of a training/inference job
#   --ntasks-per-node N   DSIR_NTASKS_PER_NODE, default 1  ranks per node (one per GPU)
#   --gpus-per-task N     DSIR_GPUS_PER_TASK, default 1    0 on CPU-only partitions
#   --cpus-per-task N     DSIR_CPUS_PER_TASK               threads per rank
#   -t, --time T          DSIR_TIME                        time limit of every job
#   --signal-lead S       DSIR_SIGNAL_LEAD, default 300    seconds of warning (USR1) before the limit
#   --sbatch-arg ARG      (repeatable; DSIR_SBATCH_ARGS, word-split) more sbatch options for every job
#   --dry-run             print the sbatch commands, submit nothing
dsir_submit_defaults() {
  DSIR_PARTITION=${DSIR_PARTITION:-}
  DSIR_ACCOUNT=${DSIR_ACCOUNT:-}
  DSIR_NODES=${DSIR_NODES:-1}
  DSIR_NTASKS_PER_NODE=${DSIR_NTASKS_PER_NODE:-1}
  DSIR_GPUS_PER_TASK=${DSIR_GPUS_PER_TASK:-1}
  DSIR_CPUS_PER_TASK=${DSIR_CPUS_PER_TASK:-}
  DSIR_TIME=${DSIR_TIME:-}
  DSIR_SIGNAL_LEAD=${DSIR_SIGNAL_LEAD:-300}
  DSIR_DRY_RUN=${DSIR_DRY_RUN:-0}
  read -r -a DSIR_EXTRA_SBATCH <<<"${DSIR_SBATCH_ARGS:-}"
}

# dsir_submit_option "$@": consumes one common option; sets DSIR_SHIFT (0: not a common option).
dsir_submit_option() {
  DSIR_SHIFT=2
  local need=${2-}
  case $1 in
    -p | --partition) DSIR_PARTITION=$need ;;
    -A | --account) DSIR_ACCOUNT=$need ;;
    -N | --nodes) DSIR_NODES=$need ;;
    --ntasks-per-node) DSIR_NTASKS_PER_NODE=$need ;;
    --gpus-per-task) DSIR_GPUS_PER_TASK=$need ;;
    --cpus-per-task) DSIR_CPUS_PER_TASK=$need ;;
    -t | --time) DSIR_TIME=$need ;;
    --signal-lead) DSIR_SIGNAL_LEAD=$need ;;
    --sbatch-arg) DSIR_EXTRA_SBATCH+=("$need") ;;
    --dry-run) DSIR_DRY_RUN=1; DSIR_SHIFT=1; return 0 ;;
    *) DSIR_SHIFT=0; return 0 ;;
  esac
  [[ $# -ge 2 && -n $need ]] || dsir_job_die "option $1 needs a value"
}

# dsir_submit_parse OWN_OPTIONS "$@": a submit script's command line. -h/--help prints the
# script's `usage`; --opt=value counts as --opt value; OWN_OPTIONS (a function of the script)
# consumes the script's own options and sets DSIR_SHIFT (left 0: not one of them), then the
# common options above are tried; the positional arguments end up in DSIR_ARGS.
# shellcheck disable=SC2034  # DSIR_ARGS is read by the submit scripts
dsir_submit_parse() {
  local own=$1
  shift
  DSIR_ARGS=()
  while [[ $# -gt 0 ]]; do
    case $1 in --*=*) set -- "${1%%=*}" "${1#*=}" "${@:2}" ;; esac
    case $1 in
      -h | --help) usage; exit 0 ;;
      -*)
        DSIR_SHIFT=0
        "$own" "$@"
        [[ $DSIR_SHIFT -gt 0 ]] || dsir_submit_option "$@"
        [[ $DSIR_SHIFT -gt 0 ]] || { usage >&2; dsir_job_die "unknown option '$1'"; }
        shift "$DSIR_SHIFT" ;;
      *) DSIR_ARGS+=("$1"); shift ;;
    esac
  done
}

# Checks the numbers and the config, exports what the jobs need (DSIR, DSIR_JOBS_DIR).
dsir_submit_prepare() {
  local v
  for v in DSIR_NODES DSIR_NTASKS_PER_NODE DSIR_GPUS_PER_TASK DSIR_SIGNAL_LEAD; do
    [[ ${!v} =~ ^[0-9]+$ ]] || dsir_job_die "$v: '${!v}' is not a whole number"
  done
  [[ -z $DSIR_CPUS_PER_TASK || $DSIR_CPUS_PER_TASK =~ ^[1-9][0-9]*$ ]] || dsir_job_die "--cpus-per-task: '$DSIR_CPUS_PER_TASK' is not a positive number"
  [[ $DSIR_NODES -ge 1 && $DSIR_NTASKS_PER_NODE -ge 1 ]] || dsir_job_die "--nodes and --ntasks-per-node must be at least 1"
  command -v sbatch >/dev/null || [[ $DSIR_DRY_RUN == 1 ]] || dsir_job_die "sbatch not found: submit from a Slurm login node"
  # The jobs use the same binary (or image) and these scripts, wherever they run.
  if [[ ${DSIR_CMD[0]} == */* ]]; then
    DSIR_CMD[0]=$(realpath "${DSIR_CMD[0]}")
  else
    DSIR_CMD[0]=$(command -v "${DSIR_CMD[0]}")
  fi
  [[ -z ${DSIR_CONTAINER:-} ]] && export DSIR=${DSIR_CMD[0]}
  if [[ -n ${DSIR_CONTAINER:-} ]]; then
    DSIR_CONTAINER=$(realpath "$DSIR_CONTAINER")
    export DSIR_CONTAINER
  fi
  export DSIR_JOBS_DIR
  DSIR_JOBS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
}

# sbatch options every job gets.
dsir_sbatch_common() {
  DSIR_SB=(--chdir="$PWD")
  [[ -n $DSIR_PARTITION ]] && DSIR_SB+=(--partition="$DSIR_PARTITION")
  [[ -n $DSIR_ACCOUNT ]] && DSIR_SB+=(--account="$DSIR_ACCOUNT")
  [[ -n $DSIR_TIME ]] && DSIR_SB+=(--time="$DSIR_TIME")
  DSIR_SB+=("${DSIR_EXTRA_SBATCH[@]}")
}

# sbatch options of a job with one rank per GPU over --nodes x --ntasks-per-node.
dsir_sbatch_ranks() {
  DSIR_SB_RANKS=(--nodes="$DSIR_NODES" --ntasks-per-node="$DSIR_NTASKS_PER_NODE")
  [[ $DSIR_GPUS_PER_TASK -gt 0 ]] && DSIR_SB_RANKS+=(--gpus-per-task="$DSIR_GPUS_PER_TASK")
  [[ -n $DSIR_CPUS_PER_TASK ]] && DSIR_SB_RANKS+=(--cpus-per-task="$DSIR_CPUS_PER_TASK")
  return 0
}

# dsir_sbatch ARGS...: submits (or, with --dry-run, prints) and prints the job id.
dsir_sbatch() {
  if [[ $DSIR_DRY_RUN == 1 ]]; then
    printf 'sbatch' >&2
    printf ' %q' "$@" >&2
    echo >&2
    echo "dry-run-$BASHPID"  # each submission runs in its own subshell
    return 0
  fi
  local out
  out=$(sbatch --parsable "$@") || dsir_job_die "sbatch refused the job: sbatch $*"
  echo "${out%%;*}"
}
