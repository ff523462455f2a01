// The CPU training fast paths against LibTorch's ops, an independent implementation: the fused
// BatchNorm + ReLU (+ max-pool) autograd function, the 3x3 convolutions, the separable blurred MSE,
// and a whole DsirNet training step.
#include <ATen/ops/conv2d.h>
#include <ATen/ops/max_pool2d.h>
#include <ATen/ops/mse_loss.h>
#include <ATen/ops/randn.h>
#include <ATen/ops/relu.h>
#include <gtest/gtest.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/conv.h>

#include "pipeline/errors.h"
#include "stages/train/loss.h"
#include "stages/train/models/cpu_conv.h"
#include "stages/train/models/fused_batch_norm.h"
#include "stages/train/models/model_registry.h"
#include "stages/train/models/torch_setup.h"
#include "stages/train/test_tensors.h"

namespace {

using dsir::test::max_rel_diff;

struct BnCase {
  std::vector<int64_t> shape;
  bool pool;
  bool ties;  // inputs on a coarse grid: equal values in pool windows, the first maximum must win
};

class FusedBnRelu : public ::testing::TestWithParam<BnCase> {};

// Output, the three gradients and the running statistics against BatchNorm2d -> relu ->
// max_pool2d, over three steps (the running statistics accumulate).
TEST_P(FusedBnRelu, EqualsLibTorchsOps) {
  const BnCase& c = GetParam();
  if (!dsir::fused_bn_relu_supported(at::zeros({1, 1, 1, 1}))) GTEST_SKIP() << "this CPU lacks AVX2/FMA";
  dsir::setup_torch_threads(2);
  torch::manual_seed(11);
  const int64_t channels = c.shape[1];
  torch::nn::BatchNorm2d ours(channels), torchs(channels);
  {
    torch::NoGradGuard g;
    ours->weight.normal_();  // some negative: the pool then picks the input's minimum
    ours->bias.normal_();
    torchs->weight.copy_(ours->weight);
    torchs->bias.copy_(ours->bias);
  }
  for (int step = 0; step < 3; ++step) {
    torch::Tensor x = at::randn(c.shape) * 2 + 0.7;
    if (c.ties) x = (x * 2).round() / 2;
    torch::Tensor xa = x.clone().requires_grad_(), xb = x.clone().requires_grad_();
    torch::Tensor ya = dsir::fused_bn_relu(ours, xa, c.pool, nullptr);
    torch::Tensor yb = at::relu(torchs->forward(xb));
    if (c.pool) yb = at::max_pool2d(yb, 2, 2);
    ASSERT_EQ(ya.sizes(), yb.sizes());
    EXPECT_LT(max_rel_diff(ya, yb), 1e-5) << "step " << step;
    const torch::Tensor upstream = at::randn(ya.sizes());
    (ya * upstream).sum().backward();
    (yb * upstream).sum().backward();
    EXPECT_LT(max_rel_diff(xa.grad(), xb.grad()), 1e-5) << "step " << step;
    EXPECT_LT(max_rel_diff(ours->weight.grad(), torchs->weight.grad()), 1e-5);
    EXPECT_LT(max_rel_diff(ours->bias.grad(), torchs->bias.grad()), 1e-5);
    EXPECT_LT(max_rel_diff(ours->running_mean, torchs->running_mean), 1e-6);
    EXPECT_LT(max_rel_diff(ours->running_var, torchs->running_var), 1e-6);
    EXPECT_EQ(ours->num_batches_tracked.item<int64_t>(), torchs->num_batches_tracked.item<int64_t>());
  }
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, FusedBnRelu,
    ::testing::Values(BnCase{{4, 3, 32, 48}, true, false},   // whole vectors
                      BnCase{{3, 2, 37, 45}, true, false},   // odd: tails, rows outside windows
                      BnCase{{2, 3, 26, 52}, true, true},    // ties
                      BnCase{{3, 1, 2, 2}, true, true},      // one window per plane
                      BnCase{{4, 3, 32, 48}, false, false},  // decoder layers
                      BnCase{{3, 2, 37, 45}, false, true}));

TEST(FusedBnRelu, TooFewValuesIsAnError) {
  if (!dsir::fused_bn_relu_supported(at::zeros({1, 1, 1, 1}))) GTEST_SKIP() << "this CPU lacks AVX2/FMA";
  torch::nn::BatchNorm2d bn(2);
  EXPECT_THROW(dsir::fused_bn_relu(bn, at::randn({1, 2, 1, 1}), false, nullptr), dsir::Error);
  EXPECT_FALSE(dsir::fused_bn_relu_supported(at::randn({1, 2, 4, 4}).to(torch::kDouble)));
  EXPECT_FALSE(
      dsir::fused_bn_relu_supported(at::randn({1, 2, 4, 4}).contiguous(at::MemoryFormat::ChannelsLast)));
}

struct ConvCase {
  int64_t frames, cin, cout, h, w;
  bool bias;
};

// Output and the three gradients of ours(x) against the layer's LibTorch forward.
template <class Layer, class Ours>
void expect_same_as_libtorch(Layer& layer, const torch::Tensor& x, bool bias, const Ours& ours) {
  torch::Tensor xa = x.clone().requires_grad_(), xb = x.clone().requires_grad_();
  torch::Tensor ya = ours(xa);
  const torch::Tensor upstream = at::randn(ya.sizes());
  (ya * upstream).sum().backward();
  const torch::Tensor grad_w = layer->weight.grad().clone(),
                      grad_b = bias ? layer->bias.grad().clone() : torch::Tensor();
  layer->zero_grad();
  torch::Tensor yb = layer->forward(xb);
  (yb * upstream).sum().backward();
  ASSERT_EQ(ya.sizes(), yb.sizes());
  EXPECT_LT(max_rel_diff(ya, yb), 1e-5);
  EXPECT_LT(max_rel_diff(xa.grad(), xb.grad()), 1e-5);
  EXPECT_LT(max_rel_diff(grad_w, layer->weight.grad()), 1e-5);
  if (bias) {
    EXPECT_LT(max_rel_diff(grad_b, layer->bias.grad()), 1e-5);
  }
}

class CpuConv3x3 : public ::testing::TestWithParam<ConvCase> {};

// Against LibTorch's Conv2d (oneDNN or im2col), on shapes that exercise every block size and the
// column tails.
TEST_P(CpuConv3x3, EqualsLibTorchsConv2d) {
  const ConvCase& c = GetParam();
  torch::manual_seed(7);
  torch::nn::Conv2d conv(torch::nn::Conv2dOptions(c.cin, c.cout, 3).padding(1).bias(c.bias));
  if (!dsir::cpu_conv3x3_supported(*conv, at::zeros({1, c.cin, 4, 4})))
    GTEST_SKIP() << "this CPU lacks AVX2/FMA";
  expect_same_as_libtorch(conv, at::randn({c.frames, c.cin, c.h, c.w}), c.bias,
                          [&](const torch::Tensor& x) { return dsir::cpu_conv3x3(*conv, x); });
}

INSTANTIATE_TEST_SUITE_P(Shapes, CpuConv3x3,
                         ::testing::Values(ConvCase{3, 1, 16, 26, 40, true},  // DSIR's conv1
                                           ConvCase{2, 4, 4, 13, 24, true},   // two blocks of four
                                           ConvCase{2, 8, 1, 32, 64, true},   // conv4
                                           ConvCase{2, 3, 5, 9, 37, true},    // channel and column remainders
                                           ConvCase{1, 2, 6, 5, 5, false},  // narrower than a vector, no bias
                                           ConvCase{2, 1, 7, 7, 19, false}));

TEST(CpuConv3x3, DeclinesOtherLayers) {
  const torch::Tensor x = at::zeros({1, 4, 8, 8});
  EXPECT_FALSE(
      dsir::cpu_conv3x3_supported(*torch::nn::Conv2d(torch::nn::Conv2dOptions(4, 4, 3)), x));  // no padding
  EXPECT_FALSE(dsir::cpu_conv3x3_supported(
      *torch::nn::Conv2d(torch::nn::Conv2dOptions(4, 4, 3).padding(1).stride(2)), x));
  EXPECT_FALSE(dsir::cpu_conv3x3_supported(*torch::nn::Conv2d(torch::nn::Conv2dOptions(4, 8, 3).padding(1)),
                                           x));  // LibTorch is faster
  EXPECT_FALSE(dsir::cpu_conv3x3_supported(*torch::nn::Conv2d(torch::nn::Conv2dOptions(4, 4, 3).padding(1)),
                                           x.contiguous(at::MemoryFormat::ChannelsLast)));
}

class CpuConvTranspose2x2 : public ::testing::TestWithParam<ConvCase> {};

TEST_P(CpuConvTranspose2x2, EqualsLibTorchsConvTranspose2d) {
  const ConvCase& c = GetParam();
  torch::manual_seed(8);
  torch::nn::ConvTranspose2d conv(torch::nn::ConvTranspose2dOptions(c.cin, c.cout, 2).stride(2).bias(c.bias));
  if (!dsir::cpu_conv_transpose2x2_supported(*conv, at::zeros({1, c.cin, 4, 8})))
    GTEST_SKIP() << "this CPU lacks AVX2/FMA";
  expect_same_as_libtorch(conv, at::randn({c.frames, c.cin, c.h, c.w}), c.bias,
                          [&](const torch::Tensor& x) { return dsir::cpu_conv_transpose2x2(*conv, x); });
}

INSTANTIATE_TEST_SUITE_P(Shapes, CpuConvTranspose2x2,
                         ::testing::Values(ConvCase{2, 16, 8, 13, 16, true},  // DSIR's convt3 (two vectors)
                                           ConvCase{3, 8, 16, 5, 24, true},   // convt2 (one vector left)
                                           ConvCase{2, 5, 3, 3, 8,
                                                    false}));  // input channels not a multiple of 4

TEST(CpuConvTranspose2x2, DeclinesOtherLayers) {
  torch::nn::ConvTranspose2d k2(torch::nn::ConvTranspose2dOptions(4, 4, 2).stride(2));
  EXPECT_FALSE(
      dsir::cpu_conv_transpose2x2_supported(*k2, at::zeros({1, 4, 8, 12})));  // width not a multiple of 8
  EXPECT_FALSE(dsir::cpu_conv_transpose2x2_supported(
      *torch::nn::ConvTranspose2d(torch::nn::ConvTranspose2dOptions(4, 4, 2)),
      at::zeros({1, 4, 8, 8})));  // stride 1
}

// The separable loss against DSIR's formula through LibTorch: mse_loss(conv2d(p, K), conv2d(y, K)).
TEST(BlurredMse, SeparableEqualsTwoDimensionalConvolution) {
  torch::manual_seed(5);
  for (const auto& [width, fwhm] : {std::pair{5, 3.0}, std::pair{7, 1.5}, std::pair{1, 1.0}}) {
    dsir::BlurredMseLoss loss(width, fwhm);
    const torch::Tensor k = dsir::gaussian_kernel(width, fwhm);
    torch::Tensor p = at::randn({3, 1, 23, 40}),
                  label = (at::randn({3, 1, 23, 40}) > 1.5).to(torch::kFloat) * 100;
    torch::Tensor pa = p.clone().requires_grad_(), pb = p.clone().requires_grad_();
    torch::Tensor la = loss(pa, label);
    torch::Tensor lb =
        at::mse_loss(at::conv2d(pb, k, {}, 1, width / 2), at::conv2d(label, k, {}, 1, width / 2));
    EXPECT_NEAR(la.item<double>(), lb.item<double>(), 1e-5 * lb.item<double>()) << "width " << width;
    (la * 3).backward();
    (lb * 3).backward();
    EXPECT_LT(max_rel_diff(pa.grad(), pb.grad()), 1e-5) << "width " << width;
  }
}

// DSIR's forward written out with LibTorch's modules and ops, from a DsirNet's submodules.
torch::Tensor reference_forward(torch::nn::Module& net, torch::Tensor x) {
  auto conv = [&](const char* name, const torch::Tensor& in) {
    auto m = net.named_children()[name];
    if (auto* c = m->as<torch::nn::Conv2dImpl>()) return c->forward(in);
    return m->as<torch::nn::ConvTranspose2dImpl>()->forward(in);
  };
  auto bn_relu = [&](const char* name, const torch::Tensor& in) {
    return at::relu(net.named_children()[name]->as<torch::nn::BatchNorm2dImpl>()->forward(in));
  };
  auto pool = [](const torch::Tensor& in) { return at::max_pool2d(in, 2, 2); };
  x = pool(bn_relu("bn1", conv("conv1", x)));
  x = pool(bn_relu("bn2", conv("conv2", x)));
  x = pool(bn_relu("bn2", conv("conv3", x)));
  x = bn_relu("bn2", conv("convt1", x));
  x = bn_relu("bn1", conv("convt2", x));
  x = bn_relu("bn2", conv("convt3", x));
  return bn_relu("bn4", conv("conv4", x));
}

// One training step of DsirNet (fused BatchNorm-ReLU-pool, separable loss) against DSIR's forward
// through LibTorch's modules and DSIR's loss formula: loss, every parameter's gradient and the
// running statistics.
TEST(FusedTraining, DsirNetStepEqualsLibTorchOps) {
  if (!dsir::fused_bn_relu_supported(at::zeros({1, 1, 1, 1}))) GTEST_SKIP() << "this CPU lacks AVX2/FMA";
  torch::manual_seed(2);
  auto fused = dsir::make_model("dsir"), plain = dsir::make_model("dsir");
  {
    torch::NoGradGuard g;
    auto a = fused->parameters(), b = plain->parameters();
    for (size_t i = 0; i < a.size(); ++i) b[i].copy_(a[i]);
  }
  fused->train();
  plain->train();
  dsir::BlurredMseLoss loss(5, 3.0);
  const torch::Tensor x = at::randn({4, 1, 48, 64}),
                      label = (at::randn({4, 1, 48, 64}) > 2).to(torch::kFloat) * 100;
  torch::Tensor la = loss(fused->forward(x), label);
  const torch::Tensor k = dsir::gaussian_kernel(5, 3.0);
  torch::Tensor lb =
      at::mse_loss(at::conv2d(reference_forward(*plain, x), k, {}, 1, 2), at::conv2d(label, k, {}, 1, 2));
  EXPECT_NEAR(la.item<double>(), lb.item<double>(), 1e-5 * lb.item<double>());
  la.backward();
  lb.backward();
  const double scale = dsir::test::max_gradient(*plain);
  auto a = fused->named_parameters(), b = plain->named_parameters();
  for (const auto& p : a) {
    const torch::Tensor ga = p.value().grad(), gb = b[p.key()].grad();
    EXPECT_LT((ga - gb).abs().max().item<double>() / scale, 1e-4) << p.key();
  }
  auto ba = fused->named_buffers(), bb = plain->named_buffers();
  for (const auto& p : ba) EXPECT_LT(max_rel_diff(p.value(), bb[p.key()]), 1e-5) << p.key();
}

}  // namespace
