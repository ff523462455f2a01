// Tests of the ThunderSTORM-style simulator (stages/simulate/simulator.h): the statistics of
// every stage of the image model against theory (fixed seeds; tolerances of a few standard
// errors), reproducibility, and a reproduction of ThunderSTORM's own demo data.
#include <gtest/gtest.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <iostream>
#include <random>
#include <string>
#include <vector>

#include "pipeline/csv.h"
#include "pipeline/errors.h"
#include "pipeline/tiff.h"
#include "stages/simulate/simulator.h"
#include "tests/shared_data.h"
#include "tests/temp_dir.h"

namespace fs = std::filesystem;
using dsir::Emitter;
using namespace dsir::sim;

namespace {

constexpr double kFwhmPerSigma = 2.3548200450309493;  // 2 sqrt(2 ln 2)

// Sample mean and variance with their standard errors (the variance's from the sample's
// fourth central moment: SE(s²) ≈ sqrt((m4 - s⁴) / n)).
struct Moments {
  double n = 0, mean = 0, var = 0, se_mean = 0, se_var = 0;
};

Moments moments(const std::vector<double>& v) {
  Moments m;
  m.n = static_cast<double>(v.size());
  for (double x : v) m.mean += x;
  m.mean /= m.n;
  double m2 = 0, m4 = 0;
  for (double x : v) {
    const double d = (x - m.mean) * (x - m.mean);
    m2 += d;
    m4 += d * d;
  }
  m.var = m2 / (m.n - 1);
  m4 /= m.n;
  m.se_mean = std::sqrt(m.var / m.n);
  m.se_var = std::sqrt(std::max(m4 - m.var * m.var, 0.0) / m.n);
  return m;
}

// Expects `count` per bin of a uniform histogram of `n` samples within `z` binomial SEs.
void expect_uniform_histogram(const std::vector<size_t>& counts, double z, const char* what) {
  double n = 0;
  for (size_t c : counts) n += static_cast<double>(c);
  const double p = 1.0 / static_cast<double>(counts.size());
  const double se = std::sqrt(n * p * (1 - p));
  for (size_t b = 0; b < counts.size(); ++b)
    EXPECT_NEAR(static_cast<double>(counts[b]), n * p, z * se) << what << " bin " << b;
}

Emitter emitter(double x_nm, double y_nm, double sigma_nm, double photons, int64_t frame = 0) {
  Emitter e;
  e.frame = frame;
  e.x_nm = x_nm;
  e.y_nm = y_nm;
  e.sigma_nm = sigma_nm;
  e.photons = photons;
  return e;
}

double sum(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return s;
}

std::vector<double> as_double(const std::vector<uint16_t>& v, double minus = 0) {
  std::vector<double> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = static_cast<double>(v[i]) - minus;
  return out;
}

// Independent closed form: the PSF's mass in pixel (r, c) for an emitter at (cx, cy) pixels,
// with dx, dy the offsets of the pixel centre from the emitter.
double closed_form(double photons, double cx, double cy, double sigma_px, int r, int c) {
  const double dx = (c + 0.5) - cx, dy = (r + 0.5) - cy;
  const double k = std::sqrt(2.0) * sigma_px;
  return photons / 4.0 * (std::erf((dx + 0.5) / k) - std::erf((dx - 0.5) / k)) *
         (std::erf((dy + 0.5) / k) - std::erf((dy - 0.5) / k));
}

// ---------------------------------------------------------------------------------------------
// render_expected

TEST(RenderExpected, SumOfInteriorEmitterEqualsPhotons) {
  const int w = 64, h = 64;
  const double px = 100;
  for (double sigma : {60.0, 80.0, 111.0, 150.0, 250.0}) {
    for (auto [x, y] : {std::pair{3200.0, 3200.0}, {3137.3, 2911.9}, {2050.5, 4420.25}}) {
      const double photons = 2458.46515;
      auto img = render_expected({emitter(x, y, sigma, photons)}, w, h, px);
      ASSERT_EQ(img.size(), static_cast<size_t>(w * h));
      EXPECT_NEAR(sum(img), photons, 1e-6 * photons) << "sigma " << sigma << " at " << x << "," << y;
      for (double v : img) EXPECT_GE(v, 0.0);
    }
  }
}

TEST(RenderExpected, SymmetricForEmitterAtPixelCentre) {
  const int w = 31, h = 31, c0 = 15, r0 = 15;
  const double px = 100;
  auto img = render_expected({emitter((c0 + 0.5) * px, (r0 + 0.5) * px, 130, 1000)}, w, h, px);
  auto at = [&](int r, int c) { return img[static_cast<size_t>(r * w + c)]; };
  const double peak = at(r0, c0);
  for (int dr = -15; dr <= 15; ++dr)
    for (int dc = -15; dc <= 15; ++dc) {
      const double v = at(r0 + dr, c0 + dc);
      EXPECT_NEAR(v, at(r0 - dr, c0 + dc), 1e-12 * peak) << dr << "," << dc;  // mirror in y
      EXPECT_NEAR(v, at(r0 + dr, c0 - dc), 1e-12 * peak) << dr << "," << dc;  // mirror in x
      EXPECT_NEAR(v, at(r0 + dc, c0 + dr), 1e-12 * peak) << dr << "," << dc;  // transpose
    }
}

TEST(RenderExpected, MaximumAtPixelOfEmitterXAlongColumns) {
  const int w = 40, h = 30;
  const double px = 100;
  // Rows and columns differ so a transposed image would put the maximum elsewhere.
  for (auto [r, c] : {std::pair{7, 22}, {20, 3}, {12, 35}}) {
    for (double frac : {0.5, 0.2, 0.8}) {
      auto img = render_expected({emitter((c + frac) * px, (r + 0.5) * px, 120, 500)}, w, h, px);
      const size_t argmax = static_cast<size_t>(std::max_element(img.begin(), img.end()) - img.begin());
      EXPECT_EQ(static_cast<int>(argmax) / w, r) << "row for (r,c)=(" << r << "," << c << ") frac " << frac;
      EXPECT_EQ(static_cast<int>(argmax) % w, c)
          << "column for (r,c)=(" << r << "," << c << ") frac " << frac;
    }
  }
}

TEST(RenderExpected, MatchesClosedFormErfIntegral) {
  const int w = 64, h = 48;
  const double px = 107;
  const double x = 2345.6, y = 1234.5, sigma = 131.7, photons = 1777.7;
  auto img = render_expected({emitter(x, y, sigma, photons)}, w, h, px);
  const double cx = x / px, cy = y / px, s = sigma / px;
  const int rc = static_cast<int>(cy), cc = static_cast<int>(cx);
  for (int r = rc - 4; r <= rc + 4; ++r)
    for (int c = cc - 4; c <= cc + 4; ++c) {
      const double expect = closed_form(photons, cx, cy, s, r, c);
      EXPECT_NEAR(img[static_cast<size_t>(r * w + c)], expect, 1e-10 * photons + 1e-9 * expect)
          << "pixel (" << r << "," << c << ")";
    }
  // The emitter's own pixel holds a sizeable share (guards against an all-zero closed form).
  EXPECT_GT(img[static_cast<size_t>(rc * w + cc)], 0.05 * photons);
}

TEST(RenderExpected, LinearInEmittersAndClippedAtEdges) {
  const int w = 32, h = 32;
  const double px = 100;
  Emitter a = emitter(1000, 1500, 110, 800), b = emitter(1210, 1390, 140, 1500);
  auto ia = render_expected({a}, w, h, px), ib = render_expected({b}, w, h, px);
  auto iab = render_expected({a, b}, w, h, px);
  for (size_t i = 0; i < iab.size(); ++i) EXPECT_NEAR(iab[i], ia[i] + ib[i], 1e-9);
  // An emitter in the corner keeps about a quarter of its mass; one far outside renders nothing.
  auto corner = render_expected({emitter(0, 0, 120, 1000)}, w, h, px);
  EXPECT_NEAR(sum(corner), 250.0, 1e-6 * 1000);
  auto outside = render_expected({emitter(-5000, 1600, 120, 1000)}, w, h, px);
  EXPECT_EQ(sum(outside), 0.0);
}

// The sampled model: ThunderSTORM's generator's point samples of the Gaussian density.
TEST(RenderExpected, SampledModelIsTheDensityAtPixelCentres) {
  const int w = 32, h = 24;
  const double px = 100;
  const Emitter e = emitter(1537.2, 1175.9, 108.0, 1800.0);
  auto img = render_expected({e}, w, h, px, PsfModel::Sampled);
  const double s = e.sigma_nm / px, cx = e.x_nm / px, cy = e.y_nm / px;
  double max_err = 0;
  for (int r = 0; r < h; ++r)
    for (int c = 0; c < w; ++c) {
      const double dx = c + 0.5 - cx, dy = r + 0.5 - cy;
      const double want = e.photons / (2 * M_PI * s * s) * std::exp(-(dx * dx + dy * dy) / (2 * s * s));
      const double got = img[static_cast<size_t>(r * w + c)];
      if (std::hypot(dx, dy) < 5 * s) max_err = std::max(max_err, std::abs(got - want));
    }
  EXPECT_LT(max_err, 1e-9);
  // A sampled Gaussian of sigma >= 1 pixel sums to its photons (Poisson summation: error
  // ~exp(-2 pi^2 sigma^2)), and its peak is higher than the integrated one's by about the
  // pixel's own variance, 1/12 px^2.
  EXPECT_NEAR(sum(img), e.photons, 1e-6 * e.photons);
  auto integrated = render_expected({e}, w, h, px, PsfModel::Integrated);
  const size_t peak = static_cast<size_t>(static_cast<int>(cy) * w + static_cast<int>(cx));
  EXPECT_GT(img[peak], integrated[peak]);
  // Integrating over the pixel is a convolution with a box of variance 1/12: the integrated PSF
  // of sigma' = sqrt(sigma^2 - 1/12) is within a fraction of a percent of the sampled one.
  Emitter narrower = e;
  narrower.sigma_nm = px * std::sqrt(s * s - 1.0 / 12.0);
  auto matched = render_expected({narrower}, w, h, px, PsfModel::Integrated);
  EXPECT_NEAR(matched[peak], img[peak], 0.005 * img[peak]);
}

// ---------------------------------------------------------------------------------------------
// apply_camera

Camera plain_camera(double background) {
  Camera cam;
  cam.em_gain = 0;
  cam.read_noise_e = 0;
  cam.e_per_adu = 1;
  cam.base_level = 100;
  cam.quantum_efficiency = 1;
  cam.background_photons = background;
  return cam;
}

constexpr size_t kPixels = 200000;

TEST(ApplyCamera, PoissonBackgroundMeanAndVariance) {
  const double b = 20;
  Camera cam = plain_camera(b);
  std::mt19937_64 rng(11);
  auto out = apply_camera(std::vector<double>(kPixels, 0.0), cam, rng);
  ASSERT_EQ(out.size(), kPixels);
  Moments m = moments(as_double(out));
  EXPECT_NEAR(m.mean, b + 100, 5 * m.se_mean);
  // Whole electrons at 1 e/ADU are never rounded, so the variance is b; the model adds the
  // 1/12 of rounding a continuous value, which is within the tolerance.
  EXPECT_NEAR(m.var, b, 5 * m.se_var);
  EXPECT_NEAR(m.var, model_variance_adu(b, cam), 5 * m.se_var);
  EXPECT_NEAR(model_variance_adu(b, cam), b + 1.0 / 12.0, 1e-12);
  for (uint16_t v : out) EXPECT_GE(v, 100);
}

TEST(ApplyCamera, SignalAddsToBackground) {
  const double b = 20, s = 35.5;
  Camera cam = plain_camera(b);
  std::mt19937_64 rng(12);
  Moments m = moments(as_double(apply_camera(std::vector<double>(kPixels, s), cam, rng), 100));
  EXPECT_NEAR(m.mean, s + b, 5 * m.se_mean);
  EXPECT_NEAR(m.var, model_variance_adu(s + b, cam), 5 * m.se_var);
}

// Mean and variance of round(k / g) for k ~ Poisson(lambda): the documented pipeline's exact
// values (rounding after the division), from the Poisson pmf.
std::pair<double, double> exact_rounded_poisson(double lambda, double g) {
  double mean = 0, m2 = 0, p = std::exp(-lambda);
  for (int k = 0; k < static_cast<int>(lambda + 40 * std::sqrt(lambda) + 50); ++k) {
    if (k > 0) p *= lambda / k;
    const double v = std::nearbyint(k / g + 100.0) - 100.0;  // base 100, ties to even as apply_camera
    mean += p * v;
    m2 += p * v * v;
  }
  return {mean, m2 - mean * mean};
}

TEST(ApplyCamera, TwoElectronsPerAduHalvesMeanAndQuartersVariance) {
  const double b = 20;
  Camera cam = plain_camera(b);
  cam.e_per_adu = 2;
  std::mt19937_64 rng(13);
  Moments m = moments(as_double(apply_camera(std::vector<double>(kPixels, 0.0), cam, rng), 100));
  // Theory: b/2 and b/4, up to the rounding of odd electron counts (k/2 = n + 0.5, ties to even:
  // unbiased on average), which adds at most 1/12 to the variance.
  EXPECT_NEAR(m.mean, b / 2, 0.5);
  EXPECT_NEAR(m.var, b / 4, 5 * m.se_var + 1.0 / 12.0);
  EXPECT_NEAR(m.var, model_variance_adu(b, cam), 5 * m.se_var);
  // Exactly (within a few SE) what the documented pipeline gives.
  auto [mean, var] = exact_rounded_poisson(b, 2);
  EXPECT_NEAR(m.mean, mean, 5 * m.se_mean);
  EXPECT_NEAR(m.var, var, 5 * m.se_var);
  std::cout << "[ info ] e_per_adu 2, background " << b << ": mean over base " << m.mean
            << " (b/2 = " << b / 2 << "), variance " << m.var << " (b/4 = " << b / 4 << ")\n";
}

TEST(ApplyCamera, EmGainDoublesShotNoiseVariance) {
  const double b = 20, g = 30;
  Camera cam = plain_camera(b);
  cam.em_gain = g;
  std::mt19937_64 rng(14);
  Moments m = moments(as_double(apply_camera(std::vector<double>(kPixels, 0.0), cam, rng), 100));
  EXPECT_NEAR(m.mean, g * b, 5 * m.se_mean);
  EXPECT_NEAR(m.var, 2 * g * g * b, 5 * m.se_var);  // excess noise factor F² = 2
  EXPECT_NEAR(m.var, model_variance_adu(b, cam), 5 * m.se_var);
  EXPECT_NEAR(model_variance_adu(b, cam), 2 * g * g * b + 1.0 / 12.0, 1e-9);
}

TEST(ApplyCamera, ReadNoiseAddsInQuadrature) {
  const double b = 20, read = 3;
  Camera cam = plain_camera(b);
  cam.read_noise_e = read;
  std::mt19937_64 rng(15);
  Moments m = moments(as_double(apply_camera(std::vector<double>(kPixels, 0.0), cam, rng), 100));
  EXPECT_NEAR(m.mean, b, 5 * m.se_mean);
  EXPECT_NEAR(m.var, b + read * read + 1.0 / 12.0, 5 * m.se_var);
  EXPECT_NEAR(m.var, model_variance_adu(b, cam), 5 * m.se_var);
}

TEST(ApplyCamera, QuantumEfficiencyHalvesMean) {
  const double b = 40;
  Camera cam = plain_camera(b);
  cam.quantum_efficiency = 0.5;
  std::mt19937_64 rng(16);
  Moments m = moments(as_double(apply_camera(std::vector<double>(kPixels, 0.0), cam, rng), 100));
  EXPECT_NEAR(m.mean, b / 2, 5 * m.se_mean);
  EXPECT_NEAR(m.var, b / 2, 5 * m.se_var);  // thinned Poisson stays Poisson
  EXPECT_NEAR(m.var, model_variance_adu(b, cam), 5 * m.se_var);
}

TEST(ApplyCamera, ClampsToUint16Range) {
  Camera cam = plain_camera(20);
  std::mt19937_64 rng(17);
  for (uint16_t v : apply_camera(std::vector<double>(1000, 70000.0), cam, rng)) EXPECT_EQ(v, 65535);
  // Below zero: no base level and read noise, about half the pixels would be negative.
  Camera low = plain_camera(0);
  low.base_level = 0;
  low.read_noise_e = 5;
  size_t zeros = 0;
  for (uint16_t v : apply_camera(std::vector<double>(10000, 0.0), low, rng)) {
    EXPECT_LT(v, 100) << "negative value wrapped around";
    zeros += v == 0;
  }
  EXPECT_GT(zeros, 4000u);
}

TEST(ApplyCamera, SameRngStateSamePixels) {
  Camera cam = plain_camera(20);
  std::vector<double> expected(500, 3.0);
  std::mt19937_64 a(99), b(99), c(100);
  EXPECT_EQ(apply_camera(expected, cam, a), apply_camera(expected, cam, b));
  EXPECT_NE(apply_camera(expected, cam, a), apply_camera(expected, cam, c));
}

// ---------------------------------------------------------------------------------------------
// simulate_frame

TEST(SimulateFrame, EmitterCountIsPoissonWithDensityTimesArea) {
  FieldSpec field;  // 26 x 26 pixels
  field.density_per_um2 = 2.0;
  Camera cam;  // 100 nm pixels
  EmitterRanges ranges;
  const double area_um2 =
      (field.width * cam.pixel_size_nm / 1000) * (field.height * cam.pixel_size_nm / 1000);
  const double mean = field.density_per_um2 * area_um2;
  std::vector<double> counts;
  for (int64_t f = 0; f < 3000; ++f)
    counts.push_back(
        static_cast<double>(simulate_frame(field, cam, ranges, nullptr, 2024, f).emitters.size()));
  Moments m = moments(counts);
  EXPECT_NEAR(m.mean, mean, 5 * m.se_mean);
  EXPECT_NEAR(m.var, mean, 5 * m.se_var);  // Poisson: variance = mean
}

TEST(SimulateFrame, PhotonsFwhmAndPositionsUniformInRanges) {
  FieldSpec field;
  field.width = 40;
  field.height = 30;
  field.density_per_um2 = 3.0;
  Camera cam;
  cam.pixel_size_nm = 110;
  EmitterRanges ranges;
  ranges.fwhm_min_nm = 180;
  ranges.fwhm_max_nm = 320;
  ranges.photons_min = 100;
  ranges.photons_max = 3000;
  const double w_nm = field.width * cam.pixel_size_nm, h_nm = field.height * cam.pixel_size_nm;
  std::vector<double> photons, fwhm, xs, ys;
  const int bins = 10;
  std::vector<size_t> hp(bins), hf(bins), hxy(25);
  for (int64_t f = 0; f < 400; ++f) {
    Frame fr = simulate_frame(field, cam, ranges, nullptr, 5, f);
    ASSERT_EQ(fr.pixels.size(), static_cast<size_t>(field.width * field.height));
    for (const Emitter& e : fr.emitters) {
      EXPECT_EQ(e.frame, f);
      const double fw = e.sigma_nm * kFwhmPerSigma;
      ASSERT_GE(e.photons, ranges.photons_min);
      ASSERT_LE(e.photons, ranges.photons_max);
      ASSERT_GE(fw, ranges.fwhm_min_nm - 1e-9);
      ASSERT_LE(fw, ranges.fwhm_max_nm + 1e-9);
      ASSERT_GE(e.x_nm, 0);
      ASSERT_LT(e.x_nm, w_nm);
      ASSERT_GE(e.y_nm, 0);
      ASSERT_LT(e.y_nm, h_nm);
      EXPECT_EQ(e.offset, cam.background_photons);
      EXPECT_NEAR(e.bkgstd, std::sqrt(cam.background_photons), 1e-12);
      photons.push_back(e.photons);
      fwhm.push_back(fw);
      xs.push_back(e.x_nm);
      ys.push_back(e.y_nm);
      auto bin = [&](double v, double lo, double hi, int n) {
        return static_cast<size_t>(std::min(n - 1, static_cast<int>((v - lo) / (hi - lo) * n)));
      };
      ++hp[bin(e.photons, ranges.photons_min, ranges.photons_max, bins)];
      ++hf[bin(fw, ranges.fwhm_min_nm, ranges.fwhm_max_nm, bins)];
      ++hxy[bin(e.y_nm, 0, h_nm, 5) * 5 + bin(e.x_nm, 0, w_nm, 5)];
    }
  }
  ASSERT_GT(photons.size(), 10000u);
  auto check_uniform = [](const std::vector<double>& v, double lo, double hi, const char* what) {
    Moments m = moments(v);
    EXPECT_NEAR(m.mean, (lo + hi) / 2, 5 * m.se_mean) << what;
    EXPECT_NEAR(m.var, (hi - lo) * (hi - lo) / 12, 5 * m.se_var) << what;
  };
  check_uniform(photons, ranges.photons_min, ranges.photons_max, "photons");
  check_uniform(fwhm, ranges.fwhm_min_nm, ranges.fwhm_max_nm, "FWHM");
  check_uniform(xs, 0, w_nm, "x");
  check_uniform(ys, 0, h_nm, "y");
  expect_uniform_histogram(hp, 5, "photons");
  expect_uniform_histogram(hf, 5, "FWHM");
  expect_uniform_histogram(hxy, 5, "position (5x5 grid)");
}

TEST(SimulateFrame, PixelsFollowRenderedExpectationPlusCamera) {
  // The frame's pixels average to base + background + the rendered emitters.
  FieldSpec field;
  Camera cam;
  EmitterRanges ranges;
  Frame fr = simulate_frame(field, cam, ranges, nullptr, 77, 3);
  auto expected = render_expected(fr.emitters, field.width, field.height, cam.pixel_size_nm);
  ASSERT_FALSE(fr.emitters.empty());
  double residual = 0, var_sum = 0, chi2 = 0;
  for (size_t i = 0; i < fr.pixels.size(); ++i) {
    const double mu = cam.base_level + (expected[i] + cam.background_photons) / cam.e_per_adu;
    const double var = model_variance_adu(expected[i] + cam.background_photons, cam);
    const double r = fr.pixels[i] - mu;
    residual += r;
    var_sum += var;
    chi2 += r * r / var;
  }
  const double n = static_cast<double>(fr.pixels.size());
  EXPECT_NEAR(residual / n, 0.0, 5 * std::sqrt(var_sum) / n);  // unbiased around the expectation
  EXPECT_NEAR(chi2 / n, 1.0, 5 * std::sqrt(2.0 / n));          // with the model's variance
}

TEST(SimulateFrame, FrameRngDependsOnSeedAndFrameOnly) {
  auto draw = [](std::mt19937_64 rng) {
    std::vector<uint64_t> v(16);
    for (auto& x : v) x = rng();
    return v;
  };
  EXPECT_EQ(draw(frame_rng(42, 7)), draw(frame_rng(42, 7)));
  EXPECT_NE(draw(frame_rng(42, 7)), draw(frame_rng(42, 8)));
  EXPECT_NE(draw(frame_rng(42, 7)), draw(frame_rng(43, 7)));
  EXPECT_NE(draw(frame_rng(0, 0)), draw(frame_rng(0, 1)));

  FieldSpec field;
  Camera cam;
  EmitterRanges ranges;
  Frame a = simulate_frame(field, cam, ranges, nullptr, 42, 7);
  simulate_frame(field, cam, ranges, nullptr, 42, 6);  // no hidden state between calls
  Frame b = simulate_frame(field, cam, ranges, nullptr, 42, 7);
  Frame c = simulate_frame(field, cam, ranges, nullptr, 42, 8);
  EXPECT_EQ(a.pixels, b.pixels);
  ASSERT_EQ(a.emitters.size(), b.emitters.size());
  for (size_t i = 0; i < a.emitters.size(); ++i) {
    EXPECT_EQ(a.emitters[i].x_nm, b.emitters[i].x_nm);
    EXPECT_EQ(a.emitters[i].y_nm, b.emitters[i].y_nm);
    EXPECT_EQ(a.emitters[i].photons, b.emitters[i].photons);
    EXPECT_EQ(a.emitters[i].sigma_nm, b.emitters[i].sigma_nm);
  }
  EXPECT_NE(a.pixels, c.pixels);
  EXPECT_TRUE(c.emitters.empty() || a.emitters.empty() || c.emitters[0].x_nm != a.emitters[0].x_nm);
}

// Smallest distance from (x, y) to a point of the curves.
double distance_to_curves(const std::vector<std::vector<std::pair<double, double>>>& curves, double x,
                          double y) {
  double best = INFINITY;
  for (const auto& curve : curves)
    for (const auto& [px, py] : curve) best = std::min(best, (px - x) * (px - x) + (py - y) * (py - y));
  return std::sqrt(best);
}

TEST(Filaments, EmittersLieAlongTheCurves) {
  FieldSpec field;
  field.width = 64;
  field.height = 64;
  field.structure = Structure::Filaments;
  field.filaments = 8;
  field.density_per_um2 = 2.0;
  Camera cam;
  EmitterRanges ranges;
  Filaments fil(field, cam.pixel_size_nm, 31);
  const auto& curves = fil.curves();
  ASSERT_EQ(curves.size(), 8u);
  const double w_nm = field.width * cam.pixel_size_nm, h_nm = field.height * cam.pixel_size_nm;
  for (const auto& curve : curves) {
    ASSERT_GE(curve.size(), 2u);
    for (size_t i = 0; i + 1 < curve.size(); ++i)  // a polyline with 10 nm steps
      EXPECT_NEAR(std::hypot(curve[i + 1].first - curve[i].first, curve[i + 1].second - curve[i].second),
                  10.0, 1e-9);
    for (const auto& [x, y] : curve) {  // within the field plus a one-pixel margin
      EXPECT_GE(x, -cam.pixel_size_nm);
      EXPECT_LE(x, w_nm + cam.pixel_size_nm);
      EXPECT_GE(y, -cam.pixel_size_nm);
      EXPECT_LE(y, h_nm + cam.pixel_size_nm);
    }
  }
  // Samples lie on the polyline (within half a step of a vertex).
  std::mt19937_64 rng(3);
  for (int i = 0; i < 500; ++i) {
    auto [x, y] = fil.sample(rng);
    EXPECT_LE(distance_to_curves(curves, x, y), 5.0 + 1e-9);
  }
  // Simulated emitters: on the curves up to the 8 nm label jitter, inside the field.
  size_t n = 0;
  for (int64_t f = 0; f < 40; ++f) {
    Frame fr = simulate_frame(field, cam, ranges, &fil, 31, f);
    for (const Emitter& e : fr.emitters) {
      ++n;
      EXPECT_LE(distance_to_curves(curves, e.x_nm, e.y_nm), 50.0)
          << "frame " << f << " at " << e.x_nm << "," << e.y_nm;
      EXPECT_GE(e.x_nm, 0);
      EXPECT_LT(e.x_nm, w_nm);
      EXPECT_GE(e.y_nm, 0);
      EXPECT_LT(e.y_nm, h_nm);
    }
  }
  EXPECT_GT(n, 1000u);
}

TEST(Filaments, SameSeedSameStructure) {
  FieldSpec field;
  field.width = 50;
  field.height = 40;
  field.structure = Structure::Filaments;
  field.filaments = 5;
  Filaments a(field, 100, 8), b(field, 100, 8), c(field, 100, 9);
  EXPECT_EQ(a.curves(), b.curves());
  EXPECT_NE(a.curves(), c.curves());
  std::mt19937_64 ra(1), rb(1);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(a.sample(ra), b.sample(rb));
}

// Training sets (simulate.train.structure: filaments): every frame on filaments of its own, the
// same whoever draws the frame; a frame's emitters lie on its curves, not on another frame's.
TEST(Filaments, DrawnAnewForEachFrameOfATrainingSet) {
  FieldSpec field;
  field.width = field.height = 20;
  field.structure = Structure::Filaments;
  field.filaments = 2;
  field.filaments_per_frame = true;
  field.density_per_um2 = 10;
  Camera cam;
  EmitterRanges ranges;
  EXPECT_EQ(frame_filaments(field, 100, 7, 3).curves(), frame_filaments(field, 100, 7, 3).curves());
  EXPECT_NE(frame_filaments(field, 100, 7, 3).curves(), frame_filaments(field, 100, 7, 4).curves());
  EXPECT_NE(frame_filaments(field, 100, 7, 3).curves(), frame_filaments(field, 100, 8, 3).curves());
  size_t on_own = 0, near_other = 0, n = 0;
  for (int64_t f = 0; f < 30; ++f) {
    const Filaments own = frame_filaments(field, cam.pixel_size_nm, 7, f);
    const Filaments other = frame_filaments(field, cam.pixel_size_nm, 7, f + 1);
    for (const Emitter& e : simulate_frame(field, cam, ranges, &own, 7, f).emitters) {
      ++n;
      on_own += distance_to_curves(own.curves(), e.x_nm, e.y_nm) <= 50.0;
      near_other += distance_to_curves(other.curves(), e.x_nm, e.y_nm) <= 50.0;
    }
  }
  EXPECT_GT(n, 500u);
  EXPECT_EQ(on_own, n);
  // Two random curves through a 2x2 um field pass within 50 nm of a small part of it.
  EXPECT_LT(near_other, n / 4) << near_other << " of " << n;
}

TEST(Filaments, NoFilamentsIsAnError) {
  FieldSpec field;
  field.structure = Structure::Filaments;
  field.filaments = 0;
  EXPECT_THROW(Filaments(field, 100, 1), dsir::Error);
}

// ---------------------------------------------------------------------------------------------
// Density mask

class DensityMaskTest : public dsir::test::TempDirTest {
 protected:
  std::string write_mask(const std::string& name, uint32_t w, uint32_t h, const std::vector<uint16_t>& v,
                         int frames = 1) {
    const std::string path = (dir_ / name).string();
    dsir::tiff::Writer wr(path, w, h, dsir::tiff::WriteFormat::U16, 100, static_cast<uint64_t>(frames));
    for (int k = 0; k < frames; ++k) wr.write_frame(v.data());
    wr.commit();
    return path;
  }
};

TEST_F(DensityMaskTest, ReadsTiffNormalisesByMaximumAndStretchesOverTheField) {
  // 4 x 2 mask: row 0 = 0, 100, 200, 400; row 1 = 400 everywhere.
  const std::string path = write_mask("mask.tif", 4, 2, {0, 100, 200, 400, 400, 400, 400, 400});
  DensityMask m = DensityMask::from_tiff(path);
  EXPECT_EQ(m.width(), 4);
  EXPECT_EQ(m.height(), 2);
  EXPECT_DOUBLE_EQ(m.mean_weight(), (0 + 0.25 + 0.5 + 1 + 4) / 8.0);
  EXPECT_EQ(m.weight_at(0.1, 0.2), 0.0);    // column 0, row 0
  EXPECT_EQ(m.weight_at(0.3, 0.49), 0.25);  // column 1, row 0
  EXPECT_EQ(m.weight_at(0.6, 0.0), 0.5);
  EXPECT_EQ(m.weight_at(0.99, 0.0), 1.0);
  EXPECT_EQ(m.weight_at(0.0, 0.5), 1.0);  // row 1
  EXPECT_EQ(m.weight_at(1.0, 1.0), 1.0);  // the far edge stays inside
}

TEST_F(DensityMaskTest, BadMasksAreInputErrorsNamingTheFile) {
  auto expect_error = [](const std::string& path, const std::string& part) {
    try {
      DensityMask::from_tiff(path);
      ADD_FAILURE() << "no InputError for " << path;
    } catch (const dsir::InputError& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find(path), std::string::npos) << msg;
      EXPECT_NE(msg.find(part), std::string::npos) << msg;
    }
  };
  expect_error(write_mask("zero.tif", 3, 3, std::vector<uint16_t>(9, 0)), "zero everywhere");
  expect_error(write_mask("stack.tif", 3, 3, std::vector<uint16_t>(9, 5), 2), "2 frames");
  expect_error((dir_ / "absent.tif").string(), "absent.tif");
  EXPECT_THROW(DensityMask({1.0, -0.5}, 2, 1, "weights"), dsir::InputError);
  EXPECT_THROW(DensityMask({1.0, NAN}, 2, 1, "weights"), dsir::InputError);
  EXPECT_THROW(DensityMask({1.0, 1.0, 1.0}, 2, 1, "weights"), dsir::InputError);
}

