#!/usr/bin/env bash
# Long fuzzing runs (docs/reliability.md). Builds the libFuzzer harnesses of tests/fuzz with
# clang-14 into build-fuzz (once), then runs one target for SECONDS; its growing corpus stays in
# build-fuzz/tests/fuzz/work/TARGET between runs, crashes go to .../artifacts.
# FUZZ_SANITIZERS=undefined (default address,undefined) builds into build-fuzz-undefined and runs
# ~10-20x faster on the HDF5 targets (ASan maps every HDF5 file open's metadata cache anew);
# --replay TARGET then runs every input that corpus grew once under ASan + UBSan.
# usage: scripts/fuzz.sh TARGET SECONDS [libFuzzer options...]   e.g. scripts/fuzz.sh tiff 600
#        FUZZ_SANITIZERS=undefined scripts/fuzz.sh raw_h5 3600 -runs=1000000
#        scripts/fuzz.sh --replay TARGET   (the undefined build's corpus, or FUZZ_BUILD's, once, under ASan)
#        scripts/fuzz.sh --list
#        scripts/fuzz.sh --seeds    (rewrites the binary seeds of tests/fuzz/corpus)
set -euo pipefail
cd "$(dirname "$0")/.."
sanitizers=${FUZZ_SANITIZERS:-address,undefined}
default_build=build-fuzz
[[ $sanitizers == address,undefined ]] || default_build=build-fuzz-${sanitizers//,/-}
build=${FUZZ_BUILD:-$default_build}
targets=(tiff csv config raw_h5 upscaled_h5 checkpoint_h5 shard_h5)
if [[ ${1:-} == --list ]]; then
  printf '%s\n' "${targets[@]}"
  exit 0
fi
configure() {  # build folder, sanitizers
  cmake -S . -B "$1" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang-14 \
    -DCMAKE_CXX_COMPILER=clang++-14 -DDSIR_FUZZ=ON -DDSIR_FUZZ_SANITIZERS="$2" >"$1.configure.log" 2>&1 ||
    { cat "$1.configure.log"; exit 1; }
}
if [[ ${1:-} == --replay ]]; then
  target=${2:?usage: scripts/fuzz.sh --replay TARGET}
  corpus=${FUZZ_BUILD:-build-fuzz-undefined}/tests/fuzz/work/$target/corpus
  [[ -d $corpus ]] || { echo "fuzz.sh: no corpus at $corpus (FUZZ_SANITIZERS=undefined scripts/fuzz.sh $target SECONDS first)" >&2; exit 2; }
  configure build-fuzz address,undefined
  cmake --build build-fuzz --target "fuzz_$target"
  source tests/fuzz/sanitizer_env.sh
  echo "fuzz.sh: $(find "$corpus" -type f | wc -l) inputs of $corpus, once each, under ASan + UBSan"
  exec build-fuzz/tests/fuzz/fuzz_$target -runs=0 -timeout=10 -rss_limit_mb=2048 "$corpus"
fi
configure "$build" "$sanitizers"
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
