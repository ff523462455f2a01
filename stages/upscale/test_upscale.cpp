#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <set>
#include <tuple>

#include "pipeline/h5store.h"
#include "stages/upscale/upscale.h"
#include "tests/shared_data.h"

namespace {

const std::string kReference = std::string(DSIR_SHARED_DIR) + "/reference/dsir/reference_26px.h5";

// DSIR's preprocessing on its reference frame: skimage resize (order 1, mode 'reflect') + z-score,
// computed by DSIR's own Python code, must match within 1e-5.
TEST(Upscale, MatchesDsirPreprocessingOnReferenceFrame) {
  DSIR_NEED_SHARED_FILE(kReference);
  auto f = dsir::h5::File::open(kReference);
  const auto raw16 = f.read<float>("/raw");
  const auto expected = f.read<float>("/upscaled");
  ASSERT_EQ(raw16.size(), 26u * 26u);
  ASSERT_EQ(expected.size(), 208u * 208u);
  std::vector<float> out(208 * 208);
  dsir::upscale_frame(raw16.data(), 26, 26, 8, dsir::Normalization::PerFrame, 0, 1, out.data());
  double worst = 0;
  for (size_t i = 0; i < out.size(); ++i) worst = std::max(worst, std::abs(double(out[i]) - expected[i]));
  EXPECT_LT(worst, 1e-5);
}

// Independent computation: each output pixel (r, c) samples the input at
// y = (r + 0.5)/f - 0.5, x = (c + 0.5)/f - 0.5 (skimage's pixel-centre mapping), interpolated with
// the textbook bilinear formula in double precision over an input mirrored about its edge pixels
// (numpy 'reflect'). Checked on a non-square 5x7 frame (x3) and on 64x64 -> 512x512 (x8).
class ResizeFormula : public ::testing::TestWithParam<std::tuple<int, int, int>> {};
TEST_P(ResizeFormula, EqualsDirectBilinearFormula) {
  const auto [h, w, f] = GetParam();
  std::vector<float> in(h * w);
  for (int i = 0; i < h * w; ++i) in[i] = static_cast<float>((i * 37) % 11) + 0.25f * i;
  std::vector<float> out(h * f * w * f);
  dsir::resize_bilinear(in.data(), h, w, f, out.data());
  auto px = [&](int r, int c) {
    auto mirror = [](int i, int n) { return i < 0 ? -i : (i >= n ? 2 * (n - 1) - i : i); };
    return double(in[mirror(r, h) * w + mirror(c, w)]);
  };
  for (int r = 0; r < h * f; ++r)
    for (int c = 0; c < w * f; ++c) {
      const double y = (r + 0.5) / f - 0.5, x = (c + 0.5) / f - 0.5;
      const int y0 = int(std::floor(y)), x0 = int(std::floor(x));
      const double dy = y - y0, dx = x - x0;
      const double v = (1 - dy) * ((1 - dx) * px(y0, x0) + dx * px(y0, x0 + 1)) +
                       dy * ((1 - dx) * px(y0 + 1, x0) + dx * px(y0 + 1, x0 + 1));
      ASSERT_NEAR(out[r * w * f + c], v, 1e-4) << "at " << r << "," << c;
    }
}
INSTANTIATE_TEST_SUITE_P(Sizes, ResizeFormula,
                         ::testing::Values(std::make_tuple(5, 7, 3), std::make_tuple(64, 64, 8),
                                           std::make_tuple(26, 26, 8)));

// patch_origin(k) jumps straight to draws 2k+1 and 2k+2 of the SplitMix64 stream; the stream
// drawn in order (as patch_origins drew it before, and as existing upscaled.h5 files hold) gives
// the same origins.
TEST(Patches, EachOriginEqualsTheStreamDrawnInOrder) {
  const uint64_t seed = 3, frame = 10;
  uint64_t state = seed * 0x9e3779b97f4a7c15ull ^ (frame + 1) * 0xbf58476d1ce4e5b9ull;
  auto next = [&state] {
    uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  };
  const auto all = dsir::patch_origins(seed, frame, 40, 30, 16, 50);
  for (uint64_t k = 0; k < 50; ++k) {
    const int r = static_cast<int>(next() % 25), c = static_cast<int>(next() % 15);
    EXPECT_EQ(dsir::patch_origin(seed, frame, 40, 30, 16, k), std::make_pair(r, c)) << "patch " << k;
    EXPECT_EQ(all[k], std::make_pair(r, c)) << "patch " << k;
  }
}

TEST(Patches, OriginsAreSeededAndInsideTheFrame) {
  const auto a = dsir::patch_origins(3, 10, 40, 30, 16, 50);
  EXPECT_EQ(a, dsir::patch_origins(3, 10, 40, 30, 16, 50));
  EXPECT_NE(a, dsir::patch_origins(3, 11, 40, 30, 16, 50));
  std::set<int> rows;
  for (const auto& [r, c] : a) {
    EXPECT_GE(r, 0);
    EXPECT_LE(r, 40 - 16);
    EXPECT_GE(c, 0);
    EXPECT_LE(c, 30 - 16);
    rows.insert(r);
  }
  EXPECT_GT(rows.size(), 10u);  // not degenerate
  std::vector<float> frame(6 * 5), out(2 * 3);
  for (int i = 0; i < 30; ++i) frame[i] = float(i);
  dsir::crop(frame.data(), 5, 2, 1, 2, 3, out.data());
  EXPECT_EQ(out, (std::vector<float>{11, 12, 13, 16, 17, 18}));
}

TEST(Upscale, ConstantFrameStaysConstantAndZscoreIsStandard) {
  std::vector<float> in(64 * 64, 5.0f), out(512 * 512);
  dsir::resize_bilinear(in.data(), 64, 64, 8, out.data());
  for (float v : out) ASSERT_FLOAT_EQ(v, 5.0f);
  for (size_t i = 0; i < in.size(); ++i) in[i] = float(i % 97);
  dsir::upscale_frame(in.data(), 64, 64, 8, dsir::Normalization::PerFrame, 0, 1, out.data());
  double s = 0, ss = 0;
  for (float v : out) {
    s += v;
    ss += double(v) * v;
  }
  EXPECT_NEAR(s / out.size(), 0.0, 1e-5);
  EXPECT_NEAR(ss / out.size(), 1.0, 1e-4);
}

// Gaussian heat-map labels: each emitter's map has unit mass, its centroid at the exact
// (sub-pixel) position and, per axis, the variance of a Gaussian of sigma integrated over unit
// pixels, sigma² + 1/12; maps of two emitters add; outside the field is dropped.
TEST(Labels, GaussianHasUnitMassTheExactCentreAndTheWidthAsked) {
  const double sigma = 1.5;
  std::vector<dsir::Emitter> e(1);
  e[0].x_nm = 403.1, e[0].y_nm = 311.7;  // upscaled pixel 12.5 nm: (32.248, 24.936) px
  std::vector<float> lab(64 * 64);
  EXPECT_EQ(dsir::render_labels(e, 8, 8, 8, 100, dsir::LabelMode::Gaussian, lab.data(), sigma), 0u);
  double m = 0, mx = 0, my = 0;
  for (int r = 0; r < 64; ++r)
    for (int c = 0; c < 64; ++c) {
      const double v = lab[r * 64 + c];
      m += v;
      mx += v * (c + 0.5);  // pixel c covers [c, c + 1)
      my += v * (r + 0.5);
    }
  EXPECT_NEAR(m, 1.0, 2e-4);
  mx /= m, my /= m;
  EXPECT_NEAR(mx, 403.1 / 12.5, 1e-3);
  EXPECT_NEAR(my, 311.7 / 12.5, 1e-3);
  double vx = 0;
  for (int r = 0; r < 64; ++r)
    for (int c = 0; c < 64; ++c) vx += lab[r * 64 + c] * (c + 0.5 - mx) * (c + 0.5 - mx);
  EXPECT_NEAR(vx / m, sigma * sigma + 1.0 / 12, 5e-3);
  // Another emitter adds its own unit mass; one outside is dropped.
  e.push_back(e[0]);
  e[1].x_nm = 150;
  e.push_back(e[0]);
  e[2].x_nm = 900;
  EXPECT_EQ(dsir::render_labels(e, 8, 8, 8, 100, dsir::LabelMode::Gaussian, lab.data(), sigma), 1u);
  double total = 0;
  for (float v : lab) total += v;
  EXPECT_NEAR(total, 2.0, 4e-4);
  EXPECT_EQ(dsir::parse_label_mode("gaussian"), dsir::LabelMode::Gaussian);
}

// add_gaussian, which the detector's painting shares: the weight scales the mass; cut at the edge
// of the image the mass kept is the product of the 1-D erf masses inside; the reach cuts the
// tails (whole pixels: within 1 sigma of 16.5, pixels 15-17, per axis [-1.5, 1.5] sigma); a
// centre far outside adds nothing.
TEST(Labels, AddGaussianWeighsCutsAtTheEdgeAndAtItsReach) {
  const int64_t side = 32;
  auto mass = [&](double fx, double fy, double sigma, double weight, double reach) {
    std::vector<float> img(side * side, 0.0f);
    dsir::add_gaussian(fx, fy, sigma, weight, reach, side, side, img.data());
    double m = 0;
    for (float v : img) m += v;
    return m;
  };
  EXPECT_NEAR(mass(16.3, 15.8, 1.0, 0.37, 6), 0.37, 1e-6);
  // Centred 0.4 px inside the left edge: the x-axis keeps P(X > -0.4 sigma).
  const double kept_x = 0.5 * (1 + std::erf(0.4 / std::sqrt(2.0)));
  EXPECT_NEAR(mass(0.4, 16.0, 1.0, 2.0, 6), 2.0 * kept_x, 1e-6);
  const double reached = std::erf(1.5 / std::sqrt(2.0));
  EXPECT_NEAR(mass(16.5, 16.5, 1.0, 1.0, 1), reached * reached, 1e-6);
  EXPECT_EQ(mass(-20, 16, 1.0, 1.0, 6), 0.0);
  EXPECT_EQ(mass(16, 40, 1.0, 1.0, 6), 0.0);
}

TEST(Labels, DsirTruncatesDeepStormCountsAndOutsideIsDropped) {
  std::vector<dsir::Emitter> e(4);
  e[0].x_nm = 12.4, e[0].y_nm = 37.6;  // upscaled px 12.5 nm: column 0, row 3
  e[1].x_nm = 12.6, e[1].y_nm = 37.4;  // column 1, row 2
  e[2].x_nm = 12.6, e[2].y_nm = 37.4;  // same pixel again
  e[3].x_nm = -1, e[3].y_nm = 10;      // outside
  std::vector<float> lab(16 * 16);
  EXPECT_EQ(dsir::render_labels(e, 2, 2, 8, 100, dsir::LabelMode::Dsir, lab.data()), 1u);
  EXPECT_EQ(lab[3 * 16 + 0], 1.0f);
  EXPECT_EQ(lab[2 * 16 + 1], 1.0f);
  double total = 0;
  for (float v : lab) total += v;
  EXPECT_EQ(total, 2.0);
  EXPECT_EQ(dsir::render_labels(e, 2, 2, 8, 100, dsir::LabelMode::DeepStorm, lab.data()), 1u);
  EXPECT_EQ(lab[2 * 16 + 1], 2.0f);
}

}  // namespace
