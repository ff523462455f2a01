// upscale_batch (DSIR's preprocessing as matrix products on the network's device) against the
// upscale stage's upscale_frame, frame by frame: sizes with odd sides, every normalisation, and a
// constant frame.
#include <ATen/ops/from_blob.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "stages/train/models/batch_upscale.h"

namespace {

using dsir::Normalization;

TEST(BatchUpscale, MatchesUpscaleFrameForEveryNormalisation) {
  std::mt19937 rng(5);
  std::poisson_distribution<int> photons(120);
  for (auto [h, w, f] :
       std::vector<std::tuple<int, int, int>>{{26, 26, 8}, {7, 13, 8}, {64, 40, 4}, {1, 5, 2}}) {
    const int n = 3;
    std::vector<float> raw(static_cast<size_t>(n * h * w));
    for (auto& v : raw) v = static_cast<float>(100 + photons(rng));
    std::fill(raw.begin() + h * w, raw.begin() + 2 * h * w, 250.0f);  // frame 1 constant
    for (auto norm : {Normalization::PerFrame, Normalization::Global, Normalization::None}) {
      const torch::Tensor got =
          dsir::upscale_batch(at::from_blob(raw.data(), {n, h, w}, torch::kFloat), f, norm, 180.0, 40.0)
              .contiguous();
      ASSERT_EQ(got.sizes(), (std::vector<int64_t>{n, 1, h * f, w * f}));
      const size_t up = static_cast<size_t>(h * f * w * f);
      std::vector<float> expected(up);
      double worst = 0;
      for (int k = 0; k < n; ++k) {
        dsir::upscale_frame(raw.data() + static_cast<size_t>(k * h * w), h, w, f, norm, 180.0, 40.0,
                            expected.data());
        const float* g = got.data_ptr<float>() + k * up;
        for (size_t i = 0; i < up; ++i) {
          const double scale =
              norm == Normalization::None ? std::max(1.0, std::abs(double(expected[i]))) : 1.0;
          worst = std::max(worst, std::abs(double(g[i]) - expected[i]) / scale);
        }
      }
      EXPECT_LT(worst, 1e-5) << h << "x" << w << " x" << f << " normalisation " << static_cast<int>(norm);
    }
  }
}

}  // namespace
