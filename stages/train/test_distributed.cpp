// Runs under `mpirun -np 2`: data-parallel steps over the ranks equal single-process steps on the
// whole batch, and every rank holds identical parameters after every step. With synchronised
// BatchNorm this holds for DSIR's network too (batch statistics over both ranks' frames). When
// CUDA is available the same checks run on the GPU (the ranks share it; gradients go through
// pinned host buffers, or through GPU memory for CUDA-aware MPI).
#include <ATen/ops/randn.h>
#include <ATen/ops/zeros.h>
#include <gtest/gtest.h>
#include <torch/cuda.h>
#include <torch/nn/modules/conv.h>

#include "pipeline/mpi_context.h"
#include "stages/train/adam.h"
#include "stages/train/distributed.h"
#include "stages/train/loss.h"
#include "stages/train/models/checkpoint.h"
#include "stages/train/models/model_registry.h"
#include "stages/train/models/torch_setup.h"
#include "stages/train/test_tensors.h"

namespace {

using dsir::test::max_abs_diff;
using dsir::test::max_rel_diff;

// A network without batch statistics, so a split batch gives exactly the full batch's gradient.
struct PlainNetImpl : dsir::EmitterNetImpl {
  PlainNetImpl() {
    c1 = register_module("c1", torch::nn::Conv2d(torch::nn::Conv2dOptions(1, 4, 3).padding(1)));
    c2 = register_module("c2", torch::nn::Conv2d(torch::nn::Conv2dOptions(4, 1, 3).padding(1)));
  }
  torch::Tensor forward(torch::Tensor x) override { return c2(torch::relu(c1(x))); }
  torch::nn::Conv2d c1{nullptr}, c2{nullptr};
};

std::shared_ptr<dsir::EmitterNetImpl> make_net(const std::string& name) {
  if (name == "plain") return std::make_shared<PlainNetImpl>();
  return dsir::make_model(name);
}

// Plain gradient steps at a small rate for the networks with BatchNorm: a convolution's bias
// before BatchNorm has a true gradient of zero, and Adam would blow its rounding noise up to full
// steps of lr; large steps let rounding differences flip ReLU and max-pool decisions, after which
// two float trajectories part (with lr 0 every step agrees to 1e-5): DSIR's rate, 1e-4.
void sgd_step(dsir::EmitterNetImpl& net, double lr) {
  torch::NoGradGuard g;
  for (auto& p : net.parameters()) p.sub_(p.grad() * lr);
}

void copy_state(dsir::EmitterNetImpl& from, dsir::EmitterNetImpl& to) {
  torch::NoGradGuard g;
  auto sp = from.parameters(), dp = to.parameters();
  for (size_t i = 0; i < sp.size(); ++i) dp[i].copy_(sp[i]);
  auto sb = from.buffers(), db = to.buffers();
  for (size_t i = 0; i < sb.size(); ++i) db[i].copy_(sb[i]);
}

struct Case {
  std::string net;
  size_t bucket_bytes;
  bool sync_bn;
  std::string device;
};

std::string case_name(const ::testing::TestParamInfo<Case>& info) {
  const Case& c = info.param;
  return c.net + (c.bucket_bytes == 1 ? "_PerParameterBuckets" : "_OneBucket") +
         (c.sync_bn ? "_SyncBN" : "") + "_" + c.device;
}

// K steps of data-parallel training with batch B split over the ranks against a single process
// with batch B on every rank; parameters (and BatchNorm buffers) within 1e-5 relative, and the
// same bits on every rank after every step.
class SplitBatch : public ::testing::TestWithParam<Case> {};

TEST_P(SplitBatch, StepsEqualFullBatchStepsAndRanksAgree) {
  const Case c = GetParam();
  auto& mpi = dsir::MpiContext::get();
  ASSERT_EQ(mpi.size(), 2) << "run under mpirun -np 2";
  if (c.device == "cuda" && !torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  const torch::Device device = dsir::choose_device(c.device, mpi.local_rank(), "test");
  const int64_t batch = 8, steps = 3, side = c.net == "plain" ? 16 : 32;
  torch::manual_seed(100 + mpi.rank());  // different initial weights per rank: broadcast must fix it
  auto ddp = make_net(c.net), single = make_net(c.net);
  ddp->to(device);
  single->to(device);
  ddp->train();
  single->train();
  dsir::broadcast_parameters_and_buffers(mpi, *ddp);
  copy_state(*ddp, *single);
  if (c.sync_bn) ddp->set_sync_batchnorm(&mpi);
  dsir::AdamOptions o;
  o.lr = 1e-2;
  dsir::Adam adam_ddp(ddp->parameters(), o), adam_single(single->parameters(), o);
  const bool adam = c.net == "plain";
  dsir::GradientReducer reducer(mpi, ddp->parameters(), c.bucket_bytes, "mpi");
  if (c.bucket_bytes == 1) {
    EXPECT_EQ(reducer.bucket_count(), ddp->parameters().size());
  } else {
    EXPECT_LT(reducer.bucket_count(), ddp->parameters().size());
  }
  if (device.is_cuda()) {
    EXPECT_EQ(reducer.transport(), mpi.cuda_aware() ? "mpi-cuda-aware" : "mpi-staged");
  }
  dsir::BlurredMseLoss loss(5, 3.0);
  torch::manual_seed(7);  // the same data on both ranks
  // Nets with max-pools: a BLAS that blocks its sums by matrix size (OpenBLAS) rounds a batch of 4
  // and one of 8 differently, and where two pooled pixels tie to 1e-7 the winner, and so that
  // pixel's gradient, can move (5e-4 of the largest gradient, seen with DSIR's net; a parameter
  // near zero, like a BatchNorm bias after one step, moves by as much of itself). A reducer error
  // (a missing bucket, a wrong share) is of the gradient's own size.
  const double tolerance = c.net == "plain" ? 1e-5 : 2e-3;
  for (int64_t s = 0; s < steps; ++s) {
    torch::Tensor x = at::randn({batch, 1, side, side}).to(device);
    torch::Tensor y = at::randn({batch, 1, side, side}).relu().to(device);
    const dsir::Range mine = dsir::block_range(batch, mpi.rank(), mpi.size());
    const auto b0 = static_cast<int64_t>(mine.begin), b1 = static_cast<int64_t>(mine.end);
    adam_ddp.zero_grad();
    reducer.begin_step();
    torch::Tensor part = loss(ddp->forward(x.slice(0, b0, b1)), y.slice(0, b0, b1));
    (part * (double(mine.size()) / batch)).backward();
    reducer.finish_step();

    adam_single.zero_grad();
    loss(single->forward(x), y).backward();
    {
      auto a = ddp->parameters(), b = single->parameters();
      const double gmax = dsir::test::max_gradient(*single);
      for (size_t i = 0; i < a.size(); ++i)
        EXPECT_LT(max_abs_diff(a[i].grad(), b[i].grad()) / gmax, tolerance)
            << "step " << s << " gradient of parameter " << i;
    }
    adam ? adam_ddp.step() : sgd_step(*ddp, 1e-4);
    if (!c.sync_bn) dsir::broadcast_buffers(mpi, *ddp);
    adam ? adam_single.step() : sgd_step(*single, 1e-4);

    auto a = ddp->parameters(), b = single->parameters();
    for (size_t i = 0; i < a.size(); ++i) {
      EXPECT_LT(max_rel_diff(a[i], b[i]), tolerance) << "step " << s << " parameter " << i;
    }
    if (c.sync_bn) {  // running statistics over the global batch, as the single process's
      auto ab = ddp->named_buffers(), bb = single->named_buffers();
      for (size_t i = 0; i < ab.size(); ++i) {
        if (ab[i].value().scalar_type() != torch::kFloat) continue;
        EXPECT_LT(max_rel_diff(ab[i].value(), bb[i].value()), 1e-5)
            << "step " << s << " buffer " << ab[i].key();
      }
    }
    // Identical parameters and buffers on every rank, bit for bit.
    std::string mine_sum = dsir::model_checksum(*ddp), root_sum = mine_sum;
    mpi.broadcast(root_sum, 0);
    EXPECT_EQ(mine_sum, root_sum) << "rank " << mpi.rank() << " diverged at step " << s;
    // The next step starts both from the same parameters: a BLAS that blocks its sums by matrix
    // size (OpenBLAS) rounds a batch of 4 and one of 8 differently, and a 1e-7 difference can move
    // a max-pool's winner, which changes that pixel's gradient outright at the following step.
    copy_state(*ddp, *single);
  }
}

INSTANTIATE_TEST_SUITE_P(Cpu, SplitBatch,
                         ::testing::Values(Case{"plain", 1, false, "cpu"},
                                           Case{"plain", 1 << 20, false, "cpu"}, Case{"dsir", 1, true, "cpu"},
                                           Case{"dsir", 1 << 20, true, "cpu"},
                                           Case{"deepstorm", 1 << 20, true, "cpu"}),
                         case_name);
INSTANTIATE_TEST_SUITE_P(Cuda, SplitBatch,
                         ::testing::Values(Case{"plain", 1 << 20, false, "cuda"},
                                           Case{"dsir", 1, true, "cuda"}),
                         case_name);

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

// The same with synchronised BatchNorm: the rank without frames sends an empty batch through
// forward and backward (as the train stage does), and the step equals rank 0's frames alone.
TEST(DistributedUneven, RankWithoutDataWithSyncBatchNorm) {
  auto& mpi = dsir::MpiContext::get();
  torch::manual_seed(5);
  auto net = dsir::make_model("dsir"), alone = dsir::make_model("dsir");
  net->train();
  alone->train();
  dsir::broadcast_parameters_and_buffers(mpi, *net);
  copy_state(*net, *alone);
  net->set_sync_batchnorm(&mpi);
  dsir::GradientReducer reducer(mpi, net->parameters(), 1 << 20);
  dsir::BlurredMseLoss loss(5, 3.0);
  torch::manual_seed(6);
  torch::Tensor x = at::randn({3, 1, 16, 16}), y = at::randn({3, 1, 16, 16}).relu();
  reducer.begin_step();
  if (mpi.rank() == 0)
    loss(net->forward(x), y).backward();
  else
    net->forward(at::zeros({0, 1, 16, 16})).sum().backward();
  reducer.finish_step();
  sgd_step(*net, 0.1);
  loss(alone->forward(x), y).backward();
  sgd_step(*alone, 0.1);
  auto a = net->parameters(), b = alone->parameters();
  for (size_t i = 0; i < a.size(); ++i) EXPECT_LT(max_rel_diff(a[i], b[i]), 1e-5) << "parameter " << i;
  std::string mine = dsir::model_checksum(*net), root = mine;
  mpi.broadcast(root, 0);
  EXPECT_EQ(mine, root);
}

}  // namespace
