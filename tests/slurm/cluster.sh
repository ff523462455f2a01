#!/usr/bin/env bash
# A real single-node Slurm for the tests, from Debian's packages (munge, slurmctld, slurmd): its
# own munge key and socket, a generated slurm.conf (select/cons_tres, proctrack/linuxproc, no
# accounting), state and spool in a fresh temporary folder under /tmp (short paths: Unix sockets
# live there), logs in the test's work folder, and ports derived from the test's pid so concurrent
# runs do not clash. Daemons run in the foreground (-D / --foreground), started in the background
# here and stopped by pid. Sourced by the slurm tests:
#   source tests/slurm/cluster.sh
#   cluster_test_begin "$@"   # DSIR WORK: traps, root check (else exit 77), dsir/work/root, MPIRUN
#   cluster_test_up           # cluster_up "$work/cluster", export DSIR, cd "$work"
#   cluster_up LOGDIR         # exports SLURM_CONF; returns once the node is idle (or fails)
#   cluster_wait JOBID SECS   # waits for a job (and its requeues) to end; prints its state
#   cluster_down              # cancels jobs, stops slurmd, slurmctld, munged by pid, removes the folder
# Every wait is bounded; on failure the daemon logs are printed.

CLUSTER_DIR=""    # state, spool, sockets, slurm.conf (temporary)
CLUSTER_LOGS=""   # daemon logs (kept)
CLUSTER_PIDS=()   # munged slurmctld slurmd, in start order

cluster_log() { echo "cluster: $*" >&2; }

