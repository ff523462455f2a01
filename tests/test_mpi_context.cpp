// MpiContext's start-up: a process started without mpirun (every test binary under ctest, any
// lone `dsir`) keeps Open MPI 4's session files in a folder of its own, so that singletons
// starting and ending together do not race over one shared folder (pipeline/mpi_context.cpp).
#include <gtest/gtest.h>
#include <mpi.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "pipeline/mpi_context.h"

namespace {

TEST(MpiContext, ASingletonHasASessionFolderOfItsOwn) {
#if defined(OMPI_MAJOR_VERSION) && OMPI_MAJOR_VERSION < 5
  if (!dsir::MpiContext::get().singleton())
    GTEST_SKIP() << "launched by mpirun or srun: Open MPI's own session folders";
  const char* folder = std::getenv("OMPI_MCA_orte_top_session_dir");
  ASSERT_NE(folder, nullptr) << "no private session folder was set before MPI_Init";
  const std::string want = "/ompi.dsir." + std::to_string(static_cast<long>(getpid()));
  EXPECT_NE(std::string(folder).find(want), std::string::npos) << folder;
  EXPECT_EQ(dsir::MpiContext::get().size(), 1);
#else
  GTEST_SKIP() << "not Open MPI 4";
#endif
}

}  // namespace
