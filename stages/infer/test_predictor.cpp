// Batching and tiling of the predictor: tiles must not show (tiled = untiled within 1e-5 on a
// frame that fits both ways), the budget must decide batches and tiles, and per-frame BatchNorm
// must refuse tiles.
#include <ATen/ops/randn.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/grad_mode.h>
#include <torch/utils.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "pipeline/errors.h"
#include "stages/infer/predictor.h"
#include "stages/train/models/model_registry.h"
#include "stages/train/models/torch_setup.h"

namespace dsir {
namespace {

// DSIR's net with random weights and running statistics collected from random frames, so
// running BatchNorm is not the identity.
std::shared_ptr<EmitterNetImpl> model_with_running_stats() {
  setup_torch_threads(1);
  torch::manual_seed(3);
  auto model = make_model("dsir");
  model->train();
  {
    torch::NoGradGuard no_grad;
    for (int i = 0; i < 5; ++i) model->forward(at::randn({4, 1, 64, 64}));
  }
  model->set_bn_mode(BnMode::Running);
  return model;
}

ModelMeta meta() {
  ModelMeta m;
  m.arch = "dsir";
  m.bn_mode = "running";
  m.factor = 8;
  m.normalize = "per-frame";
  return m;
}

// Camera-like frames: a background with a few bright spots and Poisson-ish noise.
std::vector<float> frames(int n, int h, int w, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> noise(0, 4);
  std::uniform_real_distribution<float> pos(0, 1);
  std::vector<float> v(static_cast<size_t>(n) * h * w);
  for (int k = 0; k < n; ++k) {
    float* f = v.data() + static_cast<size_t>(k) * h * w;
    for (int i = 0; i < h * w; ++i) f[i] = 100 + noise(rng);
    for (int s = 0; s < 6; ++s) {
      const float x = pos(rng) * w, y = pos(rng) * h;
      for (int r = 0; r < h; ++r)
        for (int c = 0; c < w; ++c)
          f[r * w + c] +=
              300.0f * std::exp(-((c + 0.5f - x) * (c + 0.5f - x) + (r + 0.5f - y) * (r + 0.5f - y)) / 2.0f);
    }
  }
  return v;
}

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double d = 0;
  for (size_t i = 0; i < a.size(); ++i) d = std::max(d, std::abs(double(a[i]) - double(b[i])));
  return d;
}

double max_abs(const std::vector<float>& a) {
  double m = 0;
  for (float v : a) m = std::max(m, std::abs(double(v)));
  return m;
}

PredictorOptions opts(int tile, int overlap, double memory_mb = 4096, int batch = 8) {
  PredictorOptions o;
  o.bn = "checkpoint";
  o.tile_size = tile;
  o.tile_overlap = overlap;
  o.memory_mb = memory_mb;
  o.batch_size = batch;
  return o;
}

TEST(Predictor, TiledMatchesUntiledWithin1e5) {
  auto model = model_with_running_stats();
  const int h = 40, w = 40;  // 320 x 320 upscaled: fits whole, and splits into tiles
  const auto raw = frames(2, h, w, 1);
  Predictor whole(model, meta(), opts(0, 8));
  const FramePlan untiled = whole.plan(h, w);
  ASSERT_FALSE(untiled.tiled());
  std::vector<float> a(2 * 320 * 320), b(a.size());
  whole.predict(raw.data(), 2, h, w, untiled, a.data());
  ASSERT_GT(max_abs(a), 0.1) << "the network output is trivial; the comparison would prove nothing";

  // Cores of 16 raw pixels (3 x 3 tiles, the last ones partial) and of 12 (4 x 4), with 8 and 4
  // raw pixels of context.
  for (auto [tile, overlap, tiles] : {std::tuple{16, 8, 9}, std::tuple{12, 4, 16}, std::tuple{16, 3, 9}}) {
    Predictor tiled(model, meta(), opts(tile, overlap));
    const FramePlan plan = tiled.plan(h, w);
    ASSERT_TRUE(plan.tiled());
    EXPECT_EQ(plan.tiles, tiles);
    EXPECT_EQ(plan.tile, tile * 8);
    EXPECT_EQ(plan.overlap, overlap * 8);
    tiled.predict(raw.data(), 2, h, w, plan, b.data());
    EXPECT_LE(max_abs_diff(a, b), 1e-5)
        << "tile " << tile << ", overlap " << overlap << ", outputs up to " << max_abs(a);
  }
}

// The comparison above is sensitive: without context the seams show.
TEST(Predictor, TilesWithoutOverlapShowSeams) {
  auto model = model_with_running_stats();
  const auto raw = frames(1, 40, 40, 2);
  Predictor whole(model, meta(), opts(0, 8)), tiled(model, meta(), opts(16, 0));
  std::vector<float> a(320 * 320), b(a.size());
  whole.predict(raw.data(), 1, 40, 40, whole.plan(40, 40), a.data());
  tiled.predict(raw.data(), 1, 40, 40, tiled.plan(40, 40), b.data());
  EXPECT_GT(max_abs_diff(a, b), 1e-3);
}

TEST(Predictor, BudgetAndFrameSizeDecideBatchesAndTiles) {
  auto model = model_with_running_stats();
  const double mib = 1024.0 * 1024.0;
  // 16 x 16 frames (128 x 128 upscaled) batch up to batch_size, within the budget.
  const double px16 = 128.0 * 128.0;
  const double three_and_a_half =
      (3.5 * Predictor::kBytesPerPixel + Predictor::kFrameBytesPerPixel) * px16 / mib;
  EXPECT_EQ(Predictor(model, meta(), opts(0, 8, 4096, 8)).plan(16, 16).frames_per_call, 8);
  EXPECT_EQ(Predictor(model, meta(), opts(0, 8, three_and_a_half, 8)).plan(16, 16).frames_per_call, 3);
  EXPECT_EQ(Predictor(model, meta(), opts(0, 8, three_and_a_half, 2)).plan(16, 16).frames_per_call, 2);
  // Through LibTorch, frames of kCallPixels or more go one per call, whatever the budget; the
  // fused kernel takes a call's frames one by one, so the budget alone decides.
  PredictorOptions libtorch = opts(0, 8, 4096, 8);
  libtorch.engine = "libtorch";
  EXPECT_EQ(Predictor(model, meta(), libtorch).plan(40, 40).frames_per_call, 1);
  EXPECT_EQ(Predictor(model, meta(), libtorch).plan(32, 32).frames_per_call, 2);
  Predictor fused(model, meta(), opts(0, 8, 4096, 8));
  if (fused.engine() == "fused-cpu") {
    EXPECT_EQ(fused.plan(40, 40).frames_per_call, 8);
  }

  // 40 x 40 frames with room for half a frame: the largest tile that fits, and the result still
  // matches the whole frame.
  const double px40 = 320.0 * 320.0;
  const double half = 0.5 * (Predictor::kBytesPerPixel + Predictor::kFrameBytesPerPixel) * px40 / mib;
  Predictor small(model, meta(), opts(0, 4, half));
  const FramePlan plan = small.plan(40, 40);
  ASSERT_TRUE(plan.tiled());
  EXPECT_GE(plan.tiles, 4);
  EXPECT_EQ(plan.tile % Predictor::kAlignment, 0);
  const double ext = plan.tile + 2.0 * plan.overlap;
  EXPECT_LE(ext * ext * Predictor::kBytesPerPixel + px40 * Predictor::kTiledFrameBytesPerPixel, half * mib);
  const auto raw = frames(1, 40, 40, 3);
  Predictor whole(model, meta(), opts(0, 8));
  std::vector<float> a(320 * 320), b(a.size());
  whole.predict(raw.data(), 1, 40, 40, whole.plan(40, 40), a.data());
  small.predict(raw.data(), 1, 40, 40, plan, b.data());
  EXPECT_LE(max_abs_diff(a, b), 1e-5);
  // Budgets too small for the overlap, or for the frame buffers themselves.
  EXPECT_THROW(Predictor(model, meta(), opts(0, 8, 0.3 * half)).plan(40, 40), ConfigError);
  EXPECT_THROW(Predictor(model, meta(), opts(0, 8, 1)).plan(512, 512), ConfigError);
}

TEST(Predictor, PerFrameBatchNormRefusesTiles) {
  auto model = model_with_running_stats();
  PredictorOptions o = opts(16, 8);
  o.bn = "per-frame";
  Predictor p(model, meta(), o);
  EXPECT_EQ(p.bn_mode(), BnMode::PerFrame);
  try {
    p.plan(40, 40);
    FAIL() << "tiles with per-frame BatchNorm were accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("infer.tile_size"), std::string::npos) << e.what();
  }
  // Automatic tiling is refused too, naming the budget and what would fit.
  o = opts(0, 8, 1);
  o.bn = "per-frame";
  try {
    Predictor(model, meta(), o).plan(40, 40);
    FAIL() << "a frame over budget was accepted with per-frame BatchNorm";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("infer.memory_mb"), std::string::npos) << e.what();
  }
  // A tile as large as the frame is no tiling.
  o = opts(40, 8);
  o.bn = "per-frame";
  EXPECT_FALSE(Predictor(model, meta(), o).plan(40, 40).tiled());
}

