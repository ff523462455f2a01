#!/usr/bin/env bash
# Runs one libFuzzer target for SECONDS from the repository's seeds, growing a scratch corpus in
# WORK (kept between runs); a crashing input is written to WORK/artifacts and fails the run.
# usage: run_fuzz.sh FUZZ_BINARY SEED_DIR WORK_DIR SECONDS [libFuzzer options...]
set -euo pipefail
bin=${1:?usage: run_fuzz.sh FUZZ_BINARY SEED_DIR WORK_DIR SECONDS [options]}
seeds=${2:?} work=${3:?} seconds=${4:?}
shift 4
mkdir -p "$work/corpus" "$work/artifacts"
sanitizers=$(cd "$(dirname "$0")/../sanitizers" && pwd)
# allocator_may_return_null: HDF5 (not dsir) mallocs sizes read from the file and handles a NULL
# return as an error; ASan's default would abort there instead of letting it. A too-large
# allocation in dsir's own code still fails the run (an uncaught std::bad_alloc).
export ASAN_OPTIONS=${ASAN_OPTIONS:-allocator_may_return_null=1:detect_leaks=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$sanitizers/lsan.supp:print_suppressions=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1:suppressions=$sanitizers/ubsan.supp}
# -timeout: an input taking 10 s is a hang; -rss_limit_mb: an input needing more memory than this
# is an allocation sized by the file (a finding); -use_value_profile: helps through the magic
# numbers of TIFF and HDF5 headers.
exec "$bin" "$work/corpus" "$seeds" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
  -use_value_profile=1 -print_final_stats=1 -artifact_prefix="$work/artifacts/" "$@"