TEST_F(DensityMaskTest, EmittersFollowTheMaskWeights) {
  // A 2 x 2 mask of weights 0, 1/3, 2/3, 1 over a 40 x 40 pixel field: each quadrant's count is
  // Poisson with mean density x quadrant area x weight; the empty quadrant gets none.
  DensityMask mask({0, 1, 2, 3}, 2, 2, "quadrants");
  FieldSpec field;
  field.width = 40;
  field.height = 40;
  field.density_per_um2 = 1.5;
  Camera cam;
  EmitterRanges ranges;
  const double quadrant_um2 = 2.0 * 2.0;  // the field is 4 x 4 µm
  std::vector<double> counts[4];
  std::vector<double> totals;
  const int frames = 400;
  for (int64_t f = 0; f < frames; ++f) {
    Frame fr = simulate_frame(field, cam, ranges, nullptr, 99, f, &mask);
    double q[4] = {0, 0, 0, 0};
    for (const Emitter& e : fr.emitters) {
      const int c = e.x_nm < 2000 ? 0 : 1, r = e.y_nm < 2000 ? 0 : 1;
      q[r * 2 + c] += 1;
    }
    for (int k = 0; k < 4; ++k) counts[k].push_back(q[k]);
    totals.push_back(static_cast<double>(fr.emitters.size()));
  }
  for (int k = 0; k < 4; ++k) {
    const double want = field.density_per_um2 * quadrant_um2 * k / 3.0;
    Moments m = moments(counts[k]);
    if (k == 0) {
      EXPECT_EQ(m.mean, 0.0) << "an emitter where the mask is 0";
      continue;
    }
    EXPECT_NEAR(m.mean, want, 5 * std::sqrt(want / frames)) << "quadrant " << k;
    EXPECT_NEAR(m.var, want, 5 * m.se_var) << "quadrant " << k;  // thinned Poisson is Poisson
  }
  Moments t = moments(totals);
  const double want_total = field.density_per_um2 * 16.0 * mask.mean_weight();
  EXPECT_NEAR(t.mean, want_total, 5 * std::sqrt(want_total / frames));
}