// Whole frames in batches agree with one frame at a time up to float rounding (not bit for bit:
// that is why the frames per call are part of a shard's identity).
TEST(Predictor, BatchesAgreeWithSingleFramesToRounding) {
  auto model = model_with_running_stats();
  const auto raw = frames(5, 24, 24, 4);
  const size_t px = 192 * 192;
  std::vector<float> one(5 * px), batched(5 * px);
  for (auto bn : {"running", "per-frame"}) {
    PredictorOptions o1 = opts(0, 8, 4096, 1), o3 = opts(0, 8, 4096, 3);
    o1.bn = o3.bn = bn;
    Predictor p1(model, meta(), o1), p3(model, meta(), o3);
    ASSERT_EQ(p3.plan(24, 24).frames_per_call, 3);
    p1.predict(raw.data(), 5, 24, 24, p1.plan(24, 24), one.data());
    p3.predict(raw.data(), 5, 24, 24, p3.plan(24, 24), batched.data());
    EXPECT_LE(max_abs_diff(one, batched), 1e-6 * std::max(1.0, max_abs(one))) << bn;
  }
}

TEST(Predictor, RejectsTilesOffThePoolingGrid) {
  auto model = model_with_running_stats();
  ModelMeta m = meta();
  m.factor = 4;  // a 3-pixel tile is 12 upscaled pixels: not on the 8-pixel grid
  EXPECT_THROW(Predictor(model, m, opts(3, 2)).plan(40, 40), ConfigError);
  EXPECT_THROW(Predictor(model, m, opts(4, 1)).plan(40, 40), ConfigError);  // overlap 4
  EXPECT_TRUE(Predictor(model, m, opts(4, 2)).plan(40, 40).tiled());
}