cluster_dump_logs() {
  [[ -n $CLUSTER_LOGS ]] || return 0
  local f
  for f in "$CLUSTER_LOGS"/*.log; do
    [[ -f $f ]] || continue
    echo "----- $f (last 40 lines) -----" >&2
    tail -n 40 "$f" >&2
  done
}

cluster_fail() {
  cluster_log "FAILED: $*"
  cluster_dump_logs
  return 1
}

# A free TCP port near BASE (nothing listening on it).
cluster_free_port() {
  local p=$1
  while (echo >"/dev/tcp/127.0.0.1/$p") 2>/dev/null; do p=$((p + 1)); done
  echo "$p"
}

# The private cluster runs its daemons and jobs as root (SlurmUser=SlurmdUser=root): returns 77,
# ctest's "skipped", for anyone else.
cluster_require_root() {
  [[ $(id -u) -eq 0 ]] && return 0
  cluster_log "skipped: the private Slurm cluster needs root (slurmd starts jobs as their user)"
  return 77
}

# The common start of a Slurm test script, called with the script's arguments DSIR WORK: traps
# that always tear the cluster down (a timeout included), the root check (else skip: exit 77), a
# fresh work folder, and mpirun's settings (MPIRUN); sets `dsir`, `work` (absolute paths) and
# `root` (the source tree).
cluster_test_begin() {
  trap cluster_down EXIT
  trap 'exit 124' TERM INT
  cluster_require_root || exit 77
  dsir=$(realpath "$1")
  rm -rf "$2" && mkdir -p "$2"
  work=$(realpath "$2")
  root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
  # shellcheck source=tests/e2e/mpi_env.sh
  source "$root/tests/e2e/mpi_env.sh"
}

# Then: the cluster up (logs in $work/cluster), dsir exported to the job scripts, in $work.
cluster_test_up() {
  cluster_up "$work/cluster" || exit 1
  export DSIR=$dsir
  cd "$work" || exit 1
}

cluster_up() {
  local cmd
  for cmd in munged slurmctld slurmd sbatch squeue scontrol scancel sinfo; do
    command -v "$cmd" >/dev/null || { cluster_log "$cmd not found: run scripts/install-deps.sh (slurmctld slurmd slurm-client munge)"; return 1; }
  done
  mkdir -p "$1"
  CLUSTER_LOGS=$(cd "$1" && pwd)
  CLUSTER_DIR=$(mktemp -d /tmp/dsir-slurm.XXXXXX) || { cluster_log "mktemp failed"; return 1; }
  mkdir -p "$CLUSTER_DIR"/{munge,state,spool,run,tmp}
  chmod 755 "$CLUSTER_DIR" "$CLUSTER_DIR/munge"  # clients reach the socket; the key itself is 0400
  local d=$CLUSTER_DIR l=$CLUSTER_LOGS host
  host=$(hostname -s)
  cluster_log "folder $d, logs in $l"

  # munge: a fresh key, its own socket.
  dd if=/dev/urandom of="$d/munge/munge.key" bs=1024 count=1 status=none
  chmod 400 "$d/munge/munge.key"
  munged --foreground --force --key-file="$d/munge/munge.key" --socket="$d/munge/munge.sock" \
    --pid-file="$d/munge/munged.pid" --seed-file="$d/munge/munged.seed" \
    --log-file="$l/munged.log" </dev/null >>"$l/munged.out" 2>&1 &
  CLUSTER_PIDS+=($!)

  for _ in $(seq 1 100); do
    [[ -S $d/munge/munge.sock ]] && break
    kill -0 "${CLUSTER_PIDS[0]}" 2>/dev/null || { cluster_fail "munged exited"; return 1; }
    sleep 0.1
  done
  [[ -S $d/munge/munge.sock ]] || { cluster_fail "munged socket did not appear in 10 s"; return 1; }
  if command -v munge >/dev/null && ! munge -n -S "$d/munge/munge.sock" | unmunge -S "$d/munge/munge.sock" >/dev/null 2>&1; then
    cluster_fail "munge credential round trip failed"; return 1
  fi

  # Ports derived from the pid (concurrent test runs do not clash), moved up past busy ones.
  local base=$((20000 + ($$ % 2000) * 10)) ctld_port slurmd_port
  ctld_port=$(cluster_free_port "$base")
  slurmd_port=$(cluster_free_port $((ctld_port + 1)))
  local srun_lo=$((slurmd_port + 1)) srun_hi=$((slurmd_port + 8))

  # The node as slurmd sees it (CPUs, sockets, cores, threads, memory).
  local node
  node=$(slurmd -C | head -1)
  [[ $node == NodeName=* ]] || { cluster_fail "slurmd -C printed: $node"; return 1; }
  node=${node#NodeName=* }
  # The plugin folder of this machine's Slurm (Debian's multiarch path, found rather than assumed).
  local plugdir
  plugdir=$(dirname "$(find /usr/lib /usr/lib64 -name select_cons_tres.so -path '*slurm*' 2>/dev/null | head -1)")
  [[ -n $plugdir && $plugdir != . ]] || { cluster_fail "Slurm plugins (select_cons_tres.so) not found"; return 1; }
  cat >"$d/slurm.conf" <<CONF
# Generated by tests/slurm/cluster.sh for one test run.
ClusterName=dsirtest$$
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SrunPortRange=$srun_lo-$srun_hi
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# cred_expire: a requeued job waits this long before it may start again (default 120 s).
AuthInfo=socket=$d/munge/munge.sock,cred_expire=10
StateSaveLocation=$d/state
SlurmdSpoolDir=$d/spool
# Per-cluster temporary folder (the PMIx plugin's spmix_appdir_* go there, not to a shared /tmp).
TmpFS=$d/tmp
SlurmctldPidFile=$d/run/slurmctld.pid
SlurmdPidFile=$d/run/slurmd.pid
SlurmctldLogFile=$l/slurmctld.log
SlurmdLogFile=$l/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
# Scheduling passes every 2 s (defaults 60 and 30 s): jobs start promptly at test size.
SchedulerParameters=sched_interval=2,bf_interval=2
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
MinJobAge=3600
MailProg=/bin/true
KillWait=10
InactiveLimit=0
SlurmdTimeout=60
SlurmctldTimeout=60
PluginDir=$plugdir
NodeName=$host NodeAddr=127.0.0.1 $node State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
  export SLURM_CONF=$d/slurm.conf

  slurmctld -D -i -f "$SLURM_CONF" </dev/null >>"$l/slurmctld.out" 2>&1 &
  CLUSTER_PIDS+=($!)
  slurmd -D -f "$SLURM_CONF" -N "$host" </dev/null >>"$l/slurmd.out" 2>&1 &
  CLUSTER_PIDS+=($!)

  # Wait (bounded) for the node to become idle.
  local state="" deadline=$((SECONDS + 60))
  while ((SECONDS < deadline)); do
    state=$(timeout 5 sinfo -h -n "$host" -o %T 2>/dev/null | head -1 || true)
    [[ $state == idle ]] && break
    local p
    for p in "${CLUSTER_PIDS[@]}"; do
      kill -0 "$p" 2>/dev/null || { cluster_fail "a daemon (pid $p) exited during start-up"; return 1; }
    done
    sleep 0.5
  done
  [[ $state == idle ]] || { cluster_fail "node $host not idle after 60 s (state '$state')"; return 1; }
  cluster_log "up: $host ($node), slurmctld :$ctld_port, slurmd :$slurmd_port, SLURM_CONF=$SLURM_CONF"
}

# The state of job JOBID (PENDING, RUNNING, COMPLETED, FAILED, ...), "" when unknown.
cluster_job_state() {
  timeout 10 scontrol show job "$1" 2>/dev/null | grep -o 'JobState=[A-Z_]*' | head -1 | cut -d= -f2 || true
}

# Waits up to SECS for job JOBID to reach a final state; prints the state; fails on timeout.
cluster_wait() {
  local job=$1 secs=$2 state="" end=$((SECONDS + $2))
  while ((SECONDS < end)); do
    state=$(cluster_job_state "$job")
    case $state in
      COMPLETED | FAILED | CANCELLED | TIMEOUT | NODE_FAIL | OUT_OF_MEMORY | BOOT_FAIL | DEADLINE | PREEMPTED)
        echo "$state"; return 0 ;;
    esac
    sleep 1
  done
  echo "TIMEOUT_WAITING($state)"
  cluster_log "job $job still '$state' after $secs s"
  timeout 10 scontrol show job "$job" >&2 || true
  return 1
}

# Kills, by pid, whatever still runs with this cluster's SLURM_CONF in its environment (job steps
# whose slurmstepd outlived a slurmd stopped early, e.g. by a timeout), except this shell. Reads
# /proc with shell builtins only, so it forks nothing that would match itself.
cluster_kill_leftovers() {
  local conf=$1 p e hit comm
  for p in /proc/[0-9]*; do
    p=${p#/proc/}
    [[ $p == "$$" || $p == "$BASHPID" ]] && continue
    hit=0
    { while IFS= read -r -d '' e; do
        [[ $e == "SLURM_CONF=$conf" ]] && { hit=1; break; }
      done <"/proc/$p/environ"; } 2>/dev/null || true
    ((hit)) || continue
    comm=""
    { read -r comm <"/proc/$p/comm"; } 2>/dev/null || true
    kill -KILL "$p" 2>/dev/null && cluster_log "killed leftover pid $p ($comm)"
  done
}

cluster_down() {
  [[ ${#CLUSTER_PIDS[@]} -gt 0 ]] || return 0
  if [[ -n ${SLURM_CONF:-} && -f ${SLURM_CONF:-} ]]; then
    timeout 10 scancel --quiet --user="$(id -un)" 2>/dev/null || true
    # Job steps still alive on this node (slurmstepd and its tasks): end them by pid.
    local pids=""
    for _ in $(seq 1 20); do
      pids=$(timeout 5 scontrol listpids 2>/dev/null | awk 'NR > 1 && $1 ~ /^[0-9]+$/ {print $1}' || true)
      [[ -z $pids ]] && break
      sleep 0.5
    done
    # shellcheck disable=SC2086  # a list of pids
    if [[ -n $pids ]]; then kill -KILL $pids 2>/dev/null || true; fi
  fi
  # Daemons in reverse start order: slurmd, slurmctld, munged.
  local k p
  for ((k = ${#CLUSTER_PIDS[@]} - 1; k >= 0; k--)); do
    p=${CLUSTER_PIDS[k]}
    kill -TERM "$p" 2>/dev/null || continue
    for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  CLUSTER_PIDS=()
  [[ -n $CLUSTER_DIR ]] && cluster_kill_leftovers "$CLUSTER_DIR/slurm.conf"
  unset SLURM_CONF
  [[ -n $CLUSTER_DIR && $CLUSTER_DIR == /tmp/dsir-slurm.* ]] && cp "$CLUSTER_DIR/slurm.conf" "$CLUSTER_LOGS/" 2>/dev/null
  [[ -n $CLUSTER_DIR && $CLUSTER_DIR == /tmp/dsir-slurm.* ]] && rm -rf "$CLUSTER_DIR"
  CLUSTER_DIR=""
}

# ---- Test bookkeeping shared by the slurm tests ----------------------------------------------
T_PASS=0
T_FAIL=0
t_ok() { T_PASS=$((T_PASS + 1)); echo "ok: $*"; }
t_bad() { T_FAIL=$((T_FAIL + 1)); echo "FAILED: $*"; }
t_check() {  # t_check NAME command...: passes when the command succeeds
  local name=$1
  shift
  if "$@"; then t_ok "$name"; else t_bad "$name"; fi
}
t_has() {  # t_has NAME FILE REGEX: FILE has a line matching REGEX
  if [[ -f $2 ]] && grep -qE -- "$3" "$2"; then t_ok "$1"; else t_bad "$1 (no /$3/ in $2)"; fi
}
t_finish() {
  echo "$T_PASS passed, $T_FAIL failed"
  if [[ $T_FAIL -gt 0 ]]; then
    cluster_dump_logs
    return 1
  fi
}
# A field of `scontrol show job` (first record): cluster_job_field JOBID Field
cluster_job_field() {
  timeout 10 scontrol show job "$1" 2>/dev/null | grep -oE "(^| )$2=[^ ]*" | head -1 | sed 's/^ *[^=]*=//' || true
}
