#!/usr/bin/env bash
# `make run`: configs/quickstart.yaml end to end, on 2 MPI ranks when Open MPI can launch here,
# else as one process. Outputs in runs/quickstart/.
set -euo pipefail
cd "$(dirname "$0")/.."
source tests/e2e/mpi_env.sh
dsir=build/dsir
np=${DSIR_RANKS:-2}
if timeout 60 "${MPIRUN[@]}" "$np" true >/dev/null 2>&1; then
  exec "${MPIRUN[@]}" "$np" "$dsir" run configs/quickstart.yaml "$@"
fi
echo "run-quickstart: mpirun cannot launch $np ranks here; running one process" >&2
exec "$dsir" run configs/quickstart.yaml "$@"
