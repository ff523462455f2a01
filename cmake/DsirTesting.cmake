include(GoogleTest)
find_program(DSIR_MPIEXEC NAMES mpirun mpiexec HINTS ${MPIEXEC_EXECUTABLE})

# Open MPI in containers with few cores, possibly as root (CI): allow oversubscription and root,
# no binding, no shared-memory single-copy (needs ptrace rights containers often lack).
set(DSIR_MPIEXEC_FLAGS --oversubscribe --bind-to none)
set(DSIR_MPI_ENV
  OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
  OMPI_MCA_btl_vader_single_copy_mechanism=none OMPI_MCA_rmaps_base_oversubscribe=1)

# Under DSIR_SANITIZE: leaks inside the uninstrumented third-party libraries are suppressed (each
# with its reason in the file); everything else, leak or undefined behaviour, fails the test.
set(DSIR_TEST_ENV ${DSIR_MPI_ENV})
if(DSIR_SANITIZE)
  set(DSIR_SANITIZER_DIR ${CMAKE_SOURCE_DIR}/tests/sanitizers)
  set(DSIR_SANITIZER_ENV
    # fast_unwind_on_malloc=0: Open MPI and HDF5 have no frame pointers; the slow unwinder finds
    # the frames in them that the suppressions name (tests/sanitizers/lsan.supp).
    "ASAN_OPTIONS=detect_leaks=1:fast_unwind_on_malloc=0:strict_string_checks=1:check_initialization_order=1:detect_stack_use_after_return=1"
    "LSAN_OPTIONS=suppressions=${DSIR_SANITIZER_DIR}/lsan.supp:print_suppressions=0"
    "UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:suppressions=${DSIR_SANITIZER_DIR}/ubsan.supp")
  list(APPEND DSIR_TEST_ENV ${DSIR_SANITIZER_ENV})
endif()

# Gives the sanitizer settings to the tests add_test() created in the calling directory (scripts
# that run `dsir`), once that directory is processed: set_tests_properties would replace them.
function(dsir_sanitizer_env_at_end_of_directory)
  if(NOT DSIR_SANITIZE)
    return()
  endif()
  get_property(done DIRECTORY PROPERTY DSIR_SANITIZER_ENV_DEFERRED)
  if(NOT done)
    set_property(DIRECTORY PROPERTY DSIR_SANITIZER_ENV_DEFERRED TRUE)
    cmake_language(DEFER CALL dsir_append_sanitizer_env)
  endif()
endfunction()
function(dsir_append_sanitizer_env)
  get_property(tests DIRECTORY PROPERTY TESTS)
  if(tests)
    set_property(TEST ${tests} APPEND PROPERTY ENVIRONMENT ${DSIR_SANITIZER_ENV})
  endif()
endfunction()

# The read-only shared material (reference files, demo data) that tests compare against.
set(DSIR_SHARED_DIR "${CMAKE_SOURCE_DIR}/../shared" CACHE PATH "Shared reference data (tests skip what is missing)")

# dsir_add_test(<name> SOURCES <srcs...> LIBS <targets...> LABELS <labels...>)
# Every test binary uses tests/gtest_main.cpp, which sets up MPI (singleton when run alone).
function(dsir_add_test name)
  cmake_parse_arguments(ARG "" "" "SOURCES;LIBS;LABELS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES} ${CMAKE_SOURCE_DIR}/tests/gtest_main.cpp)
  target_link_libraries(${name} PRIVATE ${ARG_LIBS} dsir_core GTest::gtest)
  target_compile_definitions(${name} PRIVATE
    DSIR_SOURCE_DIR="${CMAKE_SOURCE_DIR}" DSIR_BINARY_DIR="${CMAKE_BINARY_DIR}"
    DSIR_SHARED_DIR="${DSIR_SHARED_DIR}")
  if(DSIR_SANITIZE)
    # One ctest case per binary, all its tests in one process: instrumented, each process that
    # starts MPI costs seconds of unwinding its leaks (docs/reliability.md), and one process per
    # test made the sanitizer run of the unit label 30+ minutes instead of a few.
    add_test(NAME ${name} COMMAND ${name})
    set_tests_properties(${name} PROPERTIES LABELS "${ARG_LABELS}" ENVIRONMENT "${DSIR_TEST_ENV}" TIMEOUT 1800)
  else()
    # The listing starts MPI; on a busy machine that can take more than the default 5 s.
    gtest_discover_tests(${name} DISCOVERY_MODE PRE_TEST DISCOVERY_TIMEOUT 120
      PROPERTIES LABELS "${ARG_LABELS}" ENVIRONMENT "${DSIR_TEST_ENV}")
  endif()
  dsir_sanitizer_env_at_end_of_directory()
endfunction()

# dsir_add_mpi_test(<name> NP <n> SOURCES ... LIBS ...): one ctest case running the binary under mpirun.
function(dsir_add_mpi_test name)
  cmake_parse_arguments(ARG "" "NP" "SOURCES;LIBS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES} ${CMAKE_SOURCE_DIR}/tests/gtest_main.cpp)
  target_link_libraries(${name} PRIVATE ${ARG_LIBS} dsir_core GTest::gtest)
  target_compile_definitions(${name} PRIVATE
    DSIR_SOURCE_DIR="${CMAKE_SOURCE_DIR}" DSIR_BINARY_DIR="${CMAKE_BINARY_DIR}"
    DSIR_SHARED_DIR="${DSIR_SHARED_DIR}")
  add_test(NAME ${name}_np${ARG_NP}
    COMMAND ${DSIR_MPIEXEC} ${DSIR_MPIEXEC_FLAGS} -np ${ARG_NP} $<TARGET_FILE:${name}>)
  set_tests_properties(${name}_np${ARG_NP} PROPERTIES LABELS mpi TIMEOUT 600 RUN_SERIAL TRUE
    ENVIRONMENT "${DSIR_TEST_ENV}")
endfunction()
