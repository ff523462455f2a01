#!/usr/bin/env bash
# Benchmarks dsir against DSIR's own PyTorch code on this machine, one thread each, in one run.
# usage: bench/run.sh [BUILD_DIR]   (needs DSIR_WITH_PEERS=1 bash scripts/install-deps.sh for the peer)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
[[ -x $build/bench/bench_dsir ]] || { echo "run.sh: $build/bench/bench_dsir is missing: build the benchmarks with make build (make test does not)" >&2; exit 2; }
echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; date: $(date -u +%F)"
"$build/bench/bench_dsir" --benchmark_format=console
echo "peer (DSIR's Python, python3-torch):"
/usr/bin/python3 bench/peer_dsir.py ../shared/reference/dsir/reference_26px.h5
