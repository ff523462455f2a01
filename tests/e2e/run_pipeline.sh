#!/usr/bin/env bash
# Runs the whole pipeline at test size under `mpirun -np NP` into DIR (the e2e fixture).
# usage: run_pipeline.sh DSIR CONFIG DIR NP [key=value ...]
set -euo pipefail
dsir=$1 config=$2 dir=$3 np=$4
shift 4
rm -rf "$dir"
source "$(dirname "$0")/mpi_env.sh"
"${MPIRUN[@]}" "$np" "$dsir" run "$config" run.dir="$dir" "$@"
