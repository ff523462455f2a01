include(GoogleTest)
find_program(DSIR_MPIEXEC NAMES mpirun mpiexec HINTS ${MPIEXEC_EXECUTABLE})

# Open MPI in containers with few cores, possibly as root (CI): allow oversubscription and root,
# no binding, no shared-memory single-copy (needs ptrace rights containers often lack).
set(DSIR_MPIEXEC_FLAGS --oversubscribe --bind-to none)
set(DSIR_MPI_ENV
  OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
  OMPI_MCA_btl_vader_single_copy_mechanism=none OMPI_MCA_rmaps_base_oversubscribe=1)

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
  # Listing a binary's tests loads LibTorch: allow for a loaded machine (the default is 5 s).
  gtest_discover_tests(${name} DISCOVERY_MODE PRE_TEST DISCOVERY_TIMEOUT 60
    PROPERTIES LABELS "${ARG_LABELS}" ENVIRONMENT "${DSIR_MPI_ENV}")
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
    ENVIRONMENT "${DSIR_MPI_ENV}")
endfunction()
