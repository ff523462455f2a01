// LocalizationScores: the counts per (threshold, emitter mass) pair against matching each set of
// localizations counted by hand, and the choice of the best pair.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "stages/train/threshold.h"

namespace {

using dsir::LocalizationScores;

dsir::Emitter at(double x, double y) {
  dsir::Emitter e;
  e.x_nm = x;
  e.y_nm = y;
  return e;
}

dsir::Peak peak(double x, double y, double mass, double excess_variance_nm2 = 0) {
  dsir::Peak p;
  p.x_nm = x;
  p.y_nm = y;
  p.mass = mass;
  p.excess_variance_nm2 = excess_variance_nm2;
  return p;
}

// Localizations a peak of `mass` gives at emitter mass `unit` (the rule of LocalizeOptions).
double copies(double mass, double unit) {
  return unit > 0 ? std::clamp(std::round(mass / unit), 1.0, double(dsir::kMaxEmittersPerPeak)) : 1.0;
}

TEST(LocalizationScores, CountsEachPairAndPrefersTheHigherThresholdOnATie) {
  const auto& c = LocalizationScores::thresholds();
  const auto& u = LocalizationScores::emitter_masses();
  ASSERT_TRUE(std::is_sorted(c.begin(), c.end()));
  ASSERT_TRUE(std::is_sorted(u.begin(), u.end()));
  ASSERT_EQ(u.front(), 0.0);
  LocalizationScores scores;
  // Item 1 (1000 x 1000 nm): three emitters found by peaks of mass 0.6 (20 nm off), one missed, and
  // one spurious peak of mass 0.06; an emitter outside the item does not count. Peaks without
  // excess spread put all their localizations on one point: one can match, the others are false.
  scores.add({peak(100, 100, 0.6), peak(520, 500, 0.6), peak(900, 120, 0.6), peak(300, 700, 0.06)},
             {at(100, 120), at(500, 500), at(900, 100), at(700, 700), at(1200, 50)}, 1000, 1000);
  // Item 2: one emitter found by a peak of mass 0.12 and one peak 80 nm away from anything.
  scores.add({peak(50, 50, 0.12), peak(400, 480, 0.9)}, {at(60, 50), at(400, 400)}, 1000, 1000);
  for (size_t k = 0; k < c.size(); ++k)
    for (size_t m = 0; m < u.size(); ++m) {
      double tp = 0, fp = 0;
      if (c[k] <= 0.6) {
        tp += 3;
        fp += 3 * (copies(0.6, u[m]) - 1);
      }
      if (c[k] <= 0.06) fp += copies(0.06, u[m]);
      if (c[k] <= 0.12) {
        tp += 1;
        fp += copies(0.12, u[m]) - 1;
      }
      if (c[k] <= 0.9) fp += copies(0.9, u[m]);
      const double fn = 6 - tp;
      const size_t i = 3 * (k * u.size() + m);
      EXPECT_EQ(scores.counts()[i], tp) << c[k] << " " << u[m];
      EXPECT_EQ(scores.counts()[i + 1], fp) << c[k] << " " << u[m];
      EXPECT_EQ(scores.counts()[i + 2], fn) << c[k] << " " << u[m];
      EXPECT_DOUBLE_EQ(scores.jaccard(k, m), tp / (tp + fp + fn)) << c[k] << " " << u[m];
    }
  EXPECT_EQ(scores.emitters(), 6u);
  // Best: every threshold in (0.06, 0.12] with one localization per peak keeps 4 true and 1 false
  // (JI 4/7); so does an emitter mass above 1.2 (0.9 / 1.25 rounds to 1 too): the higher threshold
  // wins, then one per peak.
  const auto [t, m] = scores.best();
  EXPECT_GT(c[t], 0.06);
  EXPECT_LE(c[t], 0.12);
  EXPECT_TRUE(t + 1 == c.size() || c[t + 1] > 0.12);
  EXPECT_EQ(m, 0u);
  EXPECT_DOUBLE_EQ(scores.jaccard(t, m), 4.0 / 7.0);
}

// Two emitters 60 nm apart along x share one peak of twice an emitter's mass, whose window spreads
// 30² nm² more along x than across: split in two, the localizations land on both emitters.
TEST(LocalizationScores, APeakHoldingTwoEmittersIsBestSplitInTwo) {
  const auto& c = LocalizationScores::thresholds();
  const auto& u = LocalizationScores::emitter_masses();
  LocalizationScores scores;
  scores.add({peak(500, 500, 1.0, 900)}, {at(470, 500), at(530, 500)}, 1000, 1000);
  const size_t one_per_peak = 0;
  EXPECT_DOUBLE_EQ(scores.jaccard(0, one_per_peak), 0.5);
  for (size_t m = 1; m < u.size(); ++m) {
    // n points spaced by sqrt(12 * 900 / (n² - 1)): n = 2 on both emitters, n = 3 one too many.
    const double n = copies(1.0, u[m]), expected = n == 1 ? 0.5 : n == 2 ? 1.0 : 2.0 / (n == 3 ? 3 : 4);
    EXPECT_DOUBLE_EQ(scores.jaccard(0, m), expected) << u[m];
  }
  // JI 1 at emitter masses 0.5 and 0.6 and every threshold up to the peak's mass: the highest
  // threshold and the larger mass win the tie.
  const auto [t, m] = scores.best();
  EXPECT_EQ(c[t], 1.0);
  EXPECT_EQ(u[m], 0.6);
  EXPECT_DOUBLE_EQ(scores.jaccard(t, m), 1.0);
}

TEST(LocalizationScores, CountsSumOverRanksAsOverItems) {
  LocalizationScores all, a, b;
  const std::vector<dsir::Peak> l1{peak(10, 10, 0.2)}, l2{peak(500, 500, 0.08)};
  const std::vector<dsir::Emitter> t1{at(15, 10)}, t2{at(900, 900)};
  all.add(l1, t1, 1000, 1000);
  all.add(l2, t2, 1000, 1000);
  a.add(l1, t1, 1000, 1000);
  b.add(l2, t2, 1000, 1000);
  for (size_t i = 0; i < a.counts().size(); ++i) a.counts()[i] += b.counts()[i];
  EXPECT_EQ(a.counts(), all.counts());
  EXPECT_EQ(a.best(), all.best());
}

}  // namespace
