// GoogleTest main shared by every test binary: MPI is initialised once (singleton when not
// launched by mpirun) and only rank 0 reports, so `mpirun -np 2 test` prints one summary.
#include <gtest/gtest.h>

#include "pipeline/log.h"
#include "pipeline/mpi_context.h"

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  dsir::MpiContext mpi(&argc, &argv);
  dsir::log::init(mpi.rank(), mpi.size());
  if (!mpi.is_root()) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
  }
  int failed = RUN_ALL_TESTS();
  // Any rank's failure fails the run.
  return mpi.allreduce_max(failed) > 0 ? 1 : 0;
}
