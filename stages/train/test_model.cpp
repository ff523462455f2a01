#include <ATen/ops/allclose.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/from_blob.h>
#include <ATen/ops/ones.h>
#include <ATen/ops/randn.h>
#include <ATen/ops/roll.h>
#include <gtest/gtest.h>
#include <torch/cuda.h>
#include <torch/optim/adam.h>

#include <cmath>
#include <filesystem>

#include "pipeline/errors.h"
#include "pipeline/h5store.h"
#include "pipeline/mpi_context.h"
#include "stages/train/adam.h"
#include "stages/train/distributed.h"
#include "stages/train/loss.h"
#include "stages/train/models/checkpoint.h"
#include "stages/train/models/model_registry.h"
#include "stages/train/models/sync_batch_norm.h"
#include "stages/train/models/torch_setup.h"
#include "stages/train/test_tensors.h"
#include "stages/train/upscaled_set.h"
#include "tests/corrupt_file.h"
#include "tests/shared_data.h"

namespace {

const std::string kReference = std::string(DSIR_SHARED_DIR) + "/reference/dsir/reference_26px.h5";

double max_abs_diff(const torch::Tensor& a, const std::vector<float>& b) {
  torch::Tensor c = a.contiguous();
  const float* p = c.data_ptr<float>();
  double worst = 0;
  for (size_t i = 0; i < b.size(); ++i) worst = std::max(worst, std::abs(double(p[i]) - b[i]));
  return worst;
}

// DSIR's pretrained weights, run by PyTorch on DSIR's own preprocessed frame, against our model.
TEST(DsirNet, ReproducesDsirOutputWithPerFrameBatchNorm) {
  DSIR_NEED_SHARED_FILE(kReference);
  auto f = dsir::h5::File::open(kReference);
  auto model = dsir::make_model("dsir");
  dsir::load_state(f, "/state_dict", *model);
  model->eval();
  auto input = f.read<float>("/upscaled");
  torch::Tensor x = at::from_blob(input.data(), {1, 1, 208, 208}, torch::kFloat);
  torch::NoGradGuard no_grad;

  model->set_bn_mode(dsir::BnMode::PerFrame);
  const auto expected = f.read<float>("/output_per_frame_bn");
  torch::Tensor y = model->forward(x);
  ASSERT_EQ(y.sizes(), (std::vector<int64_t>{1, 1, 208, 208}));
  EXPECT_LT(max_abs_diff(y, expected), dsir::test::kDsirReferenceTolerance);
  double total = 0;
  for (float v : expected) total += v;
  EXPECT_GT(total, 0.0) << "the reference output must not be trivially zero";

  // Running statistics: DSIR's weights output zeros everywhere (FINDINGS.md, fact 1).
  model->set_bn_mode(dsir::BnMode::Running);
  EXPECT_LT(max_abs_diff(model->forward(x), f.read<float>("/output_eval")), 1e-4);
}

TEST(DsirNet, HasDsirsParameterNamesAndShapes) {
  auto model = dsir::make_model("dsir");
  std::map<std::string, std::vector<int64_t>> shapes;
  for (const auto& p : model->named_parameters()) shapes[p.key()] = p.value().sizes().vec();
  EXPECT_EQ(shapes.at("conv1.weight"), (std::vector<int64_t>{16, 1, 3, 3}));
  EXPECT_EQ(shapes.at("convt2.weight"), (std::vector<int64_t>{8, 16, 2, 2}));
  EXPECT_EQ(shapes.at("convt3.weight"), (std::vector<int64_t>{16, 8, 2, 2}));
  EXPECT_EQ(shapes.at("conv4.weight"), (std::vector<int64_t>{1, 8, 3, 3}));
  EXPECT_EQ(shapes.size(), 20u);  // 7 convolutions x 2 + 3 BatchNorms x 2
  EXPECT_THROW(dsir::make_model("nope"), dsir::ConfigError);
}

TEST(DsirResizeNet, IsDsirWithEachTransposedConvolutionReplacedByUpsamplingAndA3x3Convolution) {
  auto model = dsir::make_model("dsir-resize");
  std::map<std::string, std::vector<int64_t>> shapes;
  for (const auto& p : model->named_parameters()) shapes[p.key()] = p.value().sizes().vec();
  EXPECT_EQ(shapes.at("conv1.weight"), (std::vector<int64_t>{16, 1, 3, 3}));
  EXPECT_EQ(shapes.at("upconv1.weight"), (std::vector<int64_t>{8, 8, 3, 3}));
  EXPECT_EQ(shapes.at("upconv2.weight"), (std::vector<int64_t>{16, 8, 3, 3}));
  EXPECT_EQ(shapes.at("upconv3.weight"), (std::vector<int64_t>{8, 16, 3, 3}));
  EXPECT_EQ(shapes.at("conv4.weight"), (std::vector<int64_t>{1, 8, 3, 3}));
  EXPECT_EQ(shapes.size(), 20u);  // as DSIR: 7 convolutions x 2 + 3 BatchNorms x 2
  torch::NoGradGuard no_grad;
  model->eval();
  EXPECT_EQ(model->forward(at::randn({2, 1, 64, 48})).sizes(), (std::vector<int64_t>{2, 1, 64, 48}));
}

// A constant frame through freshly initialised nets, away from the borders' padding: DSIR's
// transposed convolutions paint a period-2 pattern (the checkerboard of summed maps), the resize
// variant does not.
TEST(DsirResizeNet, AConstantFrameComesOutConstantWhereDsirsComesOutAsACheckerboard) {
  // (max - min) / mean over the central 64x64 of a 128x128 output: 32 px from every border is
  // beyond the reach of the padding at every level of the net.
  auto spread = [](const char* name) {
    torch::manual_seed(5);
    auto model = dsir::make_model(name);
    model->eval();
    torch::NoGradGuard no_grad;
    const torch::Tensor out = model->forward(at::ones({1, 1, 128, 128}));
    const torch::Tensor centre = out.slice(2, 32, 96).slice(3, 32, 96);
    const double mean = centre.mean().item<double>();
    EXPECT_GT(mean, 0) << name << ": the ReLU output is all zero; the check would say nothing";
    return (centre.max().item<double>() - centre.min().item<double>()) / mean;
  };
  EXPECT_LT(spread("dsir-resize"), 1e-5);
  EXPECT_GT(spread("dsir"), 0.05);
}

// The sub-pixel net convolves at camera pixels: frames of any whole number of camera pixels come
// out at the input's size; moving the frame by one camera pixel moves the map by 8 sub-pixels
// (away from the borders, where zero padding reaches); untrained (ICNR), each camera pixel's
// 8x8 block of the map is flat.
TEST(SubpixelNet, CameraPixelShiftsMoveTheMapByEightAndItStartsWithoutAGrid) {
  torch::manual_seed(6);
  auto model = dsir::make_model("subpixel");
  model->eval();
  torch::NoGradGuard no_grad;
  const auto y0 = model->forward(at::randn({2, 1, 8 * 7, 8 * 5}));
  EXPECT_EQ(y0.sizes(), (std::vector<int64_t>{2, 1, 56, 40}));
  EXPECT_THROW(model->forward(at::randn({1, 1, 60, 64})), dsir::Error);

  const auto x = at::randn({1, 1, 8 * 32, 8 * 32});
  const auto y = model->forward(x), shifted = model->forward(at::roll(x, {8}, {3}));
  constexpr int64_t kReach = 8 * 10;  // the field of view's radius (9 camera pixels) and one more
  const auto inner = y.slice(2, kReach, 256 - kReach).slice(3, kReach, 256 - kReach - 8);
  const auto moved = shifted.slice(2, kReach, 256 - kReach).slice(3, kReach + 8, 256 - kReach);
  EXPECT_GT(inner.abs().max().item<double>(), 1e-3);
  EXPECT_LT((moved - inner).abs().max().item<double>(), 1e-5 * inner.abs().max().item<double>());

  const auto blocks = y.reshape({32, 8, 32, 8});  // camera row, sub-row, camera column, sub-column
  const auto spread = blocks.amax({1, 3}) - blocks.amin({1, 3});
  EXPECT_LT(spread.abs().max().item<double>(), 1e-6 * y.abs().max().item<double>());
}

TEST(DeepStormNet, ShapesChannelsAndNoBiases) {
  auto model = dsir::make_model("deepstorm");
  std::map<std::string, std::vector<int64_t>> shapes;
  for (const auto& p : model->named_parameters()) {
    shapes[p.key()] = p.value().sizes().vec();
    if (p.key().rfind("conv", 0) == 0 || p.key().rfind("head", 0) == 0) {
      EXPECT_EQ(p.key().find("bias"), std::string::npos) << p.key();
    }
  }
  EXPECT_EQ(shapes.at("conv1.weight"), (std::vector<int64_t>{32, 1, 3, 3}));
  EXPECT_EQ(shapes.at("conv4.weight"), (std::vector<int64_t>{512, 128, 3, 3}));
  EXPECT_EQ(shapes.at("conv5.weight"), (std::vector<int64_t>{128, 512, 3, 3}));
  EXPECT_EQ(shapes.at("conv7.weight"), (std::vector<int64_t>{32, 64, 3, 3}));
  EXPECT_EQ(shapes.at("head.weight"), (std::vector<int64_t>{1, 32, 1, 1}));
  model->eval();
  torch::NoGradGuard no_grad;
  EXPECT_EQ(model->forward(at::randn({2, 1, 64, 48})).sizes(), (std::vector<int64_t>{2, 1, 64, 48}));
}

// Mixed precision: every model's LibTorch convolutions compute in bfloat16 (8 significant bits)
// while its parameters and their gradients stay float32. The map and the gradients agree with
// float32's to bfloat16's rounding, and differ from them (the bfloat16 path did run).
TEST(EmitterNet, BFloat16ConvolutionsAgreeWithFloat32ToTheirPrecision) {
  for (const std::string name : {"dsir", "dsir-resize", "deepstorm"}) {
    torch::manual_seed(3);
    auto model = dsir::make_model(name);
    const auto x = at::randn({2, 1, 48, 40});
    std::vector<torch::Tensor> maps, grads;
    for (auto dtype : {torch::kFloat, torch::kBFloat16}) {
      model->set_conv_precision(dtype);
      model->zero_grad();
      const auto y = model->forward(x);
      EXPECT_EQ(y.scalar_type(), torch::kFloat) << name;
      y.square().mean().backward();
      maps.push_back(y.detach());
      std::vector<torch::Tensor> g;
      for (const auto& p : model->parameters()) {
        EXPECT_EQ(p.grad().scalar_type(), torch::kFloat) << name;
        g.push_back(p.grad().flatten());
      }
      grads.push_back(at::cat(g));
    }
    const double map_diff = dsir::test::max_rel_diff(maps[1], maps[0]);
    EXPECT_GT(map_diff, 1e-5) << name;
    EXPECT_LT(map_diff, 0.05) << name;
    const double cosine =
        (grads[0] * grads[1]).sum().item<double>() / (grads[0].norm() * grads[1].norm()).item<double>();
    EXPECT_GT(cosine, 0.99) << name;
    EXPECT_LT(cosine, 1 - 1e-9) << name;
  }
  EXPECT_THROW(dsir::make_model("dsir")->set_conv_precision(torch::kHalf), dsir::Error);
  EXPECT_EQ(dsir::parse_precision("bfloat16"), torch::kBFloat16);
  EXPECT_THROW(dsir::parse_precision("fp16"), dsir::ConfigError);
}

// train.channels_last: the same training step on channels-last weights and activations gives the
// contiguous step's map, gradients and running statistics. DSIR uses its bn2 four times in one
// forward; each use updates the running statistics, which must not invalidate the earlier uses'
// saved tensors.
TEST(EmitterNet, ChannelsLastTrainingStepEqualsContiguous) {
  for (const std::string name : {"dsir", "dsir-resize", "deepstorm"}) {
    torch::manual_seed(4);
    auto contiguous = dsir::make_model(name), channels_last = dsir::make_model(name);
    {
      torch::NoGradGuard g;
      auto a = contiguous->parameters(), b = channels_last->parameters();
      for (size_t i = 0; i < a.size(); ++i) b[i].copy_(a[i]);
      for (auto& p : b)
        if (p.dim() == 4) p.set_data(p.data().contiguous(at::MemoryFormat::ChannelsLast));
    }
    const auto x = at::randn({3, 1, 48, 40});
    const auto ya = contiguous->forward(x);
    const auto yb = channels_last->forward(x.contiguous(at::MemoryFormat::ChannelsLast));
    EXPECT_LT(dsir::test::max_rel_diff(yb, ya), 1e-5) << name;
    ya.square().mean().backward();
    ASSERT_NO_THROW(yb.square().mean().backward()) << name;
    auto pa = contiguous->named_parameters(), pb = channels_last->named_parameters();
    const double scale = dsir::test::max_gradient(*contiguous);
    for (const auto& p : pa)
      EXPECT_LT((pb[p.key()].grad() - p.value().grad()).abs().max().item<double>() / scale, 1e-4)
          << name << " " << p.key();
    auto ba = contiguous->named_buffers(), bb = channels_last->named_buffers();
    for (const auto& b : ba)
      EXPECT_LT(dsir::test::max_rel_diff(bb[b.key()], b.value()), 1e-5) << name << " " << b.key();
  }
}

TEST(Loss, KernelIsDsirsUnnormalisedGaussian) {
  torch::Tensor k = dsir::gaussian_kernel(5, 3.0);
  auto a = k.accessor<float, 4>();
  EXPECT_FLOAT_EQ(a[0][0][2][2], 1.0f);
  // r² = 1: exp(-4 ln2 / 9)
  EXPECT_NEAR(a[0][0][2][3], std::exp(-4 * std::log(2.0) / 9), 1e-7);
  EXPECT_NEAR(a[0][0][0][0], std::exp(-4 * std::log(2.0) * 8 / 9), 1e-7);
  dsir::BlurredMseLoss loss(5, 3.0);
  torch::Tensor x = at::randn({2, 1, 16, 16});
  EXPECT_EQ(loss(x, x).item<double>(), 0.0);
  EXPECT_GT(loss(x, x * 0.5).item<double>(), 0.0);
}

// Our Adam against LibTorch's torch::optim::Adam (same formula as torch.optim.Adam) for 5 steps.
TEST(Adam, MatchesTorchOptimAdam) {
  torch::manual_seed(3);
  torch::Tensor w0 = at::randn({4, 3});
  torch::Tensor a = w0.clone().set_requires_grad(true), b = w0.clone().set_requires_grad(true);
  dsir::AdamOptions o;
  o.lr = 1e-2;
  o.weight_decay = 1e-3;
  dsir::Adam ours({a}, o);
  torch::optim::Adam theirs({b}, torch::optim::AdamOptions(1e-2).weight_decay(1e-3));
  for (int s = 0; s < 5; ++s) {
    torch::Tensor target = at::randn({4, 3});
    ours.zero_grad();
    theirs.zero_grad();
    ((a - target) * (a - target)).sum().backward();
    ((b - target) * (b - target)).sum().backward();
    ours.step();
    theirs.step();
  }
  EXPECT_TRUE(at::allclose(a, b, 1e-6, 1e-7));
}

TEST(Checkpoint, RoundTripKeepsWeightsAndMetadata) {
  auto model = dsir::make_model("dsir");
  const std::string dir = ::testing::TempDir() + "/dsir-ckpt-" + std::to_string(getpid());
  dsir::ModelMeta meta;
  meta.label_scale = 100;
  meta.bn_mode = "per-frame";
  meta.epoch = 7;
  dsir::save_checkpoint(dir + "/m.h5", *model, nullptr, meta, {{"dsir_version", "test"}});
  dsir::ModelMeta back;
  auto loaded = dsir::load_model(dir + "/m.h5", &back);
  EXPECT_EQ(dsir::model_checksum(*loaded), dsir::model_checksum(*model));
  EXPECT_EQ(back.label_scale, 100);
  EXPECT_EQ(back.epoch, 7);
  EXPECT_EQ(loaded->bn_mode(), dsir::BnMode::PerFrame);
  std::filesystem::remove_all(dir);
}

TEST(Checkpoint, AFlippedByteInAWeightIsAnErrorNamingTheFileAndTheWeight) {
  auto model = dsir::make_model("dsir");
  const std::string dir = ::testing::TempDir() + "/dsir-ckpt-bad-" + std::to_string(getpid());
  const std::string path = dir + "/checkpoint-epoch-0001.h5";
  dsir::save_checkpoint(path, *model, nullptr, dsir::ModelMeta{}, {{"dsir_version", "test"}});
  ASSERT_TRUE(dsir::h5::File::open(path).checksummed("/state/" + model->named_parameters()[0].key()));
  // The largest weight: its bytes are unique in the file.
  torch::Tensor weight;
  std::string key;
  for (const auto& p : model->named_parameters())
    if (!weight.defined() || p.value().numel() > weight.numel()) weight = p.value(), key = p.key();
  const torch::Tensor c = weight.detach().contiguous();
  const std::vector<float> values(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
  ASSERT_TRUE(dsir::test::flip_byte_inside(path, values));
  try {
    dsir::load_model(path, nullptr);
    ADD_FAILURE() << "a corrupt checkpoint was loaded";
  } catch (const dsir::InputError& e) {
    EXPECT_NE(std::string(e.what()).find(path + ": /state/" + key + ": read failed: checksum mismatch"),
              std::string::npos)
        << e.what();
  }
  std::filesystem::remove_all(dir);
}

// A model's and upscaled.h5's numbers converted to int without a check: a factor of NaN or 1e300
// was undefined behaviour (float-cast-overflow; found writing tests/fuzz). Each is now an error
// naming the file and the attribute.
TEST(Checkpoint, MetadataAndUpscaledAttributesOutOfRangeAreErrors) {
  const std::string dir = ::testing::TempDir() + "/dsir-ckpt-bad-" + std::to_string(getpid());
  std::filesystem::create_directories(dir);
  for (const char* key : {"factor", "epoch"}) {
    for (double bad : {std::nan(""), 1e300, -1.0, 2.5}) {
      const std::string path = dir + "/bad.h5";
      {
        auto f =
            dsir::h5::File::create(path, {{"arch", "dsir"}, {"bn_mode", "running"}, {"normalize", "none"}});
        f.write("/state/w", std::vector<float>(1), {1});
        for (const char* number : {"label_scale", "factor", "raw_pixel_size_nm", "epoch", "step", "val_loss"})
          f.set_attr("/", number, std::string(number) == key ? bad : 8.0);
        f.commit();
      }
      try {
        dsir::load_model(path, nullptr);
        ADD_FAILURE() << key << " = " << bad << " loaded";
      } catch (const dsir::InputError& e) {
        EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find(std::string("attribute '") + key + "'"), std::string::npos)
            << e.what();
      }
    }
  }
  {
    auto f = dsir::h5::File::create(dir + "/up.h5", {});
    f.write("/inputs", std::vector<float>(4), {1, 2, 2});
    f.write("/labels", std::vector<float>(4), {1, 2, 2});
    f.set_attr("/", "factor", std::nan(""));
    f.set_attr("/", "raw_pixel_size_nm", 100.0);
    f.set_attr("/", "normalize", "none");
    f.commit();
  }
  try {
    dsir::UpscaledSet set(dir + "/up.h5", dsir::ItemSpec{});
    ADD_FAILURE() << "factor NaN read as " << set.factor;
  } catch (const dsir::InputError& e) {
    EXPECT_NE(std::string(e.what()).find("up.h5: /: attribute 'factor' is nan"), std::string::npos)
        << e.what();
  }
  std::filesystem::remove_all(dir);
}

using dsir::test::max_rel_diff;

// On one rank the synchronised BatchNorm is torch's BatchNorm2d: output, the three gradients and
// the running statistics (an independent implementation: ATen's batch_norm and its backward).
TEST(SyncBatchNorm, OneRankEqualsTorchBatchNorm) {
  torch::manual_seed(3);
  torch::nn::BatchNorm2d ours(5), torchs(5);
  {
    torch::NoGradGuard g;
    ours->weight.normal_();
    ours->bias.normal_();
    torchs->weight.copy_(ours->weight);
    torchs->bias.copy_(ours->bias);
  }
  for (int step = 0; step < 3; ++step) {
    torch::Tensor x = (at::randn({4, 5, 6, 7}) * 3 + 1.5).requires_grad_();
    torch::Tensor x2 = x.detach().clone().requires_grad_();
    torch::Tensor upstream = at::randn({4, 5, 6, 7});
    torch::Tensor y = dsir::sync_batch_norm(ours, x, dsir::MpiContext::get());
    torch::Tensor y2 = torchs->forward(x2);
    EXPECT_LT(max_rel_diff(y, y2), 1e-5) << "step " << step;
    (y * upstream).sum().backward();
    (y2 * upstream).sum().backward();
    EXPECT_LT(max_rel_diff(x.grad(), x2.grad()), 1e-5);
    EXPECT_LT(max_rel_diff(ours->weight.grad(), torchs->weight.grad()), 1e-5);
    EXPECT_LT(max_rel_diff(ours->bias.grad(), torchs->bias.grad()), 1e-5);
    EXPECT_LT(max_rel_diff(ours->running_mean, torchs->running_mean), 1e-6);
    EXPECT_LT(max_rel_diff(ours->running_var, torchs->running_var), 1e-6);
    EXPECT_EQ(ours->num_batches_tracked.item<int64_t>(), torchs->num_batches_tracked.item<int64_t>());
  }
}

TEST(Device, CudaWithoutGpuIsAConfigErrorNamingTheKey) {
  if (torch::cuda::is_available()) GTEST_SKIP() << "a CUDA device is present";
  try {
    dsir::choose_device("cuda", 0, "infer.device");
    FAIL() << "no error";
  } catch (const dsir::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("infer.device"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(dsir::choose_device("auto", 0, "infer.device").is_cpu());
}

// With one rank the all-reduce path still runs (same code as a job's) and changes nothing.
TEST(GradientReducer, OneRankKeepsGradients) {
  // As every stage does before its first step: left to LibTorch's lazy setup, the thread count
  // is settled inside the first step, whose conv4 gradient then differs from later ones by rounding.
  dsir::setup_torch_threads(1);
  torch::manual_seed(4);
  auto net = dsir::make_model("dsir");
  net->train();
  torch::Tensor x = at::randn({2, 1, 32, 32});
  net->forward(x).square().mean().backward();
  std::vector<torch::Tensor> plain;
  for (auto& p : net->parameters()) {
    plain.push_back(p.grad().clone());
    p.mutable_grad().zero_();
  }
  dsir::GradientReducer reducer(dsir::MpiContext::get(), net->parameters(), 256);
  EXPECT_EQ(reducer.transport(), "mpi-host");
  EXPECT_GT(reducer.bucket_count(), 3u);
  reducer.begin_step();
  net->forward(x).square().mean().backward();
  reducer.finish_step();
  auto params = net->parameters();
  for (size_t i = 0; i < params.size(); ++i)
    EXPECT_TRUE(params[i].grad().equal(plain[i])) << "parameter " << i;
}

}  // namespace
