// evaluate's localizations come from a CSV or a picasso file (pipeline/formats/picasso_file.h): the
// same localizations in either give the same metrics.
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "pipeline/csv.h"
#include "pipeline/formats/picasso_file.h"
#include "stages/evaluate/metrics.h"
#include "tests/temp_dir.h"

namespace dsir {
namespace {

class LocsFiles : public test::TempDirTest {};

std::vector<metrics::Point> points(const std::vector<Emitter>& emitters) {
  std::vector<metrics::Point> p;
  for (const Emitter& e : emitters) p.push_back({e.frame, e.x_nm, e.y_nm});
  return p;
}

TEST_F(LocsFiles, PicassoFileGivesTheSameMetricsAsTheCsv) {
  // 40 frames of 6 emitters on a 32 x 32 field of 100 nm pixels; localizations 0-80 nm off (some
  // beyond the 50 nm tolerance), a few missed, a few spurious.
  std::mt19937 rng(11);
  std::uniform_real_distribution<double> field(200, 3000), offset(-40, 40), unit(0, 1);
  std::vector<Emitter> truth, locs;
  for (int64_t frame = 0; frame < 40; ++frame)
    for (int k = 0; k < 6; ++k) {
      Emitter t;
      t.frame = frame, t.x_nm = field(rng), t.y_nm = field(rng);
      truth.push_back(t);
      if (unit(rng) < 0.1) continue;
      Emitter e = t;
      e.x_nm += offset(rng), e.y_nm += offset(rng);
      e.photons = 1000, e.sigma_nm = 120, e.offset = 10, e.uncertainty_nm = 8, e.confidence = 0.8;
      e.photometry_flags = unit(rng) < 0.1 ? photometry_flag::nonpositive_photons : 0;
      locs.push_back(e);
      if (unit(rng) < 0.05) {
        e.x_nm = field(rng), e.y_nm = field(rng);
        locs.push_back(e);
      }
    }
  write_thunderstorm_csv(in_dir("l.csv"), locs);
  PicassoInfo info;
  info.width = 32, info.height = 32, info.frames = 40, info.pixel_size_nm = 100;
  ASSERT_EQ(write_picasso(in_dir("l.hdf5"), locs, info, {}), locs.size());
  const auto from_csv = read_localizations_file(in_dir("l.csv"));
  const auto from_picasso = read_localizations_file(in_dir("l.hdf5"));
  ASSERT_EQ(from_picasso.size(), from_csv.size());
  size_t flagged_csv = 0, flagged_picasso = 0;
  for (size_t i = 0; i < from_csv.size(); ++i) {
    flagged_csv += from_csv[i].photometry_failed();
    flagged_picasso += from_picasso[i].photometry_failed();
  }
  EXPECT_EQ(flagged_picasso, flagged_csv);
  EXPECT_GT(flagged_csv, 0u);
  for (double tolerance : {50.0, 250.0})
    for (auto method : {metrics::Matching::Greedy, metrics::Matching::Hungarian}) {
      const auto a = metrics::match(points(from_csv), points(truth), tolerance, method);
      const auto b = metrics::match(points(from_picasso), points(truth), tolerance, method);
      const auto original = metrics::match(points(locs), points(truth), tolerance, method);
      EXPECT_EQ(a.tp, original.tp);
      EXPECT_GT(a.fp, 0u);
      EXPECT_GT(a.fn, 0u);
      EXPECT_EQ(b.tp, a.tp) << tolerance;
      EXPECT_EQ(b.fp, a.fp) << tolerance;
      EXPECT_EQ(b.fn, a.fn) << tolerance;
      // Positions in float32 camera pixels: ~1e-4 nm.
      EXPECT_NEAR(b.rmse_lateral_nm, a.rmse_lateral_nm, 1e-3) << tolerance;
      EXPECT_NEAR(b.jaccard, a.jaccard, 1e-12) << tolerance;
    }
}

}  // namespace
}  // namespace dsir