TEST_F(DensityMaskTest, FilamentsAreThinnedByTheMaskToo) {
  // Left half only: filament emitters appear only where the mask is nonzero.
  DensityMask mask({1, 0}, 2, 1, "left half");
  FieldSpec field;
  field.width = 48;
  field.height = 48;
  field.structure = Structure::Filaments;
  field.filaments = 8;
  field.density_per_um2 = 2.0;
  Camera cam;
  EmitterRanges ranges;
  Filaments fil(field, cam.pixel_size_nm, 5);
  size_t n = 0;
  for (int64_t f = 0; f < 50; ++f)
    for (const Emitter& e : simulate_frame(field, cam, ranges, &fil, 5, f, &mask).emitters) {
      ++n;
      EXPECT_LT(e.x_nm, 2400.0);
    }
  EXPECT_GT(n, 500u);
}

TEST(SimulateFrame, PsfModelChangesPixelsNotEmitters) {
  FieldSpec field;
  Camera cam;
  EmitterRanges integrated, sampled;
  sampled.psf = PsfModel::Sampled;
  Frame a = simulate_frame(field, cam, integrated, nullptr, 12, 4);
  Frame b = simulate_frame(field, cam, sampled, nullptr, 12, 4);
  ASSERT_EQ(a.emitters.size(), b.emitters.size());
  ASSERT_FALSE(a.emitters.empty());
  for (size_t i = 0; i < a.emitters.size(); ++i) EXPECT_EQ(a.emitters[i].x_nm, b.emitters[i].x_nm);
  EXPECT_NE(a.pixels, b.pixels);
  // Each frame's pixels follow its own model's expectation.
  auto expected =
      render_expected(b.emitters, field.width, field.height, cam.pixel_size_nm, PsfModel::Sampled);
  double chi2 = 0;
  for (size_t i = 0; i < b.pixels.size(); ++i) {
    const double mu = cam.base_level + (expected[i] + cam.background_photons) / cam.e_per_adu;
    chi2 += (b.pixels[i] - mu) * (b.pixels[i] - mu) /
            model_variance_adu(expected[i] + cam.background_photons, cam);
  }
  const double n = static_cast<double>(b.pixels.size());
  EXPECT_NEAR(chi2 / n, 1.0, 5 * std::sqrt(2.0 / n));
}

