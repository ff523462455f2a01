#!/usr/bin/env bash
# Long fuzzing runs (docs/reliability.md). Builds the libFuzzer harnesses of tests/fuzz with
# clang-14 into build-fuzz (once), then runs one target for SECONDS; its growing corpus stays in
# build-fuzz/tests/fuzz/work/TARGET between runs, crashes go to .../artifacts.
# usage: scripts/fuzz.sh TARGET SECONDS [libFuzzer options...]   e.g. scripts/fuzz.sh tiff 600
#        scripts/fuzz.sh --list
#        scripts/fuzz.sh --seeds    (rewrites the binary seeds of tests/fuzz/corpus)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${FUZZ_BUILD:-build-fuzz}
targets=(tiff csv config raw_h5 upscaled_h5 checkpoint_h5 shard_h5)
if [[ ${1:-} == --list ]]; then
  printf '%s\n' "${targets[@]}"
  exit 0
fi
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang-14 \
  -DCMAKE_CXX_COMPILER=clang++-14 -DDSIR_FUZZ=ON >"$build.configure.log" 2>&1 ||
  { cat "$build.configure.log"; exit 1; }
if [[ ${1:-} == --seeds ]]; then
  cmake --build "$build" --target make_fuzz_seeds
  "$build/tests/fuzz/make_fuzz_seeds" tests/fuzz/corpus
  exit 0
fi
target=${1:?usage: scripts/fuzz.sh TARGET SECONDS [libFuzzer options...] (targets: ${targets[*]})}
seconds=${2:?usage: scripts/fuzz.sh TARGET SECONDS}
shift 2
[[ " ${targets[*]} " == *" $target "* ]] || { echo "fuzz.sh: unknown target '$target' (${targets[*]})" >&2; exit 2; }
cmake --build "$build" --target "fuzz_$target"
exec bash tests/fuzz/run_fuzz.sh "$build/tests/fuzz/fuzz_$target" "tests/fuzz/corpus/$target" \
  "$build/tests/fuzz/work/$target" "$seconds" "$@"
