// Photometry of localizations: a fitted PSF must return the photons, sigma and background a
// spot was drawn with.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <random>

#include "pipeline/errors.h"
#include "stages/infer/photometry.h"

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
}

}  // namespace
}  // namespace dsir