// ---------------------------------------------------------------------------------------------
// ThunderSTORM's demo data: the real TIFF against our rendering of its ground truth.

TEST(ThunderStormDemo, RenderedExpectationCorrelatesWithRealFrames) {
  const fs::path dir = fs::path(DSIR_SHARED_DIR) / "data" / "deepstorm-demo1";
  const fs::path csv = dir / "positions_demo1.csv", tif = dir / "ArtificialDataset_demo1.tif";
  DSIR_NEED_SHARED_FILE(csv);
  DSIR_NEED_SHARED_FILE(tif);

  auto truth = dsir::read_localizations_csv(csv.string());
  dsir::tiff::Reader reader(tif.string());
  const auto& info = reader.info();
  ASSERT_EQ(info.frames, 20u);
  ASSERT_EQ(info.width, 64u);
  ASSERT_EQ(info.height, 64u);
  const double px = 100;
  const int w = 64, h = 64;
  ASSERT_EQ(truth.emitters.size(), 4956u);

  std::vector<std::vector<Emitter>> per_frame(info.frames);
  for (const Emitter& e : truth.emitters) {
    ASSERT_GE(e.frame, 0);
    ASSERT_LT(e.frame, 20);
    ASSERT_FALSE(std::isnan(e.sigma_nm));
    ASSERT_FALSE(std::isnan(e.photons));
    per_frame[static_cast<size_t>(e.frame)].push_back(e);
  }
  // ThunderSTORM writes sqrt(background photons) as bkgstd (its `offset` is the base level).
  const double background = truth.emitters.front().bkgstd * truth.emitters.front().bkgstd;

  std::vector<double> xs, ys;  // expected photons, TIFF values
  std::vector<float> frame(static_cast<size_t>(w * h));
  for (uint64_t f = 0; f < info.frames; ++f) {
    reader.read_frame(f, frame.data());
    auto expected = render_expected(per_frame[f], w, h, px);
    for (size_t i = 0; i < frame.size(); ++i) {
      xs.push_back(expected[i]);
      ys.push_back(frame[i]);
    }
  }
  const double n = static_cast<double>(xs.size());
  double mx = 0, my = 0;
  for (size_t i = 0; i < xs.size(); ++i) {
    mx += xs[i];
    my += ys[i];
  }
  mx /= n;
  my /= n;
  double sxx = 0, syy = 0, sxy = 0;
  for (size_t i = 0; i < xs.size(); ++i) {
    sxx += (xs[i] - mx) * (xs[i] - mx);
    syy += (ys[i] - my) * (ys[i] - my);
    sxy += (xs[i] - mx) * (ys[i] - my);
  }
  const double a = sxy / sxx, c = my - a * mx;
  const double pearson = sxy / std::sqrt(sxx * syy);
  // Residual variance against what Poisson noise on (expected + background) photons would give
  // through a gain of a ADU per photon.
  double res2 = 0, poisson = 0;
  for (size_t i = 0; i < xs.size(); ++i) {
    const double r = ys[i] - (a * xs[i] + c);
    res2 += r * r;
    poisson += a * a * (xs[i] + background);
  }
  const double ratio = res2 / poisson;
  std::cout << "[ info ] demo1 fit TIFF = a*expected + c: a = " << a << " ADU/photon, c = " << c
            << " ADU, Pearson r = " << pearson << ", residual var / Poisson var = " << ratio
            << " (background " << background << " photons)\n";
  EXPECT_GT(pearson, 0.98);
  EXPECT_GT(a, 0);
  EXPECT_NEAR(ratio, 2.0, 0.2);  // EM excess noise (../shared/FINDINGS.md, fact 3)
}

