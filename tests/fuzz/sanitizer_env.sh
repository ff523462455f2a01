# Sourced by run_fuzz.sh and check_seeds.sh: the sanitizer settings of every fuzz run.
# allocator_may_return_null: HDF5 (not dsir) mallocs sizes read from the file and handles a NULL
# return as an error; ASan's default would abort there instead of letting it. A too-large
# allocation in dsir's own code still fails the run (an uncaught std::bad_alloc).
fuzz_sanitizers=$(cd "$(dirname "${BASH_SOURCE[0]}")/../sanitizers" && pwd)
export ASAN_OPTIONS=${ASAN_OPTIONS:-allocator_may_return_null=1:detect_leaks=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$fuzz_sanitizers/lsan.supp:print_suppressions=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1:suppressions=$fuzz_sanitizers/ubsan.supp}
