// RCC drift correction on simulated acquisitions of localizations with a known drift.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <random>

#include "pipeline/atomic_file.h"
#include "pipeline/errors.h"
#include "stages/reduce/drift.h"

namespace fs = std::filesystem;

namespace dsir {
namespace {

constexpr double kPi = 3.14159265358979323846;
constexpr uint64_t kFrames = 4000;

double drift_x(double f) { return 450 * std::pow(f / kFrames, 2); }           // accelerating
double drift_y(double f) { return 300 * std::sin(1.3 * kPi * f / kFrames); }  // there and back

// Six curved filaments (quadratic Bezier curves) in a 6 um field labelled by 3000 fixed emitters;
// each frame localizes `per_frame` of them drawn at random, with Gaussian localization noise
// `sigma_nm`, displaced by the drift of that frame. Fixed seed: the same table every run.
std::vector<Emitter> simulate(bool drifting, uint64_t frames = kFrames, int per_frame = 15,
                              double sigma_nm = 12) {
  std::mt19937_64 rng(14);
  std::uniform_real_distribution<double> field(500, 5500), unit(0, 1);
  std::vector<std::array<double, 2>> emitters;
  for (int k = 0; k < 6; ++k) {
    const double ax = field(rng), ay = field(rng), bx = field(rng), by = field(rng), cx = field(rng),
                 cy = field(rng);
    for (int i = 0; i < 500; ++i) {
      const double t = unit(rng);
      emitters.push_back({(1 - t) * (1 - t) * ax + 2 * t * (1 - t) * bx + t * t * cx,
                          (1 - t) * (1 - t) * ay + 2 * t * (1 - t) * by + t * t * cy});
    }
  }
  std::uniform_int_distribution<size_t> pick(0, emitters.size() - 1);
  std::normal_distribution<double> noise(0, sigma_nm);
  std::vector<Emitter> locs;
  for (uint64_t f = 0; f < frames; ++f)
    for (int k = 0; k < per_frame; ++k) {
      const auto& p = emitters[pick(rng)];
      Emitter e;
      e.frame = int64_t(f);
      e.x_nm = p[0] + noise(rng) + (drifting ? drift_x(double(f)) : 0);
      e.y_nm = p[1] + noise(rng) + (drifting ? drift_y(double(f)) : 0);
      locs.push_back(e);
    }
  return locs;
}

// RMS over frames of the 2-D error after removing the mean offset (drift is defined up to a
// constant).
double residual_rms(const drift::Estimate& est, bool drifting) {
  const size_t n = est.x_nm.size();
  double mx = 0, my = 0;
  for (size_t f = 0; f < n; ++f) {
    mx += est.x_nm[f] - (drifting ? drift_x(double(f)) : 0);
    my += est.y_nm[f] - (drifting ? drift_y(double(f)) : 0);
  }
  mx /= double(n), my /= double(n);
  double ss = 0;
  for (size_t f = 0; f < n; ++f) {
    const double ex = est.x_nm[f] - (drifting ? drift_x(double(f)) : 0) - mx;
    const double ey = est.y_nm[f] - (drifting ? drift_y(double(f)) : 0) - my;
    ss += ex * ex + ey * ey;
  }
  return std::sqrt(ss / double(n));
}

TEST(Drift, RccRecoversAKnownDriftToTenNanometres) {
  const std::vector<Emitter> locs = simulate(true);
  const drift::Estimate est = drift::estimate_rcc(locs, kFrames, drift::Options{}, "sim");
  ASSERT_EQ(est.x_nm.size(), kFrames);
  EXPECT_EQ(est.x_nm[0], 0.0);
  EXPECT_EQ(est.pairs, 45u);
  const double rms = residual_rms(est, true);
  std::printf(
      "drift: residual RMS %.2f nm over %llu frames (x 0 to %.0f nm, y a 300 nm sine); %zu of %zu pairs "
      "dropped, pair residual RMS %.2f nm\n",
      rms, (unsigned long long)kFrames, drift_x(kFrames), est.pairs_dropped, est.pairs, est.residual_rms_nm);
  EXPECT_LE(rms, 10.0);  // the acceptance figure
  // Without correction the error would be the drift itself: the test measures something.
  drift::Estimate none = est;
  std::fill(none.x_nm.begin(), none.x_nm.end(), 0.0);
  std::fill(none.y_nm.begin(), none.y_nm.end(), 0.0);
  EXPECT_GT(residual_rms(none, true), 100.0);
}

TEST(Drift, NoDriftEstimatesNearZero) {
  const drift::Estimate est = drift::estimate_rcc(simulate(false), kFrames, drift::Options{}, "sim");
  const double rms = residual_rms(est, false);
  double worst = 0;
  for (size_t f = 0; f < est.x_nm.size(); ++f) worst = std::max(worst, std::hypot(est.x_nm[f], est.y_nm[f]));
  std::printf("no drift: estimated drift RMS %.2f nm, largest %.2f nm\n", rms, worst);
  EXPECT_LE(rms, 3.0);
  EXPECT_LE(worst, 10.0);
}

// RCC's rmax on exact pair measurements with one gross outlier: it is dropped and the drift is
// exact again; with rmax beyond the outlier it is kept and pulls every bin off.
TEST(Drift, RmaxDropsTheOutlierPair) {
  const int bins = 6;
  std::vector<drift::Pair> pairs;
  for (int i = 0; i < bins; ++i)
    for (int j = i + 1; j < bins; ++j) pairs.push_back({i, j, 10.0 * (j - i), -5.0 * (j - i) * (j + i)});
  pairs[3].rx += 200;  // bins 0 and 4
  const drift::PairSolution kept = drift::solve_pairs(pairs, bins, 1e6);
  EXPECT_EQ(kept.dropped, 0u);
  EXPECT_GT(std::abs(kept.x_nm[4] - 40), 20.0);
  const drift::PairSolution sol = drift::solve_pairs(pairs, bins, 20);
  EXPECT_EQ(sol.dropped, 1u);
  for (int b = 0; b < bins; ++b) {
    EXPECT_NEAR(sol.x_nm[size_t(b)], 10.0 * b, 1e-9) << b;
    EXPECT_NEAR(sol.y_nm[size_t(b)], -5.0 * b * b, 1e-9) << b;
  }
  EXPECT_NEAR(sol.residual_rms_nm, 0, 1e-9);
  // A pair that alone ties a bin in is never dropped: bin 3 measured only against bin 0.
  std::vector<drift::Pair> chain = {{0, 1, 10, 0}, {1, 2, 10, 0}, {0, 2, 20, 0}, {0, 3, 500, 0}};
  const drift::PairSolution c = drift::solve_pairs(chain, 4, 20);
  EXPECT_EQ(c.dropped, 0u);
  EXPECT_NEAR(c.x_nm[3], 500, 1e-9);
  EXPECT_THROW(drift::solve_pairs({{0, 1, 10, 0}}, 3, 20), Error);  // bin 2 unconnected
}

TEST(Drift, TooFewLocalizationsPerBinIsAnErrorNamingTheBin) {
  // 400 frames x 2 localizations: 80 per bin, fewer than the 100 a bin needs.
  const std::vector<Emitter> locs = simulate(true, 400, 2);
  try {
    drift::estimate_rcc(locs, 400, drift::Options{}, "acq1");
    FAIL() << "expected InputError";
  } catch (const InputError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("acq1: reduce.drift: rcc: time bin 1 of 10 (frames 1-40) has 80 localizations"),
              std::string::npos)
        << m;
    EXPECT_NE(m.find("reduce.drift_bins"), std::string::npos) << m;
  }
  EXPECT_THROW(drift::estimate_rcc(locs, 5, drift::Options{}, "acq1"), InputError);  // fewer frames than bins
  std::vector<Emitter> stray = simulate(false);
  stray[7].x_nm = 1e9;  // one localization a metre away
  EXPECT_THROW(drift::estimate_rcc(stray, kFrames, drift::Options{}, "acq1"), InputError);
}

TEST(Drift, ApplySubtractsAndKeepsTheRawCoordinatesThroughTheCsv) {
  drift::Estimate est;
  est.x_nm = {0, 10, 20};
  est.y_nm = {0, -5, -10};
  std::vector<Emitter> locs(2);
  locs[0].frame = 2, locs[0].x_nm = 100, locs[0].y_nm = 200;
  locs[1].frame = 1, locs[1].x_nm = 50, locs[1].y_nm = 60;
  drift::apply(locs, est);
  EXPECT_DOUBLE_EQ(locs[0].x_nm, 80);
  EXPECT_DOUBLE_EQ(locs[0].y_nm, 210);
  EXPECT_DOUBLE_EQ(locs[0].x_raw_nm, 100);
  EXPECT_DOUBLE_EQ(locs[1].y_raw_nm, 60);
  const fs::path dir = fs::temp_directory_path() / ("dsir_drift_" + std::to_string(getpid()));
  const std::string csv = (dir / "localizations.csv").string();
  write_thunderstorm_csv(csv, locs);
  const LocalizationFile back = read_localizations_csv(csv);
  ASSERT_EQ(back.format, CsvFormat::ThunderStorm);
  ASSERT_EQ(back.emitters.size(), 2u);
  EXPECT_DOUBLE_EQ(back.emitters[0].x_nm, 80);
  EXPECT_DOUBLE_EQ(back.emitters[0].x_raw_nm, 100);
  EXPECT_DOUBLE_EQ(back.emitters[1].y_nm, 65);
  EXPECT_DOUBLE_EQ(back.emitters[1].y_raw_nm, 60);
  const std::vector<Emitter> from_table = table_to_emitters(emitters_to_table(locs), "t");
  EXPECT_DOUBLE_EQ(from_table[1].x_raw_nm, 50);
  drift::write_csv((dir / "drift.csv").string(), est);
  EXPECT_EQ(read_text_file((dir / "drift.csv").string()),
            "frame,drift_x_nm,drift_y_nm\n1,0.000,0.000\n2,10.000,-5.000\n3,20.000,-10.000\n");
  fs::remove_all(dir);
}

// What reduce runs per acquisition: under rcc the files appear and the table is corrected; under
// none an earlier run's drift files go (they would describe other coordinates).
TEST(Drift, CorrectWritesDriftFilesUnderRccAndRemovesThemUnderNone) {
  const fs::path dir = fs::temp_directory_path() / ("dsir_drift_correct_" + std::to_string(getpid()));
  std::vector<Emitter> locs = simulate(true);
  const std::string line = drift::correct(locs, kFrames, "sim", dir.string(), drift::Options{});
  EXPECT_NE(line.find("drift corrected by RCC (10 bins, "), std::string::npos) << line;
  EXPECT_TRUE(fs::exists(dir / "drift.csv"));
  EXPECT_GT(fs::file_size(dir / "drift.png"), 1000u);
  EXPECT_FALSE(std::isnan(locs.back().x_raw_nm));
  EXPECT_NEAR(locs.back().x_raw_nm - locs.back().x_nm, drift_x(kFrames - 1), 15.0);
  std::vector<Emitter> untouched = simulate(true);
  EXPECT_EQ(drift::correct(untouched, kFrames, "sim", dir.string(), std::nullopt), "");
  EXPECT_FALSE(fs::exists(dir / "drift.csv"));
  EXPECT_FALSE(fs::exists(dir / "drift.png"));
  EXPECT_TRUE(std::isnan(untouched.back().x_raw_nm));
  fs::remove_all(dir);
}

TEST(Drift, SplineIsExactForLinesAndCubicInside) {
  // A natural spline reproduces a straight line everywhere, extrapolation included.
  const std::vector<double> line = drift::spline({2, 5, 9, 14}, {1, 2.5, 4.5, 7}, 20);
  for (size_t f = 0; f < line.size(); ++f) EXPECT_NEAR(line[f], 0.5 * double(f), 1e-12) << f;
  // Through the knots; between them the cubic of the hand-solved system: second derivatives
  // M = (0, -0.4, 0.4, 0), so at x = 12 (a = 0.8, b = 0.2): 8 + ((a^3 - a) M1 + (b^3 - b) M2) h^2 / 6.
  const std::vector<double> s = drift::spline({0, 10, 20, 30}, {0, 10, 0, 10}, 31);
  EXPECT_NEAR(s[10], 10, 1e-12);
  EXPECT_NEAR(s[20], 0, 1e-12);
  EXPECT_NEAR(s[12], 8.64, 1e-12);
}

}  // namespace
}  // namespace dsir
