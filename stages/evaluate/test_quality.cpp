// FRC resolution and NeNA precision against known answers on simulated localizations.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <complex>
#include <filesystem>
#include <random>

#include "pipeline/errors.h"
#include "stages/evaluate/quality.h"

namespace fs = std::filesystem;

namespace dsir {
namespace {

constexpr double kPi = 3.14159265358979323846;
using metrics::Point;

// Emitters at random positions in a 10 um field switch on at random and stay on for a geometric
// number of frames (mean `mean_on`), localized in every frame they are on with Gaussian noise
// `sigma_nm`; about `on_per_frame` are on in any frame. Fixed seed.
std::vector<Point> blinking(double sigma_nm, double mean_on, double on_per_frame = 20, int frames = 3000) {
  std::mt19937_64 rng(1401);
  std::uniform_real_distribution<double> field(0, 10000), unit(0, 1);
  std::normal_distribution<double> noise(0, sigma_nm);
  std::poisson_distribution<int> births(on_per_frame / mean_on);
  std::vector<Point> out;
  for (int f = 0; f < frames; ++f)
    for (int b = births(rng); b > 0; --b) {
      const double x = field(rng), y = field(rng);
      for (int g = f; g < frames; ++g) {
        out.push_back({g, x + noise(rng), y + noise(rng)});
        if (unit(rng) < 1 / mean_on) break;
      }
    }
  return out;
}

TEST(Nena, RecoversTheLocalizationPrecisionWithinTenPercent) {
  for (double sigma : {15.0, 30.0}) {
    const quality::NenaResult r = quality::nena(blinking(sigma, 4));
    ASSERT_TRUE(r.defined) << r.why;
    std::printf("NeNA: simulated sigma %.0f nm -> %.2f nm (%llu pairs, %.0f%% in the pair term)\n", sigma,
                r.sigma_nm, (unsigned long long)r.pairs, 100 * r.pair_fraction);
    EXPECT_NEAR(r.sigma_nm, sigma, 0.1 * sigma);
    EXPECT_EQ(r.fit.size(), r.histogram.size());
  }
}

TEST(Nena, UndefinedWithoutRepeatedLocalizations) {
  // Few emitters, each on for one frame, none in consecutive frames near each other.
  std::vector<Point> sparse;
  for (int f = 0; f < 50; ++f) sparse.push_back({2 * f, 100.0 * f, 50});
  const quality::NenaResult r = quality::nena(sparse);
  EXPECT_FALSE(r.defined);
  EXPECT_NE(r.why.find("fewer than 100"), std::string::npos) << r.why;
  EXPECT_FALSE(quality::nena({}).defined);
}

// Emitters at random positions (a dense, structureless sample), each localized `k` times in
// random frames with Gaussian noise sigma. With the halves drawn at random, the expected ring
// sums give FRC(q) = c phi^2 / (1 + c phi^2), c = (k - 1) / 2, phi^2 = exp(-4 pi^2 sigma^2 q^2)
// (the localization-noise model of Nieuwenhuizen et al. 2013, Nat. Methods 10:557, Suppl. Note),
// so the 1/7 crossing is at R = 2 pi sigma / sqrt(ln(3 (k - 1))): 3.13 sigma for k = 20, inside
// the 2.5-4.5 sigma that paper's simulations of densely labelled structures show.
std::vector<Point> dense(double sigma_nm, int k, int emitters = 2000) {
  std::mt19937_64 rng(1402);
  std::uniform_real_distribution<double> field(0, 4000);
  std::uniform_int_distribution<int> frame(0, 1999);
  std::normal_distribution<double> noise(0, sigma_nm);
  std::vector<Point> out;
  for (int m = 0; m < emitters; ++m) {
    const double x = field(rng), y = field(rng);
    for (int i = 0; i < k; ++i) out.push_back({frame(rng), x + noise(rng), y + noise(rng)});
  }
  return out;
}

TEST(Frc, ResolutionFollowsTheLocalizationNoiseModel) {
  double previous = 0, at20 = 0;
  for (double sigma : {10.0, 20.0, 30.0}) {
    const quality::FrcResult r = quality::frc(dense(sigma, 20));
    ASSERT_TRUE(r.defined) << r.why;
    const double theory = 2 * kPi * sigma / std::sqrt(std::log(3.0 * 19));
    std::printf("FRC: sigma %.0f nm -> resolution %.1f nm (theory %.1f nm, %.2f sigma), %dx%d at %.1f nm\n",
                sigma, r.resolution_nm, theory, r.resolution_nm / sigma, r.size, r.size, r.pixel_nm);
    EXPECT_NEAR(r.resolution_nm, theory, 0.12 * theory);
    EXPECT_GT(r.resolution_nm, previous);  // coarser with worse precision
    previous = r.resolution_nm;
    if (sigma == 20) at20 = r.resolution_nm;
  }
  // More localizations per emitter: a finer resolution at the same precision, as the model says.
  const quality::FrcResult many = quality::frc(dense(20, 60));
  ASSERT_TRUE(many.defined) << many.why;
  const double theory = 2 * kPi * 20 / std::sqrt(std::log(3.0 * 59));
  EXPECT_NEAR(many.resolution_nm, theory, 0.12 * theory);
  EXPECT_LT(many.resolution_nm, at20);
}

TEST(Frc, UndefinedWithTooFewLocalizationsAndOddEvenBlocks) {
  const quality::FrcResult r = quality::frc(dense(10, 1, 150));
  EXPECT_FALSE(r.defined);
  EXPECT_NE(r.why.find("fewer than 100"), std::string::npos) << r.why;
  // Blocks of frames: all of frames 0-1999 in blocks of 4000 fall in the first half.
  quality::FrcOptions blocks;
  blocks.block_frames = 4000;
  const quality::FrcResult b = quality::frc(dense(10, 20), blocks);
  EXPECT_FALSE(b.defined);
  EXPECT_EQ(b.half_b, 0u);
}

TEST(Frc, FftMatchesTheDirectTransform) {
  const int n = 8;
  std::mt19937_64 rng(3);
  std::normal_distribution<double> g;
  std::vector<std::complex<double>> data(n * n);
  for (auto& v : data) v = {g(rng), g(rng)};
  std::vector<std::complex<double>> fast = data;
  quality::fft2(fast, n);
  for (int ky = 0; ky < n; ++ky)
    for (int kx = 0; kx < n; ++kx) {
      std::complex<double> s = 0;
      for (int y = 0; y < n; ++y)
        for (int x = 0; x < n; ++x) s += data[y * n + x] * std::polar(1.0, -2 * kPi * (kx * x + ky * y) / n);
      EXPECT_NEAR(std::abs(fast[ky * n + kx] - s), 0, 1e-9);
    }
  EXPECT_THROW(quality::fft2(fast, 6), Error);
}

TEST(Quality, PlotsAreWritten) {
  const fs::path dir = fs::temp_directory_path() / ("dsir_quality_" + std::to_string(getpid()));
  quality::save_frc_plot((dir / "frc.png").string(), quality::frc(dense(20, 20, 500)));
  quality::save_nena_plot((dir / "nena.png").string(), quality::nena(blinking(15, 4, 20, 300)));
  EXPECT_GT(fs::file_size(dir / "frc.png"), 1000u);
  EXPECT_GT(fs::file_size(dir / "nena.png"), 1000u);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace dsir
