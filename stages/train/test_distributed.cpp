// Runs under `mpirun -np 2`: data-parallel steps over the ranks equal single-process steps on the
// whole batch, and every rank holds identical parameters after every step.
#include <ATen/ops/randn.h>
#include <gtest/gtest.h>
#include <torch/nn/modules/conv.h>

#include "pipeline/mpi_context.h"
#include "stages/train/adam.h"
#include "stages/train/checkpoint.h"
#include "stages/train/distributed.h"
#include "stages/train/loss.h"

namespace {

// A network without batch statistics, so a split batch gives exactly the full batch's gradient.
struct PlainNetImpl : dsir::EmitterNetImpl {
  PlainNetImpl() {
    c1 = register_module("c1", torch::nn::Conv2d(torch::nn::Conv2dOptions(1, 4, 3).padding(1)));
    c2 = register_module("c2", torch::nn::Conv2d(torch::nn::Conv2dOptions(4, 1, 3).padding(1)));
  }
  torch::Tensor forward(torch::Tensor x) override { return c2(torch::relu(c1(x))); }
  torch::nn::Conv2d c1{nullptr}, c2{nullptr};
};

// Bucket sizes: one bucket for everything, and one parameter per bucket (many overlapped calls).
class Distributed : public ::testing::TestWithParam<size_t> {};

TEST_P(Distributed, SplitBatchStepsEqualFullBatchStepsAndRanksAgree) {
  auto& mpi = dsir::MpiContext::get();
  ASSERT_EQ(mpi.size(), 2) << "run under mpirun -np 2";
  const int64_t batch = 8, steps = 5;
  torch::manual_seed(100 + mpi.rank());  // different initial weights per rank: broadcast must fix it
  PlainNetImpl ddp;
  dsir::broadcast_parameters_and_buffers(mpi, ddp);
  // The reference: a single-process model with rank 0's initial weights, full batches.
  PlainNetImpl single;
  {
    torch::NoGradGuard g;
    auto src = ddp.parameters(), dst = single.parameters();
    for (size_t i = 0; i < src.size(); ++i) dst[i].copy_(src[i]);
  }
  dsir::AdamOptions o;
  o.lr = 1e-2;
  dsir::Adam adam_ddp(ddp.parameters(), o), adam_single(single.parameters(), o);
  dsir::GradientReducer reducer(mpi, ddp.parameters(), GetParam());
  EXPECT_EQ(reducer.bucket_count(), GetParam() == 1 ? 4u : 1u);
  dsir::BlurredMseLoss loss(5, 3.0);
  torch::manual_seed(7);  // the same data on both ranks
  for (int64_t s = 0; s < steps; ++s) {
    torch::Tensor x = at::randn({batch, 1, 16, 16}), y = at::randn({batch, 1, 16, 16}).relu();
    const dsir::Range mine = dsir::block_range(batch, mpi.rank(), mpi.size());
    adam_ddp.zero_grad();
    reducer.begin_step();
    torch::Tensor part = loss(ddp.forward(x.slice(0, mine.begin, mine.end)), y.slice(0, mine.begin, mine.end));
    (part * (double(mine.size()) / batch)).backward();
    reducer.finish_step();
    adam_ddp.step();

    adam_single.zero_grad();
    loss(single.forward(x), y).backward();
    adam_single.step();

    auto a = ddp.parameters(), b = single.parameters();
    for (size_t i = 0; i < a.size(); ++i) {
      const double scale = b[i].abs().max().item<double>() + 1e-12;
      EXPECT_LT((a[i] - b[i]).abs().max().item<double>() / scale, 1e-5) << "step " << s << " parameter " << i;
    }
    // Identical parameters on every rank, bit for bit.
    std::string mine_sum = dsir::model_checksum(ddp), root_sum = mine_sum;
    mpi.broadcast(root_sum, 0);
    EXPECT_EQ(mine_sum, root_sum) << "rank " << mpi.rank() << " diverged at step " << s;
  }
}

INSTANTIATE_TEST_SUITE_P(BucketBytes, Distributed, ::testing::Values(size_t(1), size_t(1) << 20));

// A final batch smaller than the number of ranks leaves rank 1 without data: it must still take
// part in every collective (zeros) and end with the same parameters as rank 0.
TEST(DistributedUneven, RankWithoutDataStaysInStep) {
  auto& mpi = dsir::MpiContext::get();
  torch::manual_seed(1);
  PlainNetImpl net;
  dsir::broadcast_parameters_and_buffers(mpi, net);
  dsir::Adam adam(net.parameters(), {});
  dsir::GradientReducer reducer(mpi, net.parameters(), 64);
  dsir::BlurredMseLoss loss(5, 3.0);
  torch::manual_seed(2);
  torch::Tensor x = at::randn({1, 1, 8, 8}), y = at::randn({1, 1, 8, 8});
  adam.zero_grad();
  reducer.begin_step();
  if (mpi.rank() == 0) loss(net.forward(x), y).backward();
  reducer.finish_step();
  adam.step();
  std::string mine = dsir::model_checksum(net), root = mine;
  mpi.broadcast(root, 0);
  EXPECT_EQ(mine, root);
}

}  // namespace