// ---------------------------------------------------------------------------------------------
// The DSIR preset (configs/dsir-preset.yaml): DSIR's seed set, value by value. test_cli.sh also
// validates it against the whole schema and simulates with it.

TEST(DsirPreset, IsDsirsSeedSet) {
  const YAML::Node y = YAML::LoadFile(std::string(DSIR_SOURCE_DIR) + "/configs/dsir-preset.yaml");
  EXPECT_EQ(y["simulate"]["train"]["width"].as<int>(), 26);
  EXPECT_EQ(y["simulate"]["train"]["height"].as<int>(), 26);
  EXPECT_EQ(y["camera"]["pixel_size_nm"].as<double>(), 100);
  EXPECT_EQ(y["psf"]["fwhm_nm"].as<std::vector<double>>(), (std::vector<double>{200, 300}));
  EXPECT_EQ(y["psf"]["photons"].as<std::vector<double>>(), (std::vector<double>{80, 2050}));
  EXPECT_EQ(y["simulate"]["train"]["density"].as<double>(), 2.0);
  EXPECT_EQ(y["camera"]["background_photons"].as<double>(), 20);
  EXPECT_EQ(y["camera"]["base_level"].as<double>(), 100);
  EXPECT_EQ(y["camera"]["e_per_adu"].as<double>(), 1.0);
  EXPECT_EQ(y["camera"]["em_gain"].as<double>(), 0);
  // 3500 train + 1500 validation: the last 30 % of 5000 frames are held out.
  const int frames = y["simulate"]["train"]["frames"].as<int>();
  const double validation = y["train"]["validation_fraction"].as<double>();
  EXPECT_EQ(frames, 5000);
  EXPECT_EQ(static_cast<int>(std::lround(frames * validation)), 1500);
  EXPECT_EQ(frames - static_cast<int>(std::lround(frames * validation)), 3500);
  // DSIR's training, written out: the schema's train.* defaults are a faster recipe.
  EXPECT_EQ(y["train"]["epochs"].as<int>(), 100);
  EXPECT_EQ(y["train"]["batch_size"].as<int>(), 32);
  EXPECT_EQ(y["train"]["lr"].as<double>(), 1e-4);
  EXPECT_EQ(y["train"]["label_scale"].as<double>(), 1);
  EXPECT_EQ(y["train"]["loss"]["fwhm"].as<double>(), 3);
  EXPECT_EQ(y["train"]["loss"]["kernel_size"].as<int>(), 5);

  // Its frames: about density x area = 2.0 x 2.6 x 2.6 = 13.52 emitters, Poisson.
  FieldSpec field;
  field.width = y["simulate"]["train"]["width"].as<int>();
  field.height = y["simulate"]["train"]["height"].as<int>();
  field.density_per_um2 = y["simulate"]["train"]["density"].as<double>();
  Camera cam;
  cam.pixel_size_nm = y["camera"]["pixel_size_nm"].as<double>();
  EmitterRanges ranges;
  std::vector<double> counts;
  for (int64_t f = 0; f < 2000; ++f)
    counts.push_back(static_cast<double>(simulate_frame(field, cam, ranges, nullptr, 42, f).emitters.size()));
  Moments m = moments(counts);
  EXPECT_NEAR(m.mean, 13.52, 5 * std::sqrt(13.52 / 2000));
  EXPECT_NEAR(m.var, 13.52, 5 * m.se_var);
}

}  // namespace
