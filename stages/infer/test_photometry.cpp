// Photometry of localizations: a fitted PSF must return the photons, sigma and background a
// spot was drawn with.
#include <gtest/gtest.h>
#include <unistd.h>

#include <array>
#include <cmath>
#include <filesystem>
#include <random>

#include "pipeline/errors.h"
#include "pipeline/formats/picasso_file.h"
#include "stages/infer/photometry.h"
#include "stages/reduce/exports.h"

namespace dsir {
namespace {

double pixel_mass(int k, double mu, double s) {
  return 0.5 * (std::erf((k + 1 - mu) / (std::sqrt(2.0) * s)) - std::erf((k - mu) / (std::sqrt(2.0) * s)));
}

// Expected photons per pixel of spots (u, v, photons) with sigma `s` over a flat background.
std::vector<double> expected(int h, int w, const std::vector<std::array<double, 3>>& spots, double s,
                             double bg) {
  std::vector<double> img(static_cast<size_t>(h) * w, bg);
  for (const auto& sp : spots)
    for (int r = 0; r < h; ++r)
      for (int c = 0; c < w; ++c) img[r * w + c] += sp[2] * pixel_mass(c, sp[0], s) * pixel_mass(r, sp[1], s);
  return img;
}

TEST(Photometry, RecoversPhotonsSigmaAndBackgroundOfAnExactSpot) {
  const auto img = expected(24, 24, {{10.3, 12.7, 2000}}, 1.2, 15);
  std::vector<float> f(img.begin(), img.end());
  const SpotFit fit = fit_spot(f.data(), 24, 24, 10.3, 12.7);
  ASSERT_TRUE(fit.ok);
  EXPECT_NEAR(fit.photons, 2000, 2);
  EXPECT_NEAR(fit.sigma_px, 1.2, 1e-3);
  EXPECT_NEAR(fit.background, 15, 0.05);
  EXPECT_NEAR(fit.background_std, 0, 0.05);
}

TEST(Photometry, NoisySpotsAverageToTheTruth) {
  // 300 spots with Poisson noise: 1000 photons, sigma 1 px, background 10 photons/px.
  std::mt19937 rng(7);
  std::uniform_real_distribution<double> sub(0, 1);
  double n_sum = 0, s_sum = 0, b_sum = 0, sd_sum = 0;
  const int trials = 300;
  for (int t = 0; t < trials; ++t) {
    const double u = 8 + sub(rng), v = 8 + sub(rng);
    const auto img = expected(17, 17, {{u, v, 1000}}, 1.0, 10);
    std::vector<float> f(img.size());
    for (size_t i = 0; i < img.size(); ++i) f[i] = float(std::poisson_distribution<int>(img[i])(rng));
    const SpotFit fit = fit_spot(f.data(), 17, 17, u, v);
    ASSERT_TRUE(fit.ok);
    n_sum += fit.photons, s_sum += fit.sigma_px, b_sum += fit.background, sd_sum += fit.background_std;
  }
  EXPECT_NEAR(n_sum / trials, 1000, 30);
  EXPECT_NEAR(s_sum / trials, 1.0, 0.03);
  EXPECT_NEAR(b_sum / trials, 10, 0.5);
  EXPECT_NEAR(sd_sum / trials, std::sqrt(10.0), 0.6);  // residuals ~ Poisson noise of the background
}

TEST(Photometry, CameraCalibrationConvertsAdu) {
  const auto cam = CameraCalibration::from_json(
      R"({"base_level": 100, "e_per_adu": 2, "em_gain": 50, "quantum_efficiency": 0.8, "pixel_size_nm": 100})",
      "x.h5");
  EXPECT_TRUE(cam.known);
  EXPECT_TRUE(cam.em());
  // 1000 ADU above the base: 2000 electrons after a gain of 50 = 40, at QE 0.8 = 50 photons.
  EXPECT_DOUBLE_EQ(cam.to_photons(1100), 50);
  const auto plain = CameraCalibration::from_json(R"({"base_level": 100, "em_gain": 0})", "x.h5");
  EXPECT_FALSE(plain.em());
  EXPECT_DOUBLE_EQ(plain.to_photons(130), 30);
  EXPECT_THROW(CameraCalibration::from_json("{not json", "x.h5"), InputError);
  EXPECT_THROW(CameraCalibration::from_json(R"({"e_per_adu": 0})", "x.h5"), InputError);
  EXPECT_THROW(CameraCalibration::from_json(R"({"base_level": "high"})", "x.h5"), InputError);
}

TEST(Photometry, MeasureFillsTheLocalizationsOfAFrame) {
  // Two spots in ADU on a camera with base 100 and 0.5 e-/ADU; the second one at the frame's edge.
  CameraCalibration cam;
  cam.base_level = 100;
  cam.e_per_adu = 0.5;
  const auto img = expected(32, 32, {{10.5, 9.25, 1500}, {31.2, 20.5, 800}}, 1.3, 12);
  std::vector<float> adu(img.size());
  for (size_t i = 0; i < img.size(); ++i) adu[i] = float(img[i] / cam.e_per_adu + cam.base_level);
  std::vector<Emitter> locs(2);
  locs[0].x_nm = 1050, locs[0].y_nm = 925;
  locs[1].x_nm = 3120, locs[1].y_nm = 2050;
  measure_photometry(adu.data(), 32, 32, 100.0, cam, locs.begin(), locs.end());
  EXPECT_NEAR(locs[0].photons, 1500, 2);
  EXPECT_NEAR(locs[0].sigma_nm, 130, 0.2);
  EXPECT_NEAR(locs[0].offset, 12, 0.05);
  // Clipped to the frame (4 of 7 columns), the fit still holds.
  EXPECT_NEAR(locs[1].photons, 800, 2);
  EXPECT_NEAR(locs[1].sigma_nm, 130, 0.5);
  // A window of fewer than 9 pixels gives no fit: the fields stay NaN.
  std::vector<Emitter> tiny(1);
  tiny[0].x_nm = 50, tiny[0].y_nm = 50;
  std::vector<float> two(2, 100.0f);
  measure_photometry(two.data(), 1, 2, 100.0, cam, tiny.begin(), tiny.end());
  EXPECT_TRUE(std::isnan(tiny[0].photons));
  EXPECT_EQ(tiny[0].photometry_flags, photometry_flag::no_fit);
  EXPECT_EQ(locs[0].photometry_flags, 0);
  EXPECT_EQ(locs[1].photometry_flags, 0);
}

SpotFit fit_of(const std::vector<double>& img, int h, int w, double u, double v) {
  const std::vector<float> f(img.begin(), img.end());
  return fit_spot(f.data(), h, w, u, v);
}

TEST(Photometry, FlagsSayWhyAFitIsNotToBeTrusted) {
  namespace flag = photometry_flag;
  // A clean spot passes.
  const SpotFit good = fit_of(expected(17, 17, {{8.5, 8.5, 1000}}, 1.2, 10), 17, 17, 8.5, 8.5);
  EXPECT_EQ(photometry_flags(good), 0);
  EXPECT_FALSE(good.sigma_at_bound);
  // A dip (a localization where the frame is darker than around it): photons < 0.
  const SpotFit dip = fit_of(expected(17, 17, {{8.5, 8.5, -400}}, 1.2, 30), 17, 17, 8.5, 8.5);
  ASSERT_TRUE(dip.ok);
  EXPECT_LT(dip.photons, 0);
  EXPECT_TRUE(photometry_flags(dip) & flag::nonpositive_photons);
  // A spot on a background below zero (a wrong camera base level).
  const SpotFit low = fit_of(expected(17, 17, {{8.5, 8.5, 1000}}, 1.2, -5), 17, 17, 8.5, 8.5);
  EXPECT_NEAR(low.background, -5, 0.05);
  EXPECT_EQ(photometry_flags(low), flag::negative_background);
  // Wider than the search interval allows: sigma ends at its upper bound.
  const SpotFit wide = fit_of(expected(41, 41, {{20.5, 20.5, 5000}}, 6.0, 10), 41, 41, 20.5, 20.5);
  EXPECT_NEAR(wide.sigma_px, kFitSigmaMaxPx, 1e-6);
  EXPECT_TRUE(wide.sigma_at_bound);
  EXPECT_TRUE(photometry_flags(wide) & flag::sigma_at_bound);
  // Sharper than the lower bound (a hot pixel): sigma ends at its lower bound.
  std::vector<double> hot(17 * 17, 10.0);
  hot[8 * 17 + 8] += 500;
  const SpotFit sharp = fit_of(hot, 17, 17, 8.5, 8.5);
  EXPECT_NEAR(sharp.sigma_px, kFitSigmaMinPx, 1e-6);
  EXPECT_TRUE(photometry_flags(sharp) & flag::sigma_at_bound);
  // No fit at all.
  EXPECT_EQ(photometry_flags(SpotFit{}), flag::no_fit);
}

// One frame, two localizations: a spot and a place darker than its surroundings. The failed one is
// flagged identically in the CSV and in picasso's file (flag), or absent from both (drop).
TEST(Photometry, AFailedFitIsFlaggedTheSameInCsvAndPicassoOrDropped) {
  const auto img = expected(24, 24, {{6.5, 8.5, 1500}, {16.5, 14.5, -300}}, 1.2, 20);
  const std::vector<float> adu(img.begin(), img.end());
  std::vector<Emitter> locs(2);
  locs[0].x_nm = 650, locs[0].y_nm = 850, locs[0].confidence = 0.9;
  locs[1].x_nm = 1650, locs[1].y_nm = 1450, locs[1].confidence = 0.4;
  CameraCalibration camera;
  measure_photometry(adu.data(), 24, 24, 100.0, camera, locs.begin(), locs.end());
  ASSERT_EQ(locs[0].photometry_flags, 0);
  ASSERT_TRUE(locs[1].photometry_flags & photometry_flag::nonpositive_photons);

  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("dsir_photometry_exports_" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  PicassoInfo info;
  info.width = 24, info.height = 24, info.frames = 1, info.pixel_size_nm = 100;
  auto export_both = [&](std::vector<Emitter> v, FailedPhotometry policy) {
    const PhotometryFailures failures = apply_failed_photometry(v, policy);
    EXPECT_EQ(failures.failed, 1u);
    EXPECT_EQ(failures.of, 2u);
    EXPECT_EQ(failures.nonpositive_photons, 1u);
    assign_uncertainty(v, 100.0, false);
    write_thunderstorm_csv((dir / "l.csv").string(), v);
    write_picasso((dir / "l.hdf5").string(), v, info, {});
    return std::pair{read_localizations_csv((dir / "l.csv").string()).emitters,
                     read_picasso((dir / "l.hdf5").string()).emitters};
  };
  const auto [csv, picasso] = export_both(locs, FailedPhotometry::Flag);
  ASSERT_EQ(csv.size(), 2u);
  ASSERT_EQ(picasso.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(csv[i].photometry_flags, locs[i].photometry_flags) << i;
    EXPECT_EQ(picasso[i].photometry_flags, csv[i].photometry_flags) << i;
    EXPECT_NEAR(picasso[i].uncertainty_nm, csv[i].uncertainty_nm, 1e-4) << i;
  }
  // The failed one's uncertainty is the passed one's (the median of one), not its own formula.
  EXPECT_NEAR(csv[1].uncertainty_nm, csv[0].uncertainty_nm, 1e-5);
  const auto [csv_dropped, picasso_dropped] = export_both(locs, FailedPhotometry::Drop);
  ASSERT_EQ(csv_dropped.size(), 1u);
  ASSERT_EQ(picasso_dropped.size(), 1u);
  EXPECT_EQ(csv_dropped[0].photometry_flags, 0);
  EXPECT_NEAR(csv_dropped[0].x_nm, 650, 1e-9);
  EXPECT_NEAR(picasso_dropped[0].x_nm, 650, 1e-3);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace dsir
