# Sourced by test scripts: how to launch Open MPI here (containers, few cores, maybe root).
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl_vader_single_copy_mechanism=none OMPI_MCA_rmaps_base_oversubscribe=1
MPIRUN=(mpirun --oversubscribe --bind-to none -np)

# mpi_kill_one_rank DELAY LOG MPIRUN_COMMAND...: runs the command in the background (its output
# to LOG), SIGKILLs one of its ranks, chosen with $RANDOM, DELAY seconds later, and waits. Sets
# victim (the killed pid; empty when the run had ended before the kill), code (mpirun's exit
# status) and took (seconds from the kill to the end).
mpi_kill_one_rank() {
  local delay=$1 log=$2 job start
  shift 2
  "$@" >"$log" 2>&1 &  # a simple command: $! is mpirun itself, whose children are the ranks
  job=$!
  sleep "$delay"
  local ranks
  ranks=$(pgrep -P $job)
  victim=$(sed -n "$((1 + RANDOM % 2))p" <<<"$ranks")
  start=$(date +%s)
  # A rank that ends between pgrep and kill was not killed: the run had ended (victim empty).
  [[ -n $victim ]] && { kill -KILL "$victim" 2>/dev/null || victim=""; }
  wait $job
  code=$? took=$(($(date +%s) - start))
  mpi_wait_for_ranks $ranks
}

# mpi_wait_for_ranks PID...: waits (up to 60 s) until these processes have ended. mpirun can
# return while a rank it signalled is still ending, holding its files and locks.
mpi_wait_for_ranks() {
  local pid deadline=$((SECONDS + 60))
  for pid in "$@"; do
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
  done
}
