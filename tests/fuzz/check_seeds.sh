#!/usr/bin/env bash
# Runs a fuzz target once over its seeds and fails unless at least one seed is read to the
# reader's end: a harness whose every input is refused at the door (as the HDF5 targets were
# while their inputs were memfds HDF5 could not open) would fuzz nothing but that refusal.
# Further folders (regression inputs) are run once too; they need not be read.
# usage: check_seeds.sh FUZZ_BINARY SEED_DIR [MORE_DIRS...]
set -euo pipefail
bin=${1:?usage: check_seeds.sh FUZZ_BINARY SEED_DIR [MORE_DIRS...]} seeds=${2:?}
shift 2
source "$(dirname "$0")/sanitizer_env.sh"
log=$(DSIR_FUZZ_VERBOSE=1 "$bin" -runs=0 "$seeds" "$@" 2>&1) || { printf '%s\n' "$log" | tail -30; exit 1; }
read=$(printf '%s\n' "$log" | grep -c '^dsir-fuzz: read$' || true)
refused=$(printf '%s\n' "$log" | grep -c '^dsir-fuzz: refused' || true)
echo "$(basename "$bin"): $read input(s) read to the end, $refused refused (the empty input among them)"
printf '%s\n' "$log" | grep '^dsir-fuzz: refused' | sort | uniq -c | head -20
[[ $read -gt 0 ]] || { echo "no seed in $seeds was read to the end: the target fuzzes nothing past the first check" >&2; exit 1; }
