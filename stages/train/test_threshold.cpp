// ThresholdScores: the counts per candidate threshold against matching each kept set by hand, and
// the choice of the best one.
#include <gtest/gtest.h>

#include <algorithm>
#include <limits>

#include "stages/train/threshold.h"

namespace {

dsir::Emitter at(double x, double y, double mass = std::numeric_limits<double>::quiet_NaN()) {
  dsir::Emitter e;
  e.x_nm = x;
  e.y_nm = y;
  e.confidence = mass;
  return e;
}

TEST(ThresholdScores, CountsEachCandidateAndPrefersTheHigherThresholdOnATie) {
  const auto& c = dsir::ThresholdScores::candidates();
  ASSERT_TRUE(std::is_sorted(c.begin(), c.end()));
  dsir::ThresholdScores scores;
  // Item 1 (1000 x 1000 nm): three emitters found with mass 0.6 (20 nm off), one missed, and one
  // spurious localization of mass 0.06; an emitter outside the item does not count.
  scores.add({at(100, 100, 0.6), at(520, 500, 0.6), at(900, 120, 0.6), at(300, 700, 0.06)},
             {at(100, 120), at(500, 500), at(900, 100), at(700, 700), at(1200, 50)}, 1000, 1000);
  // Item 2: one emitter found with mass 0.12 and one localization 80 nm away from anything.
  scores.add({at(50, 50, 0.12), at(400, 480, 0.9)}, {at(60, 50), at(400, 400)}, 1000, 1000);
  for (size_t k = 0; k < c.size(); ++k) {
    // By hand: kept localizations and the matches among them (50 nm).
    double tp = 0, fp = 0;
    if (c[k] <= 0.6) tp += 3;
    if (c[k] <= 0.06) fp += 1;
    if (c[k] <= 0.12) tp += 1;
    if (c[k] <= 0.9) fp += 1;
    const double fn = 6 - tp;
    EXPECT_EQ(scores.counts()[3 * k], tp) << c[k];
    EXPECT_EQ(scores.counts()[3 * k + 1], fp) << c[k];
    EXPECT_EQ(scores.counts()[3 * k + 2], fn) << c[k];
    EXPECT_DOUBLE_EQ(scores.jaccard(k), tp / (tp + fp + fn)) << c[k];
  }
  EXPECT_EQ(scores.emitters(), 6u);
  // Best: every candidate in (0.06, 0.12] keeps 4 true and 1 false (JI 4/7); the higher one wins.
  const size_t best = scores.best();
  EXPECT_GT(c[best], 0.06);
  EXPECT_LE(c[best], 0.12);
  EXPECT_TRUE(best + 1 == c.size() || c[best + 1] > 0.12);
  EXPECT_DOUBLE_EQ(scores.jaccard(best), 4.0 / 7.0);
}

TEST(ThresholdScores, CountsSumOverRanksAsOverItems) {
  dsir::ThresholdScores all, a, b;
  const std::vector<dsir::Emitter> l1{at(10, 10, 0.2)}, t1{at(15, 10)}, l2{at(500, 500, 0.08)},
      t2{at(900, 900)};
  all.add(l1, t1, 1000, 1000);
  all.add(l2, t2, 1000, 1000);
  a.add(l1, t1, 1000, 1000);
  b.add(l2, t2, 1000, 1000);
  for (size_t i = 0; i < a.counts().size(); ++i) a.counts()[i] += b.counts()[i];
  EXPECT_EQ(a.counts(), all.counts());
  EXPECT_EQ(a.best(), all.best());
}

}  // namespace
