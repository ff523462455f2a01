#!/usr/bin/env bash
# Runs one libFuzzer target for SECONDS from the repository's seeds, growing a scratch corpus in
# WORK (kept between runs); a crashing input is written to WORK/artifacts and fails the run.
# usage: run_fuzz.sh FUZZ_BINARY SEED_DIR WORK_DIR SECONDS [libFuzzer options...]
set -euo pipefail
bin=${1:?usage: run_fuzz.sh FUZZ_BINARY SEED_DIR WORK_DIR SECONDS [options]}
seeds=${2:?} work=${3:?} seconds=${4:?}
shift 4
mkdir -p "$work/corpus" "$work/artifacts"
source "$(dirname "$0")/sanitizer_env.sh"
# -timeout: an input taking 10 s is a hang; -rss_limit_mb: an input needing more memory than this
# is an allocation sized by the file (a finding); -use_value_profile: helps through the magic
# numbers of TIFF and HDF5 headers.
exec "$bin" "$work/corpus" "$seeds" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
  -use_value_profile=1 -print_final_stats=1 -artifact_prefix="$work/artifacts/" "$@"
