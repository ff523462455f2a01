#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <numeric>
#include <random>
#include <tuple>
#include <vector>

#include "pipeline/errors.h"
#include "stages/evaluate/metrics.h"

namespace dsir::metrics {
namespace {

constexpr Matching kBoth[] = {Matching::Greedy, Matching::Hungarian};

Point pt(int64_t frame, double x, double y) { return Point{frame, x, y}; }

// ---- reference implementations for the randomized tests -------------------------------------

struct RefResult {
  uint64_t tp = 0;
  double sum_sq = 0;
};

// Textbook greedy over all pairs of one frame (frame 0 assumed), no grid.
RefResult reference_greedy(const std::vector<Point>& pred, const std::vector<Point>& truth, double tol) {
  std::vector<std::tuple<double, size_t, size_t>> pairs;
  for (size_t i = 0; i < pred.size(); ++i) {
    for (size_t j = 0; j < truth.size(); ++j) {
      const double d = std::hypot(pred[i].x_nm - truth[j].x_nm, pred[i].y_nm - truth[j].y_nm);
      if (d <= tol) pairs.emplace_back(d, i, j);
    }
  }
  std::sort(pairs.begin(), pairs.end());
  std::vector<bool> pu(pred.size()), tu(truth.size());
  RefResult r;
  for (const auto& [d, i, j] : pairs) {
    if (pu[i] || tu[j]) continue;
    pu[i] = tu[j] = true;
    ++r.tp;
    r.sum_sq += d * d;
  }
  return r;
}

// Maximum-cardinality bipartite matching (Kuhn's augmenting paths), ignoring distances.
uint64_t reference_max_matching(const std::vector<Point>& pred, const std::vector<Point>& truth, double tol) {
  std::vector<std::vector<size_t>> adj(pred.size());
  for (size_t i = 0; i < pred.size(); ++i) {
    for (size_t j = 0; j < truth.size(); ++j) {
      if (std::hypot(pred[i].x_nm - truth[j].x_nm, pred[i].y_nm - truth[j].y_nm) <= tol) adj[i].push_back(j);
    }
  }
  constexpr size_t kFree = std::numeric_limits<size_t>::max();
  std::vector<size_t> owner(truth.size(), kFree);
  std::vector<bool> seen;
  std::function<bool(size_t)> augment = [&](size_t i) {
    for (size_t j : adj[i]) {
      if (seen[j]) continue;
      seen[j] = true;
      if (owner[j] == kFree || augment(owner[j])) {
        owner[j] = i;
        return true;
      }
    }
    return false;
  };
  uint64_t n = 0;
  for (size_t i = 0; i < pred.size(); ++i) {
    seen.assign(truth.size(), false);
    if (augment(i)) ++n;
  }
  return n;
}

// Exhaustive search of one small frame: most pairs, then least total distance.
RefResult brute_force_optimum(const std::vector<Point>& pred, const std::vector<Point>& truth, double tol) {
  struct Best {
    uint64_t tp = 0;
    double total = 0, sum_sq = 0;
  } best;
  std::vector<bool> used(truth.size());
  std::function<void(size_t, uint64_t, double, double)> dfs = [&](size_t i, uint64_t tp, double total,
                                                                  double sum_sq) {
    if (i == pred.size()) {
      if (tp > best.tp || (tp == best.tp && total < best.total)) best = {tp, total, sum_sq};
      return;
    }
    dfs(i + 1, tp, total, sum_sq);  // prediction i unmatched
    for (size_t j = 0; j < truth.size(); ++j) {
      const double d = std::hypot(pred[i].x_nm - truth[j].x_nm, pred[i].y_nm - truth[j].y_nm);
      if (used[j] || d > tol) continue;
      used[j] = true;
      dfs(i + 1, tp + 1, total + d, sum_sq + d * d);
      used[j] = false;
    }
  };
  dfs(0, 0, 0, 0);
  return {best.tp, best.sum_sq};
}

// 200 truths in a 1 um square (mean spacing ~70 nm, so 100 nm tolerance discs overlap a lot),
// 180 predictions jittered by up to +-60 nm plus 20 spurious ones.
void random_frame(std::mt19937& rng, std::vector<Point>& pred, std::vector<Point>& truth) {
  std::uniform_real_distribution<double> pos(0, 1000), jitter(-60, 60);
  truth.clear();
  pred.clear();
  for (int i = 0; i < 200; ++i) truth.push_back(pt(0, pos(rng), pos(rng)));
  for (int i = 0; i < 180; ++i)
    pred.push_back(pt(0, truth[i].x_nm + jitter(rng), truth[i].y_nm + jitter(rng)));
  for (int i = 0; i < 20; ++i) pred.push_back(pt(0, pos(rng), pos(rng)));
}

// ---- match ---------------------------------------------------------------------------------

TEST(MatchTest, ThreeOffsetPairs) {
  // Each prediction is offset by (3, 4) nm -> distance 5; the points are 1 um apart, so there
  // is no ambiguity. TP = 3, FP = FN = 0, JI = 1, RMSE = 5, efficiency = 1 - 5/100 = 0.95.
  const std::vector<Point> truth = {pt(0, 0, 0), pt(0, 1000, 0), pt(0, 0, 1000)};
  const std::vector<Point> pred = {pt(0, 3, 4), pt(0, 1003, 4), pt(0, 3, 1004)};
  for (Matching m : kBoth) {
    const MatchResult r = match(pred, truth, 50, m);
    EXPECT_EQ(r.tolerance_nm, 50);
    EXPECT_EQ(r.tp, 3u);
    EXPECT_EQ(r.fp, 0u);
    EXPECT_EQ(r.fn, 0u);
    EXPECT_DOUBLE_EQ(r.jaccard, 1.0);
    EXPECT_NEAR(r.rmse_lateral_nm, 5.0, 1e-12);
    EXPECT_NEAR(r.efficiency, 0.95, 1e-12);
  }
}

TEST(MatchTest, BeyondToleranceIsFalsePositiveAndNegative) {
  // (10, 0) matches (0, 0) at 10 nm; (1000, 1060) is 60 nm from (1000, 1000) > 50 nm.
  // TP = 1, FP = 1, FN = 1: JI = 1/3, RMSE = 10, efficiency = 1 - sqrt((2/3)^2 + 0.1^2).
  const std::vector<Point> truth = {pt(0, 0, 0), pt(0, 1000, 1000)};
  const std::vector<Point> pred = {pt(0, 10, 0), pt(0, 1000, 1060)};
  for (Matching m : kBoth) {
    const MatchResult r = match(pred, truth, 50, m);
    EXPECT_EQ(r.tp, 1u);
    EXPECT_EQ(r.fp, 1u);
    EXPECT_EQ(r.fn, 1u);
    EXPECT_NEAR(r.jaccard, 1.0 / 3.0, 1e-12);
    EXPECT_NEAR(r.rmse_lateral_nm, 10.0, 1e-12);
    EXPECT_NEAR(r.efficiency, 1.0 - std::sqrt(4.0 / 9.0 + 0.01), 1e-12);
  }
}

TEST(MatchTest, ToleranceIsInclusive) {
  // Exactly 5 nm apart with a 5 nm tolerance: a match.
  for (Matching m : kBoth) EXPECT_EQ(match({pt(0, 3, 4)}, {pt(0, 0, 0)}, 5, m).tp, 1u);
}

TEST(MatchTest, DifferentFramesNeverMatch) {
  // Identical positions but frames 0/1 and 7/-2: nothing matches, TP = 0, JI = 0, efficiency 0.
  const std::vector<Point> truth = {pt(0, 100, 100), pt(7, 500, 500)};
  const std::vector<Point> pred = {pt(1, 100, 100), pt(-2, 500, 500)};
  for (Matching m : kBoth) {
    const MatchResult r = match(pred, truth, 50, m);
    EXPECT_EQ(r.tp, 0u);
    EXPECT_EQ(r.fp, 2u);
    EXPECT_EQ(r.fn, 2u);
    EXPECT_EQ(r.jaccard, 0.0);
    EXPECT_EQ(r.rmse_lateral_nm, 0.0);
    EXPECT_NEAR(r.efficiency, 0.0, 1e-12);
  }
}

TEST(MatchTest, GreedyLeavesOneUnmatchedHungarianMatchesBoth) {
  // T1 = (0,0), T2 = (10,0), P1 = (5.5,0), P2 = (15,0), tolerance 6.
  // Allowed pairs: P1-T2 4.5, P2-T2 5, P1-T1 5.5 (P2-T1 = 15 is too far).
  // Greedy takes P1-T2 first, which blocks both others: TP 1, FP 1, FN 1, RMSE 4.5.
  // Hungarian takes P1-T1 and P2-T2: TP 2, RMSE = sqrt((5.5^2 + 5^2) / 2) = sqrt(27.625).
  const std::vector<Point> truth = {pt(0, 0, 0), pt(0, 10, 0)};
  const std::vector<Point> pred = {pt(0, 5.5, 0), pt(0, 15, 0)};
  const MatchResult g = match(pred, truth, 6, Matching::Greedy);
  EXPECT_EQ(g.tp, 1u);
  EXPECT_EQ(g.fp, 1u);
  EXPECT_EQ(g.fn, 1u);
  EXPECT_NEAR(g.rmse_lateral_nm, 4.5, 1e-12);
  const MatchResult h = match(pred, truth, 6, Matching::Hungarian);
  EXPECT_EQ(h.tp, 2u);
  EXPECT_EQ(h.fp, 0u);
  EXPECT_EQ(h.fn, 0u);
  EXPECT_NEAR(h.rmse_lateral_nm, std::sqrt(27.625), 1e-12);
}

TEST(MatchTest, HungarianMinimisesTotalDistanceAtEqualCount) {
  // Same points, tolerance 20: P2-T1 (15) is now allowed, so greedy gets 2 pairs too:
  // P1-T2 4.5 + P2-T1 15 = 19.5 total, RMSE = sqrt((4.5^2 + 15^2) / 2) = sqrt(122.625).
  // Hungarian: P1-T1 5.5 + P2-T2 5 = 10.5 total, RMSE = sqrt(27.625).
  const std::vector<Point> truth = {pt(0, 0, 0), pt(0, 10, 0)};
  const std::vector<Point> pred = {pt(0, 5.5, 0), pt(0, 15, 0)};
  const MatchResult g = match(pred, truth, 20, Matching::Greedy);
  const MatchResult h = match(pred, truth, 20, Matching::Hungarian);
  EXPECT_EQ(g.tp, 2u);
  EXPECT_EQ(h.tp, 2u);
  EXPECT_NEAR(g.rmse_lateral_nm, std::sqrt(122.625), 1e-12);
  EXPECT_NEAR(h.rmse_lateral_nm, std::sqrt(27.625), 1e-12);
}

TEST(MatchTest, RectangularFramesTakeTheNearest) {
  // One truth at the origin, predictions at 7, 3 and 9 nm: the 3 nm one matches (both methods),
  // the other two are FP. Swapping the roles gives the same with FN instead.
  const std::vector<Point> one = {pt(0, 0, 0)};
  const std::vector<Point> three = {pt(0, 7, 0), pt(0, 0, 3), pt(0, -9, 0)};
  for (Matching m : kBoth) {
    const MatchResult a = match(three, one, 10, m);
    EXPECT_EQ(a.tp, 1u);
    EXPECT_EQ(a.fp, 2u);
    EXPECT_EQ(a.fn, 0u);
    EXPECT_NEAR(a.rmse_lateral_nm, 3.0, 1e-12);
    const MatchResult b = match(one, three, 10, m);
    EXPECT_EQ(b.tp, 1u);
    EXPECT_EQ(b.fp, 0u);
    EXPECT_EQ(b.fn, 2u);
    EXPECT_NEAR(b.rmse_lateral_nm, 3.0, 1e-12);
  }
}

TEST(MatchTest, EmptyInputs) {
  // Both empty: perfect agreement, JI = 1, efficiency 1. Only predictions: JI = 0, efficiency 0.
  for (Matching m : kBoth) {
    const MatchResult none = match({}, {}, 50, m);
    EXPECT_EQ(none.tp + none.fp + none.fn, 0u);
    EXPECT_EQ(none.jaccard, 1.0);
    EXPECT_EQ(none.rmse_lateral_nm, 0.0);
    EXPECT_EQ(none.efficiency, 1.0);
    const MatchResult only_pred = match({pt(0, 1, 1), pt(3, 2, 2)}, {}, 50, m);
    EXPECT_EQ(only_pred.fp, 2u);
    EXPECT_EQ(only_pred.jaccard, 0.0);
    EXPECT_NEAR(only_pred.efficiency, 0.0, 1e-12);
  }
}

TEST(MatchTest, ZeroToleranceMatchesOnlyCoincidentPoints) {
  const std::vector<Point> truth = {pt(0, 12.5, -3), pt(0, 40, 40)};
  const std::vector<Point> pred = {pt(0, 12.5, -3), pt(0, 40, 40.001)};
  for (Matching m : kBoth) {
    const MatchResult r = match(pred, truth, 0, m);
    EXPECT_EQ(r.tp, 1u);
    EXPECT_EQ(r.rmse_lateral_nm, 0.0);
  }
}

TEST(MatchTest, NonFiniteCoordinatesNeverMatch) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  const std::vector<Point> truth = {pt(0, 0, 0), pt(0, inf, 0), pt(0, 1e300, -1e300)};
  const std::vector<Point> pred = {pt(0, nan, 0), pt(0, inf, 0), pt(0, 1e300, -1e300), pt(0, 1, 0)};
  for (Matching m : kBoth) {
    const MatchResult r = match(pred, truth, 50, m);
    EXPECT_EQ(r.tp, 2u);  // (1,0)-(0,0) and the two identical far-away points
    EXPECT_EQ(r.fp, 2u);
    EXPECT_EQ(r.fn, 1u);
  }
}

TEST(MatchTest, RejectsBadTolerance) {
  const std::vector<Point> p = {pt(0, 0, 0)};
  EXPECT_THROW(match(p, p, -1, Matching::Greedy), dsir::Error);
  EXPECT_THROW(match(p, p, std::numeric_limits<double>::quiet_NaN(), Matching::Hungarian), dsir::Error);
  EXPECT_THROW(match(p, p, std::numeric_limits<double>::infinity(), Matching::Hungarian), dsir::Error);
}

TEST(MatchTest, HungarianEqualsBruteForceOnSmallFrames) {
  // 300 frames of up to 6 x 6 points in a 100 nm square with 40 nm tolerance: dense enough for
  // real conflicts, small enough to enumerate. With random coordinates the optimum is unique, so
  // the RMSE of the Hungarian matching must equal the brute-force one.
  std::mt19937 rng(1234);
  std::uniform_real_distribution<double> pos(0, 100);
  std::uniform_int_distribution<int> count(0, 6);
  std::vector<Point> pred, truth;
  RefResult expected;
  uint64_t greedy_tp = 0;
  for (int64_t f = 0; f < 300; ++f) {
    std::vector<Point> fp, ft;
    for (int n = count(rng); n > 0; --n) fp.push_back(pt(f, pos(rng), pos(rng)));
    for (int n = count(rng); n > 0; --n) ft.push_back(pt(f, pos(rng), pos(rng)));
    const RefResult best = brute_force_optimum(fp, ft, 40);
    expected.tp += best.tp;
    expected.sum_sq += best.sum_sq;
    greedy_tp += reference_greedy(fp, ft, 40).tp;
    pred.insert(pred.end(), fp.begin(), fp.end());
    truth.insert(truth.end(), ft.begin(), ft.end());
  }
  const MatchResult h = match(pred, truth, 40, Matching::Hungarian);
  EXPECT_EQ(h.tp, expected.tp);
  EXPECT_NEAR(h.rmse_lateral_nm, std::sqrt(expected.sum_sq / static_cast<double>(expected.tp)), 1e-9);
  const MatchResult g = match(pred, truth, 40, Matching::Greedy);
  EXPECT_EQ(g.tp, greedy_tp);
  EXPECT_LE(g.tp, h.tp);
}

TEST(MatchTest, RandomFrameHungarianNotWorseThanGreedy) {
  // MatchResult has no total distance, so greedy is checked against a grid-free reference and
  // Hungarian's count against an independent maximum-cardinality matching.
  std::mt19937 rng(42);
  std::vector<Point> pred, truth;
  for (int trial = 0; trial < 5; ++trial) {
    random_frame(rng, pred, truth);
    const MatchResult g = match(pred, truth, 100, Matching::Greedy);
    const MatchResult h = match(pred, truth, 100, Matching::Hungarian);
    const RefResult ref = reference_greedy(pred, truth, 100);
    EXPECT_EQ(g.tp, ref.tp);
    EXPECT_NEAR(g.rmse_lateral_nm, std::sqrt(ref.sum_sq / static_cast<double>(ref.tp)), 1e-9);
    EXPECT_GE(h.tp, g.tp);
    EXPECT_EQ(h.tp, reference_max_matching(pred, truth, 100));
  }
}

TEST(MatchTest, InvariantToInputOrder) {
  std::mt19937 rng(7);
  std::vector<Point> pred, truth;
  random_frame(rng, pred, truth);
  // Spread over three frames so the grouping is exercised too.
  for (size_t i = 0; i < pred.size(); ++i) pred[i].frame = static_cast<int64_t>(i % 3);
  for (size_t i = 0; i < truth.size(); ++i) truth[i].frame = static_cast<int64_t>(i % 3);
  for (Matching m : kBoth) {
    const MatchResult a = match(pred, truth, 100, m);
    std::vector<Point> p2 = pred, t2 = truth;
    std::shuffle(p2.begin(), p2.end(), rng);
    std::shuffle(t2.begin(), t2.end(), rng);
    const MatchResult b = match(p2, t2, 100, m);
    EXPECT_EQ(a.tp, b.tp);
    EXPECT_EQ(a.fp, b.fp);
    EXPECT_EQ(a.fn, b.fn);
    EXPECT_NEAR(a.rmse_lateral_nm, b.rmse_lateral_nm, 1e-9);
  }
}

// ---- efficiency ----------------------------------------------------------------------------

TEST(EfficiencyTest, KnownValues) {
  EXPECT_DOUBLE_EQ(efficiency(1.0, 0.0), 1.0);
  EXPECT_NEAR(efficiency(1.0, 5.0), 0.95, 1e-12);
  EXPECT_NEAR(efficiency(0.5, 0.0), 0.5, 1e-12);
  EXPECT_NEAR(efficiency(0.6, 30.0), 0.5, 1e-12);  // 1 - sqrt(0.4^2 + 0.3^2) = 1 - 0.5
  EXPECT_NEAR(efficiency(0.0, 0.0), 0.0, 1e-12);
  EXPECT_LT(efficiency(0.0, 100.0), 0.0);  // 1 - sqrt(2): worse than nothing is allowed
}

// ---- histogram -----------------------------------------------------------------------------

TEST(HistogramTest, CountsAndIgnoresOutside) {
  // 3 x 2 grid of 100 nm pixels. (50,50) -> col 0 row 0; (150,50) -> index 1;
  // (250,150) twice (different frames) -> row 1 col 2 = index 5, count 2.
  // (-1,0) -> col -1, (300,0) -> col 3, (0,200) -> row 2, NaN: all outside.
  const std::vector<Point> pts = {
      pt(0, 50, 50), pt(0, 150, 50), pt(0, 250, 150), pt(4, 250, 150),
      pt(0, -1, 0),  pt(0, 300, 0),  pt(0, 0, 200),   pt(0, std::numeric_limits<double>::quiet_NaN(), 0)};
  const std::vector<float> h = histogram(pts, 3, 2, 100);
  const std::vector<float> expected = {1, 1, 0, 0, 0, 2};
  EXPECT_EQ(h, expected);
}

TEST(HistogramTest, RejectsBadArguments) {
  EXPECT_THROW(histogram({}, 3, 2, 0), dsir::Error);
  EXPECT_THROW(histogram({}, 3, 2, -5), dsir::Error);
  EXPECT_THROW(histogram({}, -1, 2, 10), dsir::Error);
  EXPECT_TRUE(histogram({pt(0, 1, 1)}, 0, 0, 10).empty());
}

// ---- gaussian_blur -------------------------------------------------------------------------

TEST(GaussianBlurTest, InteriorImpulseKeepsSumAndIsSymmetric) {
  // 41 x 41, impulse in the centre, sigma 2 -> radius 8: the kernel never reaches the border, so
  // the sum stays 1; the result is symmetric under mirroring and transposition.
  const int n = 41, c = 20;
  std::vector<float> img(n * n, 0.0f);
  img[c * n + c] = 1.0f;
  const std::vector<float> out = gaussian_blur(img, n, n, 2.0);
  EXPECT_NEAR(std::accumulate(out.begin(), out.end(), 0.0), 1.0, 1e-6);
  for (int y = 0; y < n; ++y) {
    for (int x = 0; x < n; ++x) {
      const float v = out[y * n + x];
      EXPECT_FLOAT_EQ(v, out[x * n + y]);
      EXPECT_FLOAT_EQ(v, out[y * n + (n - 1 - x)]);
      EXPECT_FLOAT_EQ(v, out[(n - 1 - y) * n + x]);
    }
  }
  EXPECT_GT(out[c * n + c], out[c * n + c + 1]);
  EXPECT_EQ(out[c * n + c + 9], 0.0f);  // beyond the 8-pixel radius
  EXPECT_GT(out[c * n + c + 8], 0.0f);
}

TEST(GaussianBlurTest, CornerImpulseLosesIntensity) {
  // Zero padding: an impulse at (0,0) keeps only the kernel's half including the centre per axis.
  // sigma 2: sum_k exp(-k^2/8), k=-8..8 = 5.01353; half with centre 3.00676 -> 0.59973^2 = 0.3597.
  const int n = 21;
  std::vector<float> img(n * n, 0.0f);
  img[0] = 1.0f;
  const std::vector<float> out = gaussian_blur(img, n, n, 2.0);
  EXPECT_NEAR(std::accumulate(out.begin(), out.end(), 0.0), 0.3597, 1e-3);
}

TEST(GaussianBlurTest, NonPositiveSigmaCopies) {
  const std::vector<float> img = {1, 2, 3, 4, 5, 6};
  EXPECT_EQ(gaussian_blur(img, 3, 2, 0.0), img);
  EXPECT_EQ(gaussian_blur(img, 3, 2, -1.0), img);
}

TEST(GaussianBlurTest, SizeMismatchThrows) {
  EXPECT_THROW(gaussian_blur(std::vector<float>(5), 3, 2, 1.0), dsir::Error);
}

// ---- pearson -------------------------------------------------------------------------------

TEST(PearsonTest, SelfNegationAndConstant) {
  const std::vector<float> a = {1, 5, 2, 8, -3, 0.5f};
  std::vector<float> neg(a.size()), shifted(a.size());
  std::transform(a.begin(), a.end(), neg.begin(), [](float v) { return -v; });
  std::transform(a.begin(), a.end(), shifted.begin(), [](float v) { return 3 * v + 7; });
  const std::vector<float> constant(a.size(), 4.2f);
  EXPECT_NEAR(pearson(a, a), 1.0, 1e-12);
  EXPECT_NEAR(pearson(a, neg), -1.0, 1e-12);
  EXPECT_NEAR(pearson(a, shifted), 1.0, 1e-12);  // invariant to affine maps
  EXPECT_EQ(pearson(a, constant), 0.0);
  EXPECT_EQ(pearson(constant, a), 0.0);
}

TEST(PearsonTest, KnownValue) {
  // x = 1,2,3, y = 1,3,2: means 2 and 2, sxy = (-1)(-1) + 0 + (1)(0) = 1, sxx = syy = 2 -> 0.5.
  EXPECT_NEAR(pearson({1, 2, 3}, {1, 3, 2}), 0.5, 1e-12);
}

TEST(PearsonTest, BadSizesThrow) {
  EXPECT_THROW(pearson({1, 2}, {1, 2, 3}), dsir::Error);
  EXPECT_THROW(pearson({}, {}), dsir::Error);
}

// ---- image_correlation ---------------------------------------------------------------------

TEST(ImageCorrelationTest, AlignedBeatsShifted) {
  // 64 x 64 pixels of 10 nm, 30 random truths away from the edges, blur 20 nm = 2 px.
  // A reconstruction proportional to the truth histogram gets the same blur, so it correlates
  // perfectly (a pre-blurred one would be compared at sigma*sqrt(2) vs sigma, not ~1).
  // Shifting it by 3 px (1.5 sigma) drops the correlation to about exp(-9/32) ~ 0.75.
  const int n = 64;
  std::mt19937 rng(5);
  std::uniform_real_distribution<double> pos(100, 540);
  std::vector<Point> truth;
  for (int i = 0; i < 30; ++i) truth.push_back(pt(i, pos(rng), pos(rng)));
  const std::vector<float> hist = histogram(truth, n, n, 10);
  std::vector<float> recon(hist.size()), shifted(hist.size(), 0.0f);
  std::transform(hist.begin(), hist.end(), recon.begin(), [](float v) { return 2.5f * v; });
  for (int y = 0; y < n; ++y) {
    for (int x = 3; x < n; ++x) shifted[y * n + x] = recon[y * n + x - 3];
  }
  const double aligned = image_correlation(recon, n, n, 10, truth, 20);
  const double moved = image_correlation(shifted, n, n, 10, truth, 20);
  EXPECT_GT(aligned, 0.999);
  EXPECT_LT(moved, 0.9);
  EXPECT_LT(moved, aligned);
}

TEST(ImageCorrelationTest, SizeMismatchThrows) {
  EXPECT_THROW(image_correlation(std::vector<float>(10), 4, 4, 10, {}), dsir::Error);
}

}  // namespace
}  // namespace dsir::metrics

