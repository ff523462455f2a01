#!/usr/bin/env bash
# Runs a command under `mpirun -np NP` as the e2e tests launch Open MPI here (mpi_env.sh).
# usage: mpi_run.sh NP COMMAND [ARG ...]
set -euo pipefail
np=$1
shift
source "$(dirname "$0")/mpi_env.sh"
"${MPIRUN[@]}" "$np" "$@"