// The fused CPU kernel (engine auto on an AVX2 CPU) and LibTorch give the same maps through the
// whole predictor (upscale, batches), in both BatchNorm modes; `fused` where it cannot apply is a
// ConfigError naming the key.
TEST(Predictor, FusedKernelAgreesWithLibTorch) {
  auto model = model_with_running_stats();
  const auto raw = frames(3, 24, 32, 5);
  const size_t px = 192 * 256;
  for (auto bn : {"running", "per-frame"}) {
    PredictorOptions fused = opts(0, 8, 4096, 2), plain = fused;
    fused.bn = plain.bn = bn;
    plain.engine = "libtorch";
    Predictor pf(model, meta(), fused), pl(model, meta(), plain);
    EXPECT_EQ(pl.engine(), "libtorch");
    if (!DsirCpuKernel::supported()) GTEST_SKIP() << "no AVX2/FMA: the fused kernel is not used here";
    ASSERT_EQ(pf.engine(), "fused-cpu");
    std::vector<float> a(3 * px), b(3 * px);
    pf.predict(raw.data(), 3, 24, 32, pf.plan(24, 32), a.data());
    pl.predict(raw.data(), 3, 24, 32, pl.plan(24, 32), b.data());
    EXPECT_GT(max_abs(b), 0.1) << bn;
    EXPECT_LE(max_abs_diff(a, b), 1e-4 * std::max(1.0, max_abs(b))) << bn;
  }
  PredictorOptions o = opts(0, 8);
  o.engine = "fused";
  o.config_section = "predict";
  try {
    Predictor(make_model("deepstorm"), meta(), o);
    FAIL() << "the fused kernel does not run the deepstorm net";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("predict.engine"), std::string::npos) << e.what();
  }
}

// infer.precision bfloat16: LibTorch's convolutions in bfloat16, so the fused float32 kernel steps
// aside under engine auto and refuses under engine fused; the maps agree with float32's to
// bfloat16's rounding.
TEST(Predictor, BFloat16RunsLibTorchAndAgreesToItsPrecision) {
  auto model = model_with_running_stats();
  const auto raw = frames(2, 24, 32, 7);
  const size_t px = 192 * 256;
  PredictorOptions single = opts(0, 8, 4096, 2), half = single;
  half.precision = "bfloat16";
  std::vector<float> a(2 * px), b(2 * px);
  {
    Predictor p(model, meta(), single);
    p.predict(raw.data(), 2, 24, 32, p.plan(24, 32), a.data());
  }
  Predictor p(model, meta(), half);
  EXPECT_EQ(p.engine(), "libtorch");
  p.predict(raw.data(), 2, 24, 32, p.plan(24, 32), b.data());
  EXPECT_GT(max_abs(a), 0.1);
  EXPECT_GT(max_abs_diff(a, b), 1e-6 * max_abs(a));
  EXPECT_LE(max_abs_diff(a, b), 0.05 * max_abs(a));
  half.engine = "fused";
  try {
    Predictor(model, meta(), half);
    FAIL() << "the fused kernel computes in float32";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("float32"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace dsir
