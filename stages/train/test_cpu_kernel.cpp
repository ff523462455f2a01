// DsirCpuKernel (the fused CPU inference path) against DsirNet's LibTorch forward: same weights,
// same frames, both BatchNorm modes, frame shapes whose pooled widths are not multiples of 8, and
// BatchNorm scales of both signs (a negative scale pools the minimum).
#include <ATen/ops/from_blob.h>
#include <ATen/ops/rand.h>
#include <ATen/ops/randn.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/grad_mode.h>
#include <torch/utils.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <vector>

#include "pipeline/h5store.h"
#include "stages/train/models/checkpoint.h"
#include "stages/train/models/dsir_net.h"
#include "tests/shared_data.h"

namespace {

using dsir::BnMode;
using dsir::DsirCpuKernel;

// A DsirNet whose BatchNorms have running statistics and scales of both signs.
std::shared_ptr<dsir::DsirNetImpl> random_net(uint64_t seed) {
  torch::manual_seed(seed);
  auto net = std::make_shared<dsir::DsirNetImpl>();
  torch::NoGradGuard no_grad;
  for (auto& b : net->named_buffers()) {
    if (b.key().find("running_mean") != std::string::npos)
      b.value().copy_(at::randn(b.value().sizes()) * 0.5);
    if (b.key().find("running_var") != std::string::npos)
      b.value().copy_(at::rand(b.value().sizes()) * 2 + 0.3);
  }
  for (auto& p : net->named_parameters())
    if (p.key().rfind("bn", 0) == 0 && p.key().find("weight") != std::string::npos)
      p.value().copy_(at::randn(p.value().sizes()));
  // The last BatchNorm positive and unshifted, so the map is not all zeros after its ReLU.
  for (auto& p : net->named_parameters()) {
    if (p.key() == "bn4.weight") p.value().abs_().add_(0.5);
    if (p.key() == "bn4.bias") p.value().zero_();
  }
  net->eval();
  return net;
}

struct Compared {
  double worst = 0, peak = 0;
};

Compared compare(dsir::DsirNetImpl& net, BnMode mode, int h, int w, uint64_t seed) {
  net.set_bn_mode(mode);
  torch::manual_seed(seed);
  torch::Tensor x = at::randn({1, 1, h, w});
  torch::NoGradGuard no_grad;
  torch::Tensor expected = net.forward(x).contiguous();
  DsirCpuKernel kernel(net.cpu_weights());
  std::vector<float> out(static_cast<size_t>(h) * w, -1.0f);
  kernel.forward(x.data_ptr<float>(), h, w, out.data());
  Compared c;
  const float* e = expected.data_ptr<float>();
  for (size_t i = 0; i < out.size(); ++i) {
    c.worst = std::max(c.worst, std::abs(double(out[i]) - e[i]));
    c.peak = std::max(c.peak, std::abs(double(e[i])));
  }
  return c;
}

class CpuKernel : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!DsirCpuKernel::supported()) GTEST_SKIP() << "this CPU lacks AVX2/FMA: the kernel is not used here";
  }
};

TEST_F(CpuKernel, MatchesLibTorchWithPerFrameBatchNorm) {
  auto net = random_net(3);
  // 208: DSIR's 26x26 training frames x8 (pooled widths 104, 52, 26); 96x48: not square.
  for (auto [h, w] : std::vector<std::pair<int, int>>{{64, 64}, {208, 208}, {96, 48}, {512, 512}}) {
    const Compared c = compare(*net, BnMode::PerFrame, h, w, 11 + h);
    EXPECT_GT(c.peak, 0.1) << h << "x" << w << ": the output must not be trivially zero";
    EXPECT_LT(c.worst, 1e-4 * std::max(1.0, c.peak)) << h << "x" << w;
  }
}

TEST_F(CpuKernel, MatchesLibTorchWithRunningBatchNorm) {
  auto net = random_net(5);
  for (auto [h, w] : std::vector<std::pair<int, int>>{{64, 64}, {208, 208}, {48, 96}}) {
    const Compared c = compare(*net, BnMode::Running, h, w, 17 + w);
    EXPECT_GT(c.peak, 0.1) << h << "x" << w;
    EXPECT_LT(c.worst, 1e-4 * std::max(1.0, c.peak)) << h << "x" << w;
  }
}

TEST_F(CpuKernel, ReusedKernelGivesTheSameBitsForEachFrame) {
  auto net = random_net(7);
  net->set_bn_mode(BnMode::PerFrame);
  DsirCpuKernel kernel(net->cpu_weights());
  torch::manual_seed(1);
  torch::Tensor a = at::randn({64, 64}), b = at::randn({208, 208});
  std::vector<float> first(64 * 64), big(208 * 208), again(64 * 64);
  kernel.forward(a.data_ptr<float>(), 64, 64, first.data());
  kernel.forward(b.data_ptr<float>(), 208, 208, big.data());  // buffers grow, then are reused
  kernel.forward(a.data_ptr<float>(), 64, 64, again.data());
  EXPECT_EQ(first, again);
  EXPECT_THROW(kernel.forward(a.data_ptr<float>(), 60, 64, first.data()), std::invalid_argument);
}

// DSIR's pretrained weights on DSIR's own preprocessed frame: against the float64 evaluation of
// the same network (the kernel's shifted sums keep it within float32's reach of it, where
// LibTorch's float32 is 3e-4 away) and against DSIR's PyTorch output.
TEST_F(CpuKernel, ReproducesDsirOutputToFloat64Accuracy) {
  const std::string ref = std::string(DSIR_SHARED_DIR) + "/reference/dsir/reference_26px.h5";
  DSIR_NEED_SHARED_FILE(ref);
  auto f = dsir::h5::File::open(ref);
  dsir::DsirNetImpl net;
  dsir::load_state(f, "/state_dict", net);
  net.set_bn_mode(BnMode::PerFrame);
  auto input = f.read<float>("/upscaled");
  const auto expected = f.read<float>("/output_per_frame_bn");
  std::vector<float> out(expected.size());
  DsirCpuKernel(net.cpu_weights()).forward(input.data(), 208, 208, out.data());

  torch::NoGradGuard no_grad;
  net.to(torch::kDouble);
  torch::Tensor x = at::from_blob(input.data(), {1, 1, 208, 208}, torch::kFloat).to(torch::kDouble);
  const torch::Tensor exact = net.forward(x).contiguous();
  const double* e = exact.data_ptr<double>();
  double vs_exact = 0, vs_dsir = 0, peak = 0;
  for (size_t i = 0; i < out.size(); ++i) {
    vs_exact = std::max(vs_exact, std::abs(out[i] - e[i]));
    vs_dsir = std::max(vs_dsir, std::abs(double(out[i]) - expected[i]));
    peak = std::max(peak, e[i]);
  }
  EXPECT_GT(peak, 0.1);
  EXPECT_LT(vs_exact, 1e-5);
  EXPECT_LT(vs_dsir, dsir::test::kDsirReferenceTolerance);
}

}  // namespace
