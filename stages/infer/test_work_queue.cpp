// The rank-0 work queue (pipeline/mpi_context.h), under mpirun -np 2: every item is handed out
// exactly once, rank 0 works too, a faster rank takes more, and the units add up on rank 0.
#include <gtest/gtest.h>

#include <chrono>
#include <set>
#include <sstream>
#include <thread>

#include "pipeline/mpi_context.h"

namespace dsir {
namespace {

std::vector<uint64_t> drain(WorkQueue& q, const MpiContext& mpi, int slow_ms) {
  std::vector<uint64_t> mine;
  uint64_t item = 0, done = 0;
  while (q.next(&item, done)) {
    mine.push_back(item);
    for (int t = 0; t < slow_ms; ++t) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
      q.serve();  // rank 0 answers while it works
    }
    done = 1;
  }
  (void)mpi;
  return mine;
}

TEST(WorkQueue, HandsOutEveryItemOnceAndFasterRanksTakeMore) {
  MpiContext& mpi = MpiContext::get();
  const uint64_t n = 60;
  WorkQueue q(mpi, n);
  // Rank 0 is 20 times slower than the others.
  const auto mine = drain(q, mpi, mpi.is_root() ? 20 : 1);
  for (size_t i = 1; i < mine.size(); ++i)
    EXPECT_LT(mine[i - 1], mine[i]) << "items come in increasing order";
  std::ostringstream text;
  for (uint64_t v : mine) text << v << ' ';
  const auto all = mpi.gather_to_root(text.str());
  if (!mpi.is_root()) return;
  EXPECT_EQ(q.units_done(), n);
  std::multiset<uint64_t> seen;
  std::vector<size_t> per_rank;
  for (const auto& t : all) {
    std::istringstream in(t);
    size_t k = 0;
    for (uint64_t v; in >> v; ++k) seen.insert(v);
    per_rank.push_back(k);
  }
  ASSERT_EQ(seen.size(), n);
  for (uint64_t i = 0; i < n; ++i) EXPECT_EQ(seen.count(i), 1u) << "item " << i;
  if (mpi.size() > 1) {
    EXPECT_GE(per_rank[0], 1u) << "rank 0 works too";
    EXPECT_GT(per_rank[1], per_rank[0]) << "the faster rank takes more";
  }
}

TEST(WorkQueue, EmptyQueueEndsOnEveryRank) {
  MpiContext& mpi = MpiContext::get();
  WorkQueue q(mpi, 0);
  uint64_t item = 0;
  EXPECT_FALSE(q.next(&item));
  EXPECT_FALSE(q.next(&item));  // and stays ended
  EXPECT_EQ(q.units_done(), 0u);
}

}  // namespace
}  // namespace dsir
