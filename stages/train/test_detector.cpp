// The detector (stages/train/models/detector_net.h): DECODE's loss against a direct evaluation of
// its two likelihoods, the targets it reads from point labels, the map it paints for the
// localizer, and a net that learns on that loss.
#include <gtest/gtest.h>
#include <torch/nn/module.h>
#include <torch/optim/adam.h>

#include <cmath>
#include <vector>

#include "pipeline/errors.h"
#include "stages/train/models/detector_net.h"
#include "stages/train/models/model_registry.h"

namespace {

constexpr double kPi = 3.14159265358979323846;

// Detections of N frames of h x w pixels with random values in the net's ranges.
dsir::Detections random_detections(int64_t n, int64_t h, int64_t w) {
  const torch::Tensor columns = at::arange(w).to(at::kFloat).add(0.5).view({1, 1, -1});
  const torch::Tensor rows = at::arange(h).to(at::kFloat).add(0.5).view({1, -1, 1});
  return {at::randn({n, h, w}) * 2 - 1, columns + at::rand({n, h, w}) * 2 - 1,
          rows + at::rand({n, h, w}) * 2 - 1, at::rand({n, h, w}) + 0.2, at::rand({n, h, w}) + 0.2};
}

TEST(DetectionLoss, TargetsAreThePointLabelsAtTheirSubpixelCentres) {
  torch::Tensor labels = at::zeros({2, 1, 16, 24});  // 2 x 3 camera pixels at x8
  labels[0][0][3][5] = 1;
  labels[0][0][15][23] = 2;  // Deep-STORM's labels count emitters that share a sub-pixel
  const dsir::EmitterTargets t = dsir::emitter_targets(labels, 8);
  EXPECT_EQ(t.xy.sizes(), (std::vector<int64_t>{2, 3, 2}));
  EXPECT_EQ(t.count[0].item<double>(), 3);
  EXPECT_EQ(t.count[1].item<double>(), 0);  // a frame without emitters: all padding
  EXPECT_EQ(t.valid.sum().item<double>(), 3);
  EXPECT_NEAR(t.xy[0][0][0].item<double>(), 5.5 / 8, 1e-6);  // x: column 5's centre in camera pixels
  EXPECT_NEAR(t.xy[0][0][1].item<double>(), 3.5 / 8, 1e-6);
  EXPECT_NEAR(t.xy[0][2][0].item<double>(), 23.5 / 8, 1e-6);
  EXPECT_NEAR(t.xy[0][2][1].item<double>(), 15.5 / 8, 1e-6);
  labels[1][0][2][2] = 0.37f;  // a heat map's value: no whole emitter
  EXPECT_THROW(dsir::emitter_targets(labels, 8), dsir::InputError);
}

// The loss as its header writes it, in double precision, one frame, pixel and emitter at a time.
TEST(DetectionLoss, EqualsTheCountAndMixtureLikelihoodsComputedDirectly) {
  torch::manual_seed(11);
  const dsir::Detections d = random_detections(3, 4, 5);
  torch::Tensor labels = at::zeros({3, 1, 32, 40});
  labels[0][0][1][2] = 1;
  labels[0][0][30][39] = 1;
  labels[0][0][17][8] = 2;
  labels[2][0][9][21] = 1;  // frame 1 has none
  const dsir::EmitterTargets t = dsir::emitter_targets(labels, 8);
  const double loss = dsir::detection_loss(d, t).item<double>();

  double expected = 0;
  for (int64_t f = 0; f < 3; ++f) {
    const auto logit = d.logit[f].flatten(), x = d.x[f].flatten(), y = d.y[f].flatten();
    const auto sx = d.sigma_x[f].flatten(), sy = d.sigma_y[f].flatten();
    std::vector<double> p(20);
    double mean = 0, variance = 0;
    for (int64_t k = 0; k < 20; ++k) {
      p[k] = 1 / (1 + std::exp(-logit[k].item<double>()));
      mean += p[k];
      variance += p[k] * (1 - p[k]);
    }
    const double n = t.count[f].item<double>();
    const double count_nll = 0.5 * (n - mean) * (n - mean) / variance + 0.5 * std::log(2 * kPi * variance);
    double mixture = 0;
    for (int64_t e = 0; e < static_cast<int64_t>(n); ++e) {
      const double ex = t.xy[f][e][0].item<double>(), ey = t.xy[f][e][1].item<double>();
      double likelihood = 0;
      for (int64_t k = 0; k < 20; ++k) {
        const double zx = (ex - x[k].item<double>()) / sx[k].item<double>();
        const double zy = (ey - y[k].item<double>()) / sy[k].item<double>();
        likelihood += p[k] / mean * std::exp(-0.5 * (zx * zx + zy * zy)) /
                      (2 * kPi * sx[k].item<double>() * sy[k].item<double>());
      }
      mixture += std::log(likelihood);
    }
    expected += std::max(n, 1.0) * count_nll - mixture;
  }
  EXPECT_NEAR(loss, expected / 3, 1e-4 * std::abs(expected / 3));
}

// One emitter at (1.3, 0.6) camera pixels in a 2x2-pixel frame: the loss falls as the pixel
// that holds it moves its guess onto it, and as the count of the probabilities comes to one.
TEST(DetectionLoss, IsLowerForTheRightPositionAndTheRightCount) {
  torch::Tensor labels = at::zeros({1, 1, 16, 16});
  labels[0][0][4][10] = 1;  // sub-pixel centre (10.5, 4.5) / 8 = (1.3125, 0.5625)
  const dsir::EmitterTargets t = dsir::emitter_targets(labels, 8);
  auto loss = [&](double x, double y, double logit_there, double logit_elsewhere) {
    dsir::Detections d{at::full({1, 2, 2}, logit_elsewhere), at::full({1, 2, 2}, 0.5),
                       at::full({1, 2, 2}, 0.5), at::full({1, 2, 2}, 0.2), at::full({1, 2, 2}, 0.2)};
    d.logit[0][0][1] = logit_there;
    d.x[0][0][1] = x;
    d.y[0][0][1] = y;
    return dsir::detection_loss(d, t).item<double>();
  };
  EXPECT_LT(loss(1.3125, 0.5625, 4, -4), loss(1.5, 0.5, 4, -4));
  EXPECT_LT(loss(1.5, 0.5, 4, -4), loss(1.8, 0.2, 4, -4));
  EXPECT_LT(loss(1.3125, 0.5625, 4, -4), loss(1.3125, 0.5625, 4, 0));    // three more expected
  EXPECT_LT(loss(1.3125, 0.5625, 4, -4), loss(1.3125, 0.5625, -4, -4));  // none expected
}

// Each pixel's probability lands as a unit Gaussian of the paint's sigma at its position: the
// map's mass is the probability and its centroid the position, and each sub-pixel holds the
// Gaussian's integral over it.
TEST(PaintDetections, EachPixelPaintsItsProbabilityAsAGaussianAtItsPosition) {
  const int64_t h = 5, w = 6;
  const torch::Tensor centres_x = at::arange(w).to(at::kFloat).add(0.5).expand({1, h, w}).clone();
  const torch::Tensor centres_y =
      at::arange(h).to(at::kFloat).add(0.5).view({h, 1}).expand({1, h, w}).clone();
  dsir::Detections d{at::full({1, h, w}, -30.0), centres_x, centres_y, at::ones({1, h, w}),
                     at::ones({1, h, w})};
  d.logit[0][2][3] = std::log(0.7 / 0.3);  // p 0.7
  d.x[0][2][3] = 3.5 + 0.83;               // most of a pixel right of the pixel's centre
  d.y[0][2][3] = 2.5 - 0.61;
  const double sigma = 1.3;
  const torch::Tensor map = dsir::paint_detections(d, 8, sigma)[0][0].to(at::kDouble);
  ASSERT_EQ(map.sizes(), (std::vector<int64_t>{h * 8, w * 8}));
  EXPECT_NEAR(map.sum().item<double>(), 0.7, 1e-4);
  const torch::Tensor cols = at::arange(w * 8, at::kDouble).add(0.5),
                      rows = at::arange(h * 8, at::kDouble).add(0.5);
  EXPECT_NEAR((map.sum(0) * cols).sum().item<double>() / 0.7, (3.5 + 0.83) * 8, 1e-3);
  EXPECT_NEAR((map.sum(1) * rows).sum().item<double>() / 0.7, (2.5 - 0.61) * 8, 1e-3);
  auto mass = [&](double centre, int64_t i) {
    return 0.5 * (std::erf((i + 1 - centre) / (std::sqrt(2.0) * sigma)) -
                  std::erf((i - centre) / (std::sqrt(2.0) * sigma)));
  };
  for (int64_t r : {12, 15, 16, 20})
    for (int64_t c : {30, 34, 35, 38})
      EXPECT_NEAR(map[r][c].item<double>(), 0.7 * mass((2.5 - 0.61) * 8, r) * mass((3.5 + 0.83) * 8, c), 1e-6)
          << r << ", " << c;
}

// Inference on a CPU paints pixel by pixel, only where each Gaussian reaches; training paints
// 3x3-pixel patches through col2im (differentiable, any device): the same maps.
TEST(PaintDetections, InferencePaintsTheMapThatTrainingPaints) {
  torch::manual_seed(13);
  const dsir::Detections d = random_detections(3, 5, 6);  // positions up to a pixel off, near edges too
  const torch::Tensor patches = dsir::paint_detections(d, 8, 1.0);
  torch::NoGradGuard no_grad;
  const torch::Tensor direct = dsir::paint_detections(d, 8, 1.0);
  EXPECT_EQ(direct.sizes(), patches.sizes());
  EXPECT_GT(patches.max().item<double>(), 0.05);
  // float32 rounding of the patches' centres and erf differences: ~1e-5 of the largest value.
  EXPECT_LT((direct - patches).abs().max().item<double>(), 1e-4 * patches.max().item<double>());
}

// forward() is the painted detections, at the input's size; the loss reaches every weight, and
// Adam on it fits one batch (a net that could not learn from it would not get below the start).
TEST(DetectorNet, PaintsItsDetectionsAndLearnsOnItsLoss) {
  torch::manual_seed(12);
  auto model = std::dynamic_pointer_cast<dsir::DetectorNetImpl>(dsir::make_model("detector"));
  ASSERT_TRUE(model);
  EXPECT_TRUE(model->has_own_loss());
  const torch::Tensor x = at::randn({4, 1, 48, 40});
  torch::Tensor labels = at::zeros({4, 1, 48, 40});
  for (int f = 0; f < 4; ++f)
    for (int k = 0; k < 3; ++k) labels[f][0][(7 * f + 13 * k) % 48][(5 * f + 11 * k + 3) % 40] = 1;
  {
    torch::NoGradGuard no_grad;
    model->eval();
    const torch::Tensor map = model->forward(x);
    EXPECT_EQ(map.sizes(), (std::vector<int64_t>{4, 1, 48, 40}));
    const dsir::Detections d = model->detect(x);
    EXPECT_EQ(d.logit.sizes(), (std::vector<int64_t>{4, 6, 5}));
    EXPECT_LT(
        (map - dsir::paint_detections(d, 8, dsir::DetectorNetImpl::kPaintSigma)).abs().max().item<double>(),
        1e-6);
    // An empty batch (a rank without frames in a step of synchronised BatchNorm) paints nothing.
    EXPECT_EQ(model->forward(at::zeros({0, 1, 48, 40})).sizes(), (std::vector<int64_t>{0, 1, 48, 40}));
    // Untrained, about 6 % of the pixels expected to hold an emitter (the head's starting bias).
    EXPECT_NEAR(d.logit.sigmoid().mean().item<double>(), 0.05, 0.04);
  }
  model->train();
  torch::optim::Adam adam(model->parameters(), torch::optim::AdamOptions(1e-3));
  double first = 0, last = 0;
  for (int step = 0; step < 200; ++step) {
    adam.zero_grad();
    const torch::Tensor loss = model->own_loss(x, labels);
    loss.backward();
    if (step == 0) {
      for (const auto& p : model->named_parameters())
        EXPECT_TRUE(p.value().grad().defined() && p.value().grad().abs().sum().item<double>() > 0) << p.key();
      first = loss.item<double>();
    }
    last = loss.item<double>();
    adam.step();
  }
  EXPECT_LT(last, first - 0.5 * std::abs(first)) << "first " << first << ", last " << last;
}

}  // namespace
