#include <gtest/gtest.h>

#include <array>
#include <cmath>

#include "stages/infer/localize.h"

namespace {

// A map with Gaussian blobs of given mass, centred at (x, y) in pixel units (pixel k spans [k, k+1)).
std::vector<float> blobs(int h, int w, const std::vector<std::array<double, 3>>& xym, double sigma = 0.8) {
  std::vector<float> m(h * w, 0.0f);
  for (const auto& b : xym) {
    double total = 0;
    std::vector<double> g(h * w);
    for (int r = 0; r < h; ++r)
      for (int c = 0; c < w; ++c) {
        const double dx = c + 0.5 - b[0], dy = r + 0.5 - b[1];
        g[r * w + c] = std::exp(-(dx * dx + dy * dy) / (2 * sigma * sigma));
        total += g[r * w + c];
      }
    for (int i = 0; i < h * w; ++i) m[i] += float(b[2] * g[i] / total);
  }
  return m;
}

TEST(Localize, FindsSeparatedEmittersAtSubPixelPositionsWithTheirMass) {
  const double px = 12.5;
  auto map = blobs(40, 40, {{10.3, 12.7, 1.0}, {28.6, 25.2, 0.9}});
  dsir::LocalizeOptions opt;
  auto found = dsir::localize(map.data(), 40, 40, px, 7, opt);
  ASSERT_EQ(found.size(), 2u);
  // Raster order: the upper blob first.
  EXPECT_NEAR(found[0].x_nm, 10.3 * px, 0.15 * px);
  EXPECT_NEAR(found[0].y_nm, 12.7 * px, 0.15 * px);
  EXPECT_NEAR(found[1].x_nm, 28.6 * px, 0.15 * px);
  EXPECT_NEAR(found[1].y_nm, 25.2 * px, 0.15 * px);
  // A 5x5 window holds nearly all of a sigma-0.8 blob.
  EXPECT_NEAR(found[0].confidence, 1.0, 0.05);
  EXPECT_NEAR(found[1].confidence, 0.9, 0.05);
  EXPECT_EQ(found[0].frame, 7);
}

// The centroid is taken on the map filtered by [1 2 1]/4: a checkerboard added to the map (the
// transposed convolution's pattern, here on a uniform base so that the map stays positive) does
// not move the position; on the map itself it would move it by ~0.1 px.
TEST(Localize, AddedCheckerboardDoesNotMovePositions) {
  for (double x : {10.2, 10.5, 10.8}) {
    auto clean = blobs(24, 24, {{x, 11.4, 1.0}}, 0.7);
    auto patterned = clean;
    for (int r = 0; r < 24; ++r)
      for (int c = 0; c < 24; ++c) {
        clean[r * 24 + c] += 0.01f;
        patterned[r * 24 + c] += 0.01f + ((r + c) % 2 ? 0.008f : -0.008f) + (c % 2 ? 0.002f : -0.002f);
      }
    auto a = dsir::localize(clean.data(), 24, 24, 1.0, 0, dsir::LocalizeOptions{});
    auto b = dsir::localize(patterned.data(), 24, 24, 1.0, 0, dsir::LocalizeOptions{});
    ASSERT_EQ(a.size(), 1u);
    ASSERT_EQ(b.size(), 1u);
    EXPECT_NEAR(b[0].x_nm, a[0].x_nm, 1e-4) << x;
    EXPECT_NEAR(b[0].y_nm, a[0].y_nm, 1e-4) << x;
  }
}

TEST(Localize, ThresholdDropsWeakPeaksAndEmptyMapsGiveNothing) {
  auto map = blobs(30, 30, {{8.5, 8.5, 1.0}, {20.5, 20.5, 0.1}});
  dsir::LocalizeOptions opt;
  opt.threshold = 0.3;
  EXPECT_EQ(dsir::localize(map.data(), 30, 30, 10, 0, opt).size(), 1u);
  opt.threshold = 0.05;
  EXPECT_EQ(dsir::localize(map.data(), 30, 30, 10, 0, opt).size(), 2u);
  std::vector<float> zeros(900, 0.0f);
  EXPECT_TRUE(dsir::localize(zeros.data(), 30, 30, 10, 0, opt).empty());
}

TEST(Localize, FlatPlateauGivesOnePeak) {
  std::vector<float> map(20 * 20, 0.0f);
  for (int r = 9; r <= 10; ++r)
    for (int c = 9; c <= 10; ++c) map[r * 20 + c] = 0.25f;
  auto found = dsir::localize(map.data(), 20, 20, 10, 0, {});
  ASSERT_EQ(found.size(), 1u);
  EXPECT_NEAR(found[0].x_nm, 100.0, 1e-9);  // centre of the 2x2 plateau: pixel edge 10
  EXPECT_NEAR(found[0].y_nm, 100.0, 1e-9);
  EXPECT_NEAR(found[0].confidence, 1.0, 1e-6);
}

// Two emitters 2.4 px apart (30 nm at 12.5 nm pixels) make one peak of twice an emitter's mass,
// longer along the line through them. With emitter_mass 1 it gives two localizations on that line,
// one near each emitter, each with half the mass; without (0), one at the middle. A lone emitter
// gives one localization either way, at the same place.
TEST(Localize, APeakOfTwoEmittersIsSplitAlongItsLongAxis) {
  const double px = 12.5;
  for (const double angle : {0.0, 0.5, 1.1, 2.4}) {
    const double cx = 15.3, cy = 14.6, half = 1.2, ux = std::cos(angle), uy = std::sin(angle);
    const auto map =
        blobs(30, 30, {{cx - half * ux, cy - half * uy, 1.0}, {cx + half * ux, cy + half * uy, 1.0}});
    dsir::LocalizeOptions one_per_peak;
    const auto merged = dsir::localize(map.data(), 30, 30, px, 0, one_per_peak);
    ASSERT_EQ(merged.size(), 1u) << angle;
    EXPECT_NEAR(merged[0].x_nm, cx * px, 0.2 * px);  // the 5x5 window cuts the pair unevenly
    EXPECT_NEAR(merged[0].y_nm, cy * px, 0.2 * px);
    EXPECT_NEAR(merged[0].confidence, 1.9, 0.1);  // the 5x5 window holds most of both
    dsir::LocalizeOptions split;
    split.emitter_mass = 1.0;
    const auto two = dsir::localize(map.data(), 30, 30, px, 0, split);
    ASSERT_EQ(two.size(), 2u) << angle;
    for (const auto& e : two) EXPECT_DOUBLE_EQ(e.confidence, merged[0].confidence / 2);
    // Symmetric about the peak's centroid, on the line through the emitters (within 0.1 rad), at
    // about their separation (the window and the [1 2 1] filter narrow the spread a little).
    EXPECT_NEAR(0.5 * (two[0].x_nm + two[1].x_nm), merged[0].x_nm, 1e-9);
    EXPECT_NEAR(0.5 * (two[0].y_nm + two[1].y_nm), merged[0].y_nm, 1e-9);
    const double dx = two[1].x_nm - two[0].x_nm, dy = two[1].y_nm - two[0].y_nm;
    EXPECT_NEAR(std::hypot(dx, dy), 2 * half * px, 0.3 * 2 * half * px) << angle;
    EXPECT_LT(std::abs(std::remainder(std::atan2(dy, dx) - angle, M_PI)), 0.1) << angle;
  }
  const auto lone = blobs(30, 30, {{12.3, 16.8, 1.0}});
  dsir::LocalizeOptions split;
  split.emitter_mass = 1.0;
  const auto a = dsir::localize(lone.data(), 30, 30, px, 0, split);
  const auto b = dsir::localize(lone.data(), 30, 30, px, 0, {});
  ASSERT_EQ(a.size(), 1u);
  ASSERT_EQ(b.size(), 1u);
  EXPECT_EQ(a[0].x_nm, b[0].x_nm);
  EXPECT_EQ(a[0].y_nm, b[0].y_nm);
  EXPECT_EQ(a[0].confidence, b[0].confidence);
  // At most kMaxEmittersPerPeak from one peak, however heavy.
  split.emitter_mass = 0.01;
  EXPECT_EQ(dsir::localize(lone.data(), 30, 30, px, 0, split).size(), size_t(dsir::kMaxEmittersPerPeak));
}

}  // namespace