// ---------------------------------------------------------------------------------------------
namespace dsir::metrics {
namespace {

// Overlap of localizations and ground truth

std::vector<Point> grid(int64_t first_frame, int64_t frames, double field_nm, int per_side) {
  std::vector<Point> p;
  for (int64_t f = first_frame; f < first_frame + frames; ++f)
    for (int i = 0; i < per_side; ++i)
      for (int j = 0; j < per_side; ++j)
        p.push_back({f, (i + 0.5) * field_nm / per_side, (j + 0.5) * field_nm / per_side});
  return p;
}

TEST(OverlapTest, SetsThatCoverEachOtherGiveNoWarning) {
  const auto truth = grid(0, 10, 2000, 8);
  const metrics::Overlap o = metrics::overlap(grid(0, 10, 2000, 5), truth, 250);
  EXPECT_DOUBLE_EQ(o.locs_in_truth_frames, 1.0);
  EXPECT_DOUBLE_EQ(o.truth_in_locs_frames, 1.0);
  EXPECT_DOUBLE_EQ(o.locs_in_truth_field, 1.0);
  EXPECT_DOUBLE_EQ(o.truth_in_locs_field, 1.0);
  EXPECT_TRUE(o.warnings.empty());
  EXPECT_EQ(o.truth.first_frame, 0);
  EXPECT_EQ(o.truth.last_frame, 9);
  EXPECT_DOUBLE_EQ(o.truth.x_min, 125.0);
  EXPECT_DOUBLE_EQ(o.truth.x_max, 1875.0);
}

// The case: localizations of a 64x64-pixel field (100 nm) against the ground truth of a
// 20x20 one. 100 localizations per frame on a 10x10 grid of 640 nm: the truth spans 250-1750 nm,
// grown by the 250 nm tolerance to 0-2000 nm, which holds 3 of the 10 grid points a side (9 %).
TEST(OverlapTest, AFieldThreeTimesLargerWarnsWithTheFraction) {
  const metrics::Overlap o = metrics::overlap(grid(0, 4, 6400, 10), grid(0, 4, 2000, 4), 250);
  EXPECT_DOUBLE_EQ(o.locs_in_truth_field, 0.09);
  EXPECT_DOUBLE_EQ(o.truth_in_locs_field, 1.0);
  ASSERT_EQ(o.warnings.size(), 1u);
  EXPECT_NE(o.warnings[0].find("only 9 % of the localizations"), std::string::npos) << o.warnings[0];
  EXPECT_NE(o.warnings[0].find("x 250-1750 nm"), std::string::npos) << o.warnings[0];  // the truth's field
}

TEST(OverlapTest, DisjointFramesWarnBothWays) {
  const metrics::Overlap o = metrics::overlap(grid(100, 10, 2000, 3), grid(0, 20, 2000, 3), 50);
  EXPECT_DOUBLE_EQ(o.locs_in_truth_frames, 0.0);
  EXPECT_DOUBLE_EQ(o.truth_in_locs_frames, 0.0);
  ASSERT_EQ(o.warnings.size(), 2u);
  EXPECT_NE(o.warnings[0].find("frames 101-110) lie in the ground truth's frames 1-20"), std::string::npos)
      << o.warnings[0];
}

TEST(OverlapTest, AnEmptySetHasNoFractionsAndIsSaid) {
  const metrics::Overlap o = metrics::overlap({}, grid(0, 2, 1000, 2), 50);
  EXPECT_TRUE(o.locs.empty());
  EXPECT_TRUE(std::isnan(o.locs_in_truth_frames));
  EXPECT_TRUE(std::isnan(o.locs_in_truth_field));
  EXPECT_DOUBLE_EQ(o.truth_in_locs_frames, 0.0);  // nothing lies within an empty set
  ASSERT_EQ(o.warnings.size(), 1u);
  EXPECT_EQ(o.warnings[0], "there are no localizations");
}

}  // namespace
}  // namespace dsir::metrics
