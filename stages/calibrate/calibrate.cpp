#include "stages/calibrate/calibrate.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <filesystem>
#include <optional>
#include <random>

#include "pipeline/errors.h"
#include "pipeline/formats/raw_file.h"
#include "pipeline/picture.h"
#include "pipeline/tiff.h"
#include "stages/simulate/camera_fit.h"

namespace dsir::calibrate {
namespace {

constexpr int kRoiHalf = 4;          // fit window 9x9: ±3.6 sigma at the usual 1.1 px
constexpr double kDetectSigmas = 6;  // detection threshold on the 3x3 mean, in its noise
// No other maximum this close to a fitted spot, so no other emitter's light reaches its window.
constexpr double kIsolationPx = 10;
// Pixels this close to a detection are not background: an emitter up to ~5 px from the maximum it
// merged into, plus 3 sigma of its light (sigma ~1.1 px). Smaller radii left enough of the tails in
// to raise the background's third cumulant by 10-30 %.
constexpr double kSignalRadiusPx = 9;
// For the second detection threshold only: the largest of these radii that leaves kMinBackgroundShare.
constexpr std::array<double, 6> kRadii = {9, 8, 7, 6, 5, 4};
// Dense data (README): isolated maxima (no other within kIsolationPx) are fewer than this share of
// all maxima. At 0.5 emitters/µm² about 20 % are isolated, on demo 1 1.8 %, on a uniform field of
// 6/µm² 0.1 %; the share passes 5 % near 1/µm². A short sparse stack keeps the sparse method (and
// its error when it has fewer than kMinSpots isolated spots): the dense method's background is 5 %
// of the pixels, too few for the third cumulant there.
constexpr double kIsolatedShare = 0.05;
// A crowded window is fitted jointly with the maxima whose pixel lies in it or next to it, up to
// kMaxEmitters (more leave too few pixels per parameter).
constexpr int kNeighbourReach = kRoiHalf + 1;
constexpr size_t kMaxEmitters = 4;
constexpr size_t kMaxDenseWindows = 3000;
constexpr double kMinDenseSpots = 10;         // dense: windows that fit as single emitters (PSF width)
constexpr double kBackgroundShare = 0.05;     // dense: pixels taken as background (darkest neighbours)
constexpr double kMinDenseBackground = 2000;  // dense: fewer leave the third cumulant to chance
constexpr int kMomentBins = 16;
constexpr size_t kModeSamples = 1 << 20;      // pixel values, evenly spaced, for the first guess
constexpr size_t kMinSpots = 50;              // fewer spots leave the variance line to chance
constexpr double kMinBackgroundShare = 0.05;  // of all pixel values, for the background cumulants
// Spots this many robust deviations wider or narrower than the median are left out: dense data
// (its blends), and sparse data's variance line, where 2 instead of 3 took the spots' slope from
// -1.7..+5.9 % to -2..+4.5 % over seeds 20-31 (1.5: -3.6..+3.3 %, cutting into the noise), its
// bias from pairs that merged.
constexpr double kWidthCut = 3;
constexpr double kSparseWidthCut = 2;
constexpr double kMisfitRatio = 2;  // spots with this many times the expected squared residuals too

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  const size_t m = v.size() / 2;
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(m), v.end());
  return v[m];
}

// Sums of powers of values (shifted near their mean, for precision) and the cumulants from them.
struct Moments {
  double n = 0, s1 = 0, s2 = 0, s3 = 0;
  void add(double v) {
    n += 1;
    s1 += v;
    s2 += v * v;
    s3 += v * v * v;
  }
  double mean() const { return s1 / n; }
  double kappa2() const { return (s2 - s1 * s1 / n) / (n - 1); }
  // The unbiased k-statistic n² m3 / ((n - 1)(n - 2)).
  double kappa3() const {
    const double m = mean(), m3 = s3 / n - 3 * m * s2 / n + 2 * m * m * m;
    return n * n * m3 / ((n - 1) * (n - 2));
  }
};

// The half-sample mode of sorted values (Bickel & Frühwirth, CSDA 50 (2006)): the middle of the
// shortest interval holding half of them, repeated within it.
double half_sample_mode(const std::vector<double>& sorted) {
  size_t lo = 0, hi = sorted.size();  // [lo, hi): the values left
  while (hi - lo > 3) {
    const size_t half = (hi - lo + 1) / 2;
    size_t best = lo;
    for (size_t i = lo; i + half <= hi; ++i)
      if (sorted[i + half - 1] - sorted[i] < sorted[best + half - 1] - sorted[best]) best = i;
    lo = best;
    hi = best + half;
  }
  double s = 0;
  for (size_t i = lo; i < hi; ++i) s += sorted[i];
  return s / static_cast<double>(hi - lo);
}

// The mass of a unit Gaussian (centre c, width s) inside [a, a + 1).
double pixel_mass(double a, double c, double s) {
  const double k = 1.0 / (std::sqrt(2.0) * s);
  return 0.5 * (std::erf((a + 1 - c) * k) - std::erf((a - c) * k));
}

// Emitters per frame from how the frames' light fluctuates (Campbell's theorem, as balanced SOFI
// uses it): where each frame's emitters are a Poisson number drawn anew and placed independently
// (anywhere, filaments too), the signal above the background summed over the frame has mean
// N E[I] L and, summed over pairs of pixels up to r = 4σ apart, covariance N E[I²] Q, with L
// the PSF's light inside the frame and Q its pair sums there, averaged over positions (both 1
// but for the frame's edges and, for Q, the PSF's tails beyond r; σ enters only through these).
// So N = (Σ mean / L)² Q (1 + CV²) / Σ covariance, CV the emitters' brightness spread:
// overlapping emitters count as they are, unlike maxima or fits.
// Shot and read noise enter the covariance only at distance 0, as the variance line says.
// Returns 0 when the frames do not fluctuate beyond their noise.
double emitters_from_fluctuations(const Stack& stack, const Calibration& cal, double brightness_cv2) {
  const int w = stack.width, h = stack.height, r = static_cast<int>(std::ceil(4.0 * cal.sigma_px));
  const size_t n = static_cast<size_t>(w) * static_cast<size_t>(h), stride = static_cast<size_t>(w) + 1;
  // Per pixel over the frames: Σ S, Σ B and Σ S B, with B the sum of S over the (2r+1)² box
  // around the pixel (inside the frame), from an integral image.
  std::vector<double> sum(n, 0.0), box_sum(n, 0.0), product_sum(n, 0.0), integral(stride * (h + 1), 0.0);
  for (const auto& img : stack.frames) {
    for (int y = 0; y < h; ++y)
      for (int x = 0; x < w; ++x)
        integral[(y + 1) * stride + x + 1] = img[y * w + x] - cal.background_mean_adu +
                                             integral[y * stride + x + 1] + integral[(y + 1) * stride + x] -
                                             integral[y * stride + x];
    for (int y = 0; y < h; ++y) {
      const int y0 = std::max(0, y - r), y1 = std::min(h, y + r + 1);
      for (int x = 0; x < w; ++x) {
        const int x0 = std::max(0, x - r), x1 = std::min(w, x + r + 1);
        const double box = integral[y1 * stride + x1] - integral[y0 * stride + x1] -
                           integral[y1 * stride + x0] + integral[y0 * stride + x0];
        const double v = img[y * w + x] - cal.background_mean_adu;
        const size_t i = static_cast<size_t>(y) * w + x;
        sum[i] += v;
        box_sum[i] += box;
        product_sum[i] += v * box;
      }
    }
  }
  const double t = static_cast<double>(stack.frames.size());
  double signal = 0, covariance = 0;
  for (size_t i = 0; i < n; ++i) {
    const double mean = sum[i] / t;
    signal += mean;
    covariance += (product_sum[i] - t * mean * (box_sum[i] / t)) / (t - 1);
    covariance -= cal.kappa2_slope * (mean + cal.background_mean_adu) + cal.kappa2_intercept;
  }
  if (!(signal > 0) || !(covariance > 0)) return 0.0;
  // Along one axis of `len` pixels, averaged over emitter positions: the PSF's light inside,
  // Σ_i a_i, and its pair sums Σ_i Σ_{|i-j|<=r} a_i a_j (a_i: a pixel-integrated Gaussian).
  const auto axis = [&](int len) {
    constexpr int kSteps = 16;  // positions per pixel
    double light = 0, pairs = 0;
    std::vector<double> a(static_cast<size_t>(len));
    for (int p = 0; p < len * kSteps; ++p) {
      const double c = (p + 0.5) / kSteps;
      // Only the pixels within 8σ of the emitter carry light (beyond, < 1e-15 of it).
      const int lo = std::max(0, static_cast<int>(c - 8 * cal.sigma_px) - 1);
      const int hi = std::min(len, static_cast<int>(c + 8 * cal.sigma_px) + 2);
      for (int i = lo; i < hi; ++i) a[i] = pixel_mass(i, c, cal.sigma_px);
      for (int i = lo; i < hi; ++i) {
        light += a[i];
        for (int j = std::max(lo, i - r); j < std::min(hi, i + r + 1); ++j) pairs += a[i] * a[j];
      }
    }
    return std::make_pair(light / (len * kSteps), pairs / (len * kSteps));
  };
  const auto [lx, qx] = axis(w);
  const auto [ly, qy] = axis(h);
  const double per_emitter = signal / (lx * ly);
  return per_emitter * per_emitter * qx * qy * (1.0 + brightness_cv2) / covariance;
}

// The emitters' brightness spread CV² from the single-emitter fits' light, less what the fits'
// own noise adds (shot noise of the spot and of the background under ~4πσ² pixels, read noise).
double brightness_cv2(const std::vector<double>& totals, const Calibration& cal) {
  if (totals.size() < 2) return 0.0;
  const double area = 4 * M_PI * cal.sigma_px * cal.sigma_px;
  double m1 = 0, m2 = 0, noise = 0;
  for (double total : totals) {
    m1 += total;
    m2 += total * total;
    noise += cal.kappa2_slope * (total + area * (cal.background_mean_adu - cal.base_level)) +
             area * cal.read_noise_adu * cal.read_noise_adu;
  }
  const double k = static_cast<double>(totals.size());
  m1 /= k;
  m2 /= k;
  noise /= k;
  return std::max(0.0, (m2 - m1 * m1 - noise) / (m1 * m1));
}

// The area around an emitter within which a second one merges with it into one detected maximum
// (the 3x3 mean's local maxima above `threshold` ADU over the background): pairs of noiseless
// pixel-integrated Gaussians of width sigma, their light drawn from `totals`, at separations r in
// steps of 0.25 px (random angle and sub-pixel position); the area is ∫ P(merged | r) 2πr dr.
// Two maxima of the 3x3 mean resolve only beyond ~3 sigma for unequal pairs, not the 2 sigma of
// the Rayleigh-like rule used before (densities came out 4-7 % low).
double merge_area(double sigma, const std::vector<double>& totals, double threshold) {
  constexpr int n = 32, trials = 16;
  constexpr double step = 0.25;
  std::mt19937_64 rng(1);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  std::vector<double> img(n * n), sm(n * n);
  double area = 0;
  for (double r = step / 2; r < 8; r += step) {
    int merged = 0;
    for (int t = 0; t < trials; ++t) {
      const double a = 2 * M_PI * unit(rng), x1 = 15 + unit(rng), y1 = 15 + unit(rng);
      const double x2 = x1 + r * std::cos(a), y2 = y1 + r * std::sin(a);
      const double t1 = totals[static_cast<size_t>(unit(rng) * totals.size()) % totals.size()];
      const double t2 = totals[static_cast<size_t>(unit(rng) * totals.size()) % totals.size()];
      for (int y = 0; y < n; ++y)
        for (int x = 0; x < n; ++x)
          img[y * n + x] = t1 * pixel_mass(x, x1, sigma) * pixel_mass(y, y1, sigma) +
                           t2 * pixel_mass(x, x2, sigma) * pixel_mass(y, y2, sigma);
      for (int y = 1; y + 1 < n; ++y)
        for (int x = 1; x + 1 < n; ++x) {
          double v = 0;
          for (int dy = -1; dy <= 1; ++dy)
            for (int dx = -1; dx <= 1; ++dx) v += img[(y + dy) * n + x + dx];
          sm[y * n + x] = v / 9;
        }
      int maxima = 0;
      for (int y = 2; y + 2 < n; ++y)
        for (int x = 2; x + 2 < n; ++x) {
          const double v = sm[y * n + x];
          if (v <= threshold) continue;
          bool is_max = true;
          for (int dy = -1; dy <= 1 && is_max; ++dy)
            for (int dx = -1; dx <= 1; ++dx)
              if ((dx || dy) && sm[(y + dy) * n + x + dx] >= v) {
                is_max = false;
                break;
              }
          maxima += is_max;
        }
      merged += maxima < 2;
    }
    area += static_cast<double>(merged) / trials * 2 * M_PI * r * step;
  }
  return area;
}

// Solves the n x n system a x = b in place (Gaussian elimination, partial pivoting); false when
// singular.
bool solve(std::vector<double> a, std::vector<double>& b, int n) {
  for (int col = 0; col < n; ++col) {
    int piv = col;
    for (int r = col + 1; r < n; ++r)
      if (std::abs(a[r * n + col]) > std::abs(a[piv * n + col])) piv = r;
    if (!(std::abs(a[piv * n + col]) > 1e-300)) return false;
    for (int c = 0; c < n; ++c) std::swap(a[col * n + c], a[piv * n + c]);
    std::swap(b[col], b[piv]);
    for (int r = col + 1; r < n; ++r) {
      const double f = a[r * n + col] / a[col * n + col];
      for (int c = col; c < n; ++c) a[r * n + c] -= f * a[col * n + c];
      b[r] -= f * b[col];
    }
  }
  for (int r = n - 1; r >= 0; --r) {
    double s = b[r];
    for (int c = r + 1; c < n; ++c) s -= a[r * n + c] * b[c];
    b[r] = s / a[r * n + r];
  }
  return true;
}

struct Roi {
  int frame = 0;
  int x0 = 0, y0 = 0, size = 0;               // top-left pixel, side
  std::vector<double> values;                 // ADU, row-major
  std::vector<std::pair<int, int>> emitters;  // maxima fitted in the window, its own first
};

// sigma, offset, then x, y, total for each emitter of the window: the emitters share one width
// (one PSF) and one background.
using Params = std::vector<double>;
constexpr int kShared = 2;

std::vector<double> model(const Roi& roi, const Params& p) {
  std::vector<double> m(roi.values.size(), p[1]);
  std::array<double, 2 * kRoiHalf + 1> mx{}, my{};
  for (size_t e = kShared; e + 2 < p.size(); e += 3) {
    for (int i = 0; i < roi.size; ++i) {
      mx[i] = pixel_mass(roi.x0 + i, p[e], p[0]);
      my[i] = pixel_mass(roi.y0 + i, p[e + 1], p[0]);
    }
    for (int r = 0; r < roi.size; ++r)
      for (int c = 0; c < roi.size; ++c) m[r * roi.size + c] += p[e + 2] * mx[c] * my[r];
  }
  return m;
}

std::vector<double> jacobian(const Roi& roi, const Params& p) {
  const size_t n = roi.values.size(), np = p.size();
  std::vector<double> j(n * np);
  const std::vector<double> m0 = model(roi, p);
  for (size_t k = 0; k < np; ++k) {
    Params q = p;
    const double h = 1e-6 * std::max(1.0, std::abs(p[k]));
    q[k] += h;
    const std::vector<double> m1 = model(roi, q);
    for (size_t i = 0; i < n; ++i) j[i * np + k] = (m1[i] - m0[i]) / h;
  }
  return j;
}

double sum_sq(const std::vector<double>& m, const Roi& roi) {
  double s = 0;
  for (size_t i = 0; i < m.size(); ++i) s += (m[i] - roi.values[i]) * (m[i] - roi.values[i]);
  return s;
}

// Levenberg–Marquardt least squares; false when it does not settle on plausible spots (each
// within 1.5 px of its maximum, with positive light, of a width the window can hold).
bool fit_spot(const Roi& roi, Params& p) {
  const int np = static_cast<int>(p.size());
  double lambda = 1e-3, cost = sum_sq(model(roi, p), roi);
  const Params start = p;
  for (int it = 0; it < 60; ++it) {
    const std::vector<double> m = model(roi, p), j = jacobian(roi, p);
    std::vector<double> jtj(static_cast<size_t>(np * np), 0.0), g(static_cast<size_t>(np), 0.0);
    for (size_t i = 0; i < m.size(); ++i) {
      const double r = m[i] - roi.values[i];
      for (int a = 0; a < np; ++a) {
        g[a] -= j[i * np + a] * r;
        for (int b = 0; b < np; ++b) jtj[a * np + b] += j[i * np + a] * j[i * np + b];
      }
    }
    bool improved = false;
    for (int tries = 0; tries < 10 && !improved; ++tries) {
      std::vector<double> a = jtj, step = g;
      for (int d = 0; d < np; ++d) a[d * np + d] *= 1 + lambda;
      if (!solve(a, step, np)) return false;
      Params q = p;
      for (int k = 0; k < np; ++k) q[k] += step[k];
      if (!(q[0] > 0.2)) q[0] = 0.2;
      const double c = sum_sq(model(roi, q), roi);
      if (c < cost) {
        const double gain = cost - c;
        p = q;
        cost = c;
        lambda = std::max(1e-7, lambda / 10);
        improved = true;
        if (gain < 1e-9 * (1 + cost)) it = 1000;  // settled
      } else {
        lambda *= 10;
      }
    }
    if (!improved) break;
  }
  bool ok = std::isfinite(cost) && p[0] > 0.3 && p[0] < kRoiHalf * 0.75;
  for (int e = kShared; e + 2 < np && ok; e += 3)
    ok = p[e + 2] > 0 && std::hypot(p[e] - start[e], p[e + 1] - start[e + 1]) < 1.5;
  return ok;
}

// Least squares line y = slope x + intercept with weights w.
// With `slope_se`, the slope's standard error from the points' scatter about the line.
std::pair<double, double> weighted_line(const std::vector<double>& x, const std::vector<double>& y,
                                        const std::vector<double>& w, double* slope_se = nullptr) {
  double sw = 0, sx = 0, sy = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    sw += w[i];
    sx += w[i] * x[i];
    sy += w[i] * y[i];
  }
  const double mx = sx / sw, my = sy / sw;
  double sxx = 0, sxy = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    sxx += w[i] * (x[i] - mx) * (x[i] - mx);
    sxy += w[i] * (x[i] - mx) * (y[i] - my);
  }
  const double slope = sxx > 0 ? sxy / sxx : 0.0;
  if (slope_se) {
    double rss = 0;
    for (size_t i = 0; i < x.size(); ++i) {
      const double r = y[i] - my - slope * (x[i] - mx);
      rss += w[i] * r * r;
    }
    *slope_se = x.size() > 2 && sxx > 0 ? std::sqrt(rss / static_cast<double>(x.size() - 2) / sxx) : 0.0;
  }
  return {slope, my - slope * mx};
}

// One fitted pixel. The fit's residuals are r = A e with A = I - H (H the hat matrix) and e the
// pixels' independent noise, so E[r_i²] = Σ_j A_ij² κ2_j and E[r_i³] = Σ_j A_ij³ κ3_j. With
// κ_j = slope μ_j + intercept both are linear in (slope, intercept): E[r_i^k] = slope u_k + intercept v_k
// with u_k = Σ_j A_ij^k μ_j and v_k = Σ_j A_ij^k. Regressing on u and v undoes the fit's pull toward
// 0 exactly even though the variance changes across the spot (a per-pixel 1/(1 - h_ii) would not:
// the peak pixels' leverage is 0.4).
// `loo_mean` is the fitted mean the pixel would have with its own value left out of the fit,
// m_i - h_ii r_i / (1 - h_ii): to first order free of the pixel's own noise (the bins go by it).
struct Sample {
  double loo_mean = 0, r2 = 0, u2 = 0, v2 = 0, r3 = 0, u3 = 0, v3 = 0;
};

// The line κ2 = slope μ + intercept through the background (one point) and the used spots' pixels
// in kMomentBins bins of equal count by fitted mean left out (Sample::loo_mean). Binning by the
// fitted mean itself selects on the pixel's noise (a peak pixel's leverage is ~0.4), which its
// squared residual shares through κ3: the spots' slope came out +1.6 % (EMCCD) and +0.9 % (CCD)
// steep on average over seeds 20-37 at 4000 frames, +0.2 % and +0.4 % binned this way (README).
// A bin's averages keep E[r2] = slope u2 + intercept v2, so (u2 / v2, r2 / v2) lies on the line:
// the point plotted and fitted. Weights: the sampling variance of a mean of squared residuals grows
// as κ2² per sample, divided by v².
void fit_variance_line(const std::vector<std::vector<Sample>>& samples_of_spot,
                       const std::vector<uint8_t>& use, const MomentBin& background, Calibration& cal) {
  std::vector<Sample> samples;
  for (size_t k = 0; k < samples_of_spot.size(); ++k)
    if (use[k]) samples.insert(samples.end(), samples_of_spot[k].begin(), samples_of_spot[k].end());
  std::sort(samples.begin(), samples.end(),
            [](const Sample& a, const Sample& b) { return a.loo_mean < b.loo_mean; });
  cal.bins = {background};
  std::vector<double> x{background.mean_adu}, y{background.kappa2},
      w{background.count / (background.kappa2 * background.kappa2)};
  for (int b = 0; b < kMomentBins; ++b) {
    const size_t lo = samples.size() * b / kMomentBins, hi = samples.size() * (b + 1) / kMomentBins;
    if (hi <= lo) continue;
    Sample sum;
    for (size_t i = lo; i < hi; ++i) {
      sum.r2 += samples[i].r2;
      sum.u2 += samples[i].u2;
      sum.v2 += samples[i].v2;
    }
    const double count = static_cast<double>(hi - lo), v = sum.v2 / count;
    const MomentBin bin{sum.u2 / sum.v2, sum.r2 / sum.v2, count};
    cal.bins.push_back(bin);
    x.push_back(bin.mean_adu);
    y.push_back(bin.kappa2);
    w.push_back(count * v * v / std::max(bin.kappa2 * bin.kappa2, 1e-12));
  }
  std::tie(cal.kappa2_slope, cal.kappa2_intercept) = weighted_line(x, y, w, &cal.spot_slope_se);
}

// Photon transfer from the frames' finest detail. The PSF (sigma ~1 px) passes almost nothing at
// the highest spatial frequencies, while pixel noise is white, so the separable fourth difference
// d = Σ h_j y_j (h = b ⊗ b, b = [1, -4, 6, -4, 1]) of a 5x5 neighbourhood is almost pure noise at any
// emitter density: E[d²] = Σ h_j² κ2_j. With κ2 = slope μ + intercept, E[d²] / Σh² = slope m +
// intercept, m = Σ h_j² μ_j / Σh², estimated without bias by Σ h_j² y_j / Σh² (Foi et al., IEEE TIP
// 17 (2008) fit the same relation to wavelet details).
struct HfBin {
  double m = 0, d2 = 0, count = 0;
};
// Binning on m itself selects on the noise that d² carries too (through κ3: behind an EM register
// the slope came out 5-9 % steep on sparse data, 0-5 % on dense). With `by_ring` the bins go by z
// instead, the sum of the 24 pixels at Chebyshev distance 3 (outside the 5x5): near a spot it is
// lit too, yet its noise is independent of the 5x5's, so within a bin E[d²] / Σh² = slope E[m] +
// intercept holds exactly (z is an instrument). On dense fields, lit everywhere, z tells the 5x5's
// level apart less well and the slope scattered more (uniform EMCCD +7 %), so they bin on m.
std::vector<HfBin> high_frequency_bins(const Stack& stack, int bins, bool by_ring) {
  constexpr std::array<double, 5> b = {1, -4, 6, -4, 1};
  const int M = by_ring ? 3 : 2;  // margin: the ring, or the 5x5
  const int w = stack.width, h = stack.height;
  double sum_h2 = 0;
  for (double u : b)
    for (double v : b) sum_h2 += u * u * v * v;
  struct S {
    double m, d2, z;
  };
  // (m, d² / Σh², z) at pixel (x, y) of a frame.
  const auto sample = [&](const std::vector<float>& img, int x, int y) {
    double d = 0, m = 0, z = 0;
    for (int dy = -2; dy <= 2; ++dy)
      for (int dx = -2; dx <= 2; ++dx) {
        const double hv = b[dy + 2] * b[dx + 2], v = img[(y + dy) * w + x + dx];
        d += hv * v;
        m += hv * hv * v;
      }
    if (by_ring)
      for (int k = -M; k < M; ++k)
        z += img[(y - M) * w + x + k] + img[(y + k) * w + x + M] + img[(y + M) * w + x - k] +
             img[(y - k) * w + x - M];
    return S{m / sum_h2, d * d / sum_h2, z};
  };
  // Bin edges: quantiles of z (or m) over at most kModeSamples evenly spaced pixels; then every
  // pixel is added to its bin (a long stack's samples would not fit in memory).
  const int iw = std::max(0, w - 2 * M), ih = std::max(0, h - 2 * M);
  const size_t per_frame = static_cast<size_t>(iw) * static_cast<size_t>(ih);
  const size_t total = per_frame * stack.frames.size();
  if (total == 0) return {};
  const size_t stride = std::max<size_t>(1, total / kModeSamples);
  std::vector<double> zs;
  for (size_t i = 0; i < total; i += stride) {
    const size_t p = i % per_frame;
    const S smp =
        sample(stack.frames[i / per_frame], M + static_cast<int>(p % iw), M + static_cast<int>(p / iw));
    zs.push_back(by_ring ? smp.z : smp.m);
  }
  std::sort(zs.begin(), zs.end());
  std::vector<double> edges;  // upper edges of bins 0 .. bins - 2
  for (int k = 1; k < bins; ++k) edges.push_back(zs[zs.size() * k / bins]);
  std::vector<HfBin> out(bins);
  for (const auto& img : stack.frames)
    for (int y = M; y + M < h; ++y)
      for (int x = M; x + M < w; ++x) {
        const S s = sample(img, x, y);
        HfBin& bin = out[std::upper_bound(edges.begin(), edges.end(), by_ring ? s.z : s.m) - edges.begin()];
        bin.m += s.m;
        bin.d2 += s.d2;
        bin.count += 1;
      }
  std::vector<HfBin> filled;
  for (HfBin& bin : out)
    if (bin.count > 0) filled.push_back({bin.m / bin.count, bin.d2 / bin.count, bin.count});
  return filled;
}

// The weighted line through the fine-detail bins, (slope, intercept), and the bins; `slope_se` its
// slope's standard error.
std::pair<std::pair<double, double>, std::vector<MomentBin>> detail_variance_line(const Stack& stack,
                                                                                  bool by_ring,
                                                                                  double& slope_se) {
  std::vector<double> x, y, wt;
  std::vector<MomentBin> out;
  for (const HfBin& b : high_frequency_bins(stack, kMomentBins, by_ring)) {
    x.push_back(b.m);
    y.push_back(b.d2);
    wt.push_back(b.count / std::max(b.d2 * b.d2, 1e-12));
    out.push_back({b.m, b.d2, b.count});
  }
  return {weighted_line(x, y, wt, &slope_se), out};
}
}  // namespace

namespace {

bool is_raw_h5(const std::string& path) {
  const std::string ext = std::filesystem::path(path).extension().string();
  return ext == ".h5" || ext == ".hdf5";
}

// One input's frames, read one at a time: a TIFF stack or a raw.h5 (docs/data-format.md).
class FrameSource {
 public:
  explicit FrameSource(const std::string& file) {
    if (is_raw_h5(file))
      raw_.emplace(file);
    else
      tiff_.emplace(file);
  }
  uint64_t frames() const { return raw_ ? raw_->frames() : tiff_->info().frames; }
  int width() const { return raw_ ? raw_->width() : static_cast<int>(tiff_->info().width); }
  int height() const { return raw_ ? raw_->height() : static_cast<int>(tiff_->info().height); }
  double pixel_size_nm() const { return raw_ ? raw_->pixel_size_nm() : tiff_->info().pixel_size_nm; }
  std::vector<float> read(uint64_t index) {
    if (raw_) return raw_->read(index, 1);
    std::vector<float> frame(static_cast<size_t>(width()) * static_cast<size_t>(height()));
    tiff_->read_frame(index, frame.data());
    return frame;
  }

 private:
  std::optional<RawFileReader> raw_;
  std::optional<tiff::Reader> tiff_;
};

}  // namespace

Stack read_stacks(const std::vector<std::string>& files, uint64_t max_frames) {
  Stack s;
  std::vector<uint64_t> counts;
  for (const auto& file : files) {
    const FrameSource source(file);
    if (s.width == 0) {
      s.width = source.width();
      s.height = source.height();
      s.pixel_size_nm = source.pixel_size_nm();
    } else if (source.width() != s.width || source.height() != s.height) {
      throw InputError(fmt::format("{}: frames of {}x{} pixels, but {} has {}x{}", file, source.width(),
                                   source.height(), files.front(), s.width, s.height));
    }
    counts.push_back(source.frames());
  }
  uint64_t total = 0;
  for (uint64_t c : counts) total += c;
  // Frame k of those taken is frame k * total / take of all the files, end to end.
  const uint64_t take = max_frames == 0 ? total : std::min(total, max_frames);
  uint64_t k = 0, first = 0;  // first: the index of file i's frame 0 among all
  for (size_t i = 0; i < files.size(); first += counts[i], ++i) {
    const auto index = [&] {
      return static_cast<uint64_t>((static_cast<unsigned __int128>(k) * total) / take);
    };
    if (k >= take || index() >= first + counts[i]) continue;
    FrameSource source(files[i]);
    for (; k < take && index() < first + counts[i]; ++k) {
      s.frames.push_back(source.read(index() - first));
      s.sources.push_back(files[i]);
    }
  }
  return s;
}

Calibration calibrate(const Stack& stack) {
  const std::string name = stack.sources.empty() ? std::string("the frames") : stack.sources.front();
  if (stack.frames.size() < 2)
    throw InputError(fmt::format("{}: {} frame(s); calibration needs at least 2 (temporal statistics)", name,
                                 stack.frames.size()));
  const int w = stack.width, h = stack.height;
  if (w < 2 * kRoiHalf + 1 || h < 2 * kRoiHalf + 1)
    throw InputError(fmt::format("{}: frames of {}x{} pixels are smaller than the {}x{} spot window", name, w,
                                 h, 2 * kRoiHalf + 1, 2 * kRoiHalf + 1));
  const size_t npx = static_cast<size_t>(w) * static_cast<size_t>(h);
  for (size_t f = 0; f < stack.frames.size(); ++f)
    if (stack.frames[f].size() != npx)
      throw InputError(fmt::format("{}: frame {} has {} pixels, expected {}x{}", stack.sources[f], f,
                                   stack.frames[f].size(), w, h));

  Calibration cal;
  cal.frames = static_cast<int>(stack.frames.size());
  cal.width = w;
  cal.height = h;
  cal.pixel_size_nm = stack.pixel_size_nm;

  // First guess of the background and its noise: the mode of the values (half-sample mode,
  // Bickel & Frühwirth 2006) and their spread below it. Spots lie above the background only, so
  // neither moves when spots cover most pixels (the median and MAD do: dense frames then hid most
  // spots under a threshold set by the spots themselves).
  std::vector<double> all;
  const size_t total_px = npx * stack.frames.size();
  const size_t stride = std::max<size_t>(1, total_px / kModeSamples);
  all.reserve(total_px / stride + 1);
  for (size_t i = 0; i < total_px; i += stride) all.push_back(stack.frames[i / npx][i % npx]);
  std::sort(all.begin(), all.end());
  const double level = half_sample_mode(all);
  double below = 0, below_n = 0;
  for (double v : all)
    if (v < level) {
      below += (level - v) * (level - v);
      below_n += 1;
    }
  const double noise = below_n > 0 ? std::sqrt(below / below_n) : 0.0;
  if (!(noise > 0))
    throw InputError(
        fmt::format("{}: the pixel values do not vary (constant frames?); nothing to calibrate", name));
  all.clear();
  all.shrink_to_fit();

  // Detection: local maxima of the 3x3 mean well above the background.
  std::vector<std::vector<std::pair<int, int>>> maxima(stack.frames.size());
  std::vector<float> smooth(npx);
  const auto detect = [&](double threshold) {
    for (size_t f = 0; f < stack.frames.size(); ++f) {
      const std::vector<float>& img = stack.frames[f];
      for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x) {
          double s = 0;
          int n = 0;
          for (int dy = -1; dy <= 1; ++dy)
            for (int dx = -1; dx <= 1; ++dx) {
              const int yy = y + dy, xx = x + dx;
              if (yy < 0 || xx < 0 || yy >= h || xx >= w) continue;
              s += img[yy * w + xx];
              ++n;
            }
          smooth[y * w + x] = static_cast<float>(s / n);
        }
      auto& found = maxima[f];
      found.clear();
      for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x) {
          const float v = smooth[y * w + x];
          if (v <= threshold) continue;
          bool is_max = true;
          for (int dy = -1; dy <= 1 && is_max; ++dy)
            for (int dx = -1; dx <= 1; ++dx) {
              const int yy = y + dy, xx = x + dx;
              if ((dx == 0 && dy == 0) || yy < 0 || xx < 0 || yy >= h || xx >= w) continue;
              // Ties go to the first pixel in reading order, so a flat top counts once.
              const float u = smooth[yy * w + xx];
              if (u > v || (u == v && (dy < 0 || (dy == 0 && dx < 0)))) {
                is_max = false;
                break;
              }
            }
          if (is_max) found.emplace_back(x, y);
        }
    }
  };
  // Distance to the nearest maximum of a frame, capped beyond the largest radius.
  const int reach = static_cast<int>(std::ceil(kRadii.front()));
  const int cap2 = (reach + 1) * (reach + 1);
  const double all_pixels = static_cast<double>(npx * stack.frames.size());
  const auto disk_distance2 = [&](const std::vector<std::pair<int, int>>& found, std::vector<int>& nearest2) {
    std::fill(nearest2.begin(), nearest2.end(), cap2);
    for (auto [mx, my] : found)
      for (int y = std::max(0, my - reach); y <= std::min(h - 1, my + reach); ++y)
        for (int x = std::max(0, mx - reach); x <= std::min(w - 1, mx + reach); ++x)
          nearest2[y * w + x] = std::min(nearest2[y * w + x], (x - mx) * (x - mx) + (y - my) * (y - my));
  };
  // Two detection passes. The first threshold is low (the spread below the mode is narrower than
  // the background's own when it is skewed, as behind an EM register), so it finds every spot and
  // some noise; the pixels away from those maxima give the background's mean and variance, and so
  // the second threshold. The radius is the largest of kRadii that leaves enough pixels: dense
  // frames leave few far from every maximum.
  double threshold_excess = kDetectSigmas * noise / 3.0;  // over the background
  detect(level + threshold_excess);
  {
    std::array<Moments, kRadii.size()> outside{};
    std::vector<int> nearest2(npx);
    for (size_t f = 0; f < stack.frames.size(); ++f) {
      disk_distance2(maxima[f], nearest2);
      for (size_t i = 0; i < npx; ++i)
        for (size_t r = 0; r < kRadii.size(); ++r)
          if (nearest2[i] > kRadii[r] * kRadii[r]) outside[r].add(stack.frames[f][i] - level);
    }
    for (const Moments& m : outside)
      if (m.n >= kMinBackgroundShare * all_pixels) {
        threshold_excess = kDetectSigmas * std::sqrt(m.kappa2()) / 3.0;
        detect(level + m.mean() + threshold_excess);
        break;
      }
  }
  size_t detections = 0;
  for (const auto& m : maxima) detections += m.size();
  cal.detections_per_frame = static_cast<double>(detections) / cal.frames;

  // Windows to fit: each maximum's 9x9 neighbourhood. Isolated maxima (no other within
  // kIsolationPx) alone when there are enough of them (sparse data); otherwise (dense data) every
  // maximum, fitted jointly with the maxima whose pixel is in the window or next to it.
  std::vector<std::pair<size_t, size_t>> isolated, crowded;  // (frame, maximum)
  for (size_t f = 0; f < maxima.size(); ++f) {
    const auto& found = maxima[f];
    for (size_t k = 0; k < found.size(); ++k) {
      const auto [mx, my] = found[k];
      if (mx < kRoiHalf || my < kRoiHalf || mx + kRoiHalf >= w || my + kRoiHalf >= h) continue;
      bool alone = true;
      for (size_t o = 0; o < found.size() && alone; ++o)
        if (o != k && std::hypot(found[o].first - mx, found[o].second - my) < kIsolationPx) alone = false;
      (alone ? isolated : crowded).emplace_back(f, k);
    }
  }
  cal.isolated_windows = isolated.size();
  cal.dense = static_cast<double>(isolated.size()) <
              kIsolatedShare * static_cast<double>(isolated.size() + crowded.size());

  if (!cal.dense) {
    Moments bg;
    std::vector<int> nearest2(npx);
    for (size_t f = 0; f < stack.frames.size(); ++f) {
      disk_distance2(maxima[f], nearest2);
      for (size_t i = 0; i < npx; ++i)
        if (nearest2[i] > kSignalRadiusPx * kSignalRadiusPx) bg.add(stack.frames[f][i] - level);
    }
    if (bg.n < kMinBackgroundShare * all_pixels)
      throw InputError(
          fmt::format("{}: too few background pixels: only {:.1f} % of the pixels are farther than {} "
                      "pixels from a spot ({:.1f} spots per frame)",
                      name, 100 * bg.n / all_pixels, kSignalRadiusPx, cal.detections_per_frame));
    cal.background_mean_adu = level + bg.mean();
    cal.background_kappa2 = bg.kappa2();
    cal.background_kappa3 = bg.kappa3();
    cal.background_samples = static_cast<uint64_t>(bg.n);
  }

  std::vector<Roi> rois;
  const auto make_roi = [&](size_t f, size_t k, bool joint) {
    const auto& found = maxima[f];
    const auto [mx, my] = found[k];
    Roi roi;
    roi.frame = static_cast<int>(f);
    roi.x0 = mx - kRoiHalf;
    roi.y0 = my - kRoiHalf;
    roi.size = 2 * kRoiHalf + 1;
    roi.emitters.push_back(found[k]);
    if (joint)
      for (size_t o = 0; o < found.size(); ++o)
        if (o != k && std::abs(found[o].first - mx) <= kNeighbourReach &&
            std::abs(found[o].second - my) <= kNeighbourReach)
          roi.emitters.push_back(found[o]);
    const std::vector<float>& img = stack.frames[f];
    for (int y = 0; y < roi.size; ++y)
      for (int x = 0; x < roi.size; ++x) roi.values.push_back(img[(roi.y0 + y) * w + roi.x0 + x]);
    return roi;
  };
  for (auto [f, k] : isolated) rois.push_back(make_roi(f, k, false));
  if (cal.dense) {
    // At most kMaxDenseWindows, evenly spaced: the windows give the PSF width and one emitter's
    // light, which need far fewer than a long stack has; the variance line and the background
    // come from every pixel.
    const size_t step = std::max<size_t>(1, crowded.size() / kMaxDenseWindows);
    for (size_t i = 0; i < crowded.size(); i += step) {
      Roi roi = make_roi(crowded[i].first, crowded[i].second, true);
      if (roi.emitters.size() <= kMaxEmitters) rois.push_back(std::move(roi));
    }
  }

  // Fit the windows; keep each pixel's fitted mean, its residual's powers and their expected
  // values' coefficients (Sample).
  std::vector<std::vector<Sample>> samples_of_spot;
  for (const Roi& roi : rois) {
    Params p = {1.2, cal.dense ? level : cal.background_mean_adu};
    for (auto [ex, ey] : roi.emitters) {
      double total = 0;  // the 3x3 around the maximum (inside the window), less the background
      for (int y = std::max(roi.y0, ey - 1); y <= std::min(roi.y0 + roi.size - 1, ey + 1); ++y)
        for (int x = std::max(roi.x0, ex - 1); x <= std::min(roi.x0 + roi.size - 1, ex + 1); ++x)
          total += roi.values[(y - roi.y0) * roi.size + x - roi.x0] - p[1];
      p.insert(p.end(), {ex + 0.5, ey + 0.5, std::max(total / 0.6, 1.0)});
    }
    if (roi.emitters.size() == 1) {  // the whole window's excess: the spot's light
      double total = 0;
      for (double v : roi.values) total += v - p[1];
      p[kShared + 2] = std::max(total, 1.0);
    }
    if (!fit_spot(roi, p)) continue;
    const size_t n = roi.values.size(), np = p.size();
    const std::vector<double> m = model(roi, p), j = jacobian(roi, p);
    std::vector<double> jtj(np * np, 0.0);
    for (size_t i = 0; i < n; ++i)
      for (size_t a = 0; a < np; ++a)
        for (size_t b = 0; b < np; ++b) jtj[a * np + b] += j[i * np + a] * j[i * np + b];
    // (JᵀJ)⁻¹ Jᵀ, column by column.
    std::vector<double> pinv(np * n);
    bool ok = true;
    for (size_t i = 0; i < n && ok; ++i) {
      std::vector<double> col(np);
      for (size_t a = 0; a < np; ++a) col[a] = j[i * np + a];
      ok = solve(jtj, col, static_cast<int>(np));
      for (size_t a = 0; a < np; ++a) pinv[a * n + i] = col[a];
    }
    if (!ok) continue;
    std::vector<Sample>& spot_samples = samples_of_spot.emplace_back();
    for (size_t i = 0; i < n; ++i) {
      Sample smp;
      double hii = 0;
      for (size_t k = 0; k < n; ++k) {
        double hik = 0;
        for (size_t a = 0; a < np; ++a) hik += j[i * np + a] * pinv[a * n + k];
        if (k == i) hii = hik;
        const double aik = (i == k ? 1.0 : 0.0) - hik, a2 = aik * aik, a3 = a2 * aik;
        smp.v2 += a2;
        smp.u2 += a2 * m[k];
        smp.v3 += a3;
        smp.u3 += a3 * m[k];
      }
      const double r = roi.values[i] - m[i];
      smp.loo_mean = hii < 0.99 ? m[i] - hii / (1 - hii) * r : m[i];
      smp.r2 = r * r;
      smp.r3 = r * r * r;
      spot_samples.push_back(smp);
    }
    SpotFit s;
    s.frame = roi.frame;
    s.x = p[kShared];
    s.y = p[kShared + 1];
    s.sigma_px = p[0];
    s.total_adu = p[kShared + 2];
    s.offset_adu = p[1];
    s.neighbours = static_cast<int>(roi.emitters.size()) - 1;
    cal.spots.push_back(s);
  }
  if (cal.spots.size() < kMinSpots)
    throw InputError(
        fmt::format("{}: only {} {}spots could be fitted (at least {} needed): too few emitters, or no "
                    "spots above the noise",
                    name, cal.spots.size(), cal.dense ? "" : "isolated ", kMinSpots));
  // Spots of the usual width only: two emitters closer than the detector resolves fit as one wider
  // spot whose residuals are misfit, not noise. The cut is wide (the fitted widths' own scatter is
  // a few %), so it barely selects on the noise itself.
  const auto width_cut = [&](std::vector<uint8_t>& use, double cut) {
    std::vector<double> kept;
    for (size_t k = 0; k < cal.spots.size(); ++k)
      if (use[k]) kept.push_back(cal.spots[k].sigma_px);
    const double mid = median(kept);
    std::vector<double> dev;
    for (double v : kept) dev.push_back(std::abs(v - mid));
    const double spread = 1.4826 * median(dev);
    for (size_t k = 0; k < cal.spots.size(); ++k)
      use[k] = use[k] && std::abs(cal.spots[k].sigma_px - mid) <= cut * spread;
  };
  // Spots whose squared residuals exceed kMisfitRatio x what the line predicts are misfits (an
  // unresolved neighbour that kept the width); 2x the expected sum of squares is > 5 standard
  // deviations of that sum for 81 pixels, so noise alone is almost never cut.
  const auto misfit_cut = [&](std::vector<uint8_t>& use) {
    for (size_t k = 0; k < cal.spots.size(); ++k) {
      if (!use[k]) continue;
      double got = 0, expected = 0;
      for (const Sample& smp : samples_of_spot[k]) {
        got += smp.r2;
        expected += cal.kappa2_slope * smp.u2 + cal.kappa2_intercept * smp.v2;
      }
      use[k] = got < kMisfitRatio * expected;
    }
  };
  std::vector<uint8_t> use(cal.spots.size(), 1);

  // Compound Poisson: n ~ Poisson(λ) photoelectrons, each amplified to Y ADU, gives κ_k = λ E[Y^k].
  // Without EM, Y = g: κ2 = g (mean - base), κ3 = g² (mean - base). Behind an EM register each
  // electron leaves as Exp(g) (the simulator's Gamma(n, g) is a sum of n such), E[Y^k] = k! g^k:
  // κ2 = 2 g (mean - base), κ3 = 6 g² (mean - base). The variance line's slope is F² g either way.
  if (!cal.dense) {
    width_cut(use, kSparseWidthCut);
    const MomentBin background{cal.background_mean_adu, cal.background_kappa2,
                               static_cast<double>(cal.background_samples)};
    // Two estimates of the slope, the spots' and the finest detail's; the slope is their mean.
    // The spots' misfit cut measures their squared residuals against the detail line binned by
    // the ring (unbiased), which misfits do not inflate. The detail slope itself is binned by m
    // where the background has no EM skew (the spots' slope decides; the ratios lie far from the
    // threshold): there m's noise barely correlates with d², and m's lever arm is far longer than
    // the ring's, whose bins span a few % of m on sparse data (binned by the ring the detail slope
    // was -8..+12 % over seeds 20-37, by m for CCD and sCMOS -4..+5 %; README). Behind an EM
    // register binning by m steepens the slope 5-9 %, so there the ring's bins are used.
    std::pair<double, double> detail_line = detail_variance_line(stack, true, cal.detail_slope_se).first;
    fit_variance_line(samples_of_spot, use, background, cal);
    std::tie(cal.kappa2_slope, cal.kappa2_intercept) = detail_line;
    misfit_cut(use);
    fit_variance_line(samples_of_spot, use, background, cal);
    cal.spot_slope = cal.kappa2_slope;
    const bool em_by_spots = cal.background_kappa3 / cal.background_kappa2 / cal.spot_slope > 1.2;
    if (!em_by_spots) detail_line = detail_variance_line(stack, false, cal.detail_slope_se).first;
    cal.detail_slope = detail_line.first;
    cal.kappa2_slope = 0.5 * (cal.spot_slope + cal.detail_slope);
    cal.kappa2_intercept = 0.5 * (cal.kappa2_intercept + detail_line.second);
    if (!(cal.kappa2_slope > 0))
      throw InputError(
          fmt::format("{}: the pixel variance does not grow with the mean (slope {:.3g}); not "
                      "shot-noise-limited data",
                      name, cal.kappa2_slope));
    // At the background (κ3 / κ2) / slope = 1.5 f with EM and f without, f = shot / (shot + read)
    // <= 1 the share of the variance that is shot noise (Gaussian read noise has no κ3). The third
    // cumulant is taken on the background, where it is measured on far more pixels than on the
    // spots (a spot pixel's cubed residual scatters as 15 κ2³). EM is called when the ratio exceeds
    // 1.2; an EM camera whose read noise exceeds 1/4 of the background's shot variance would be
    // missed (not seen in EM practice, where the gain lifts the signal far above the read noise).
    cal.skew_ratio = cal.background_kappa3 / cal.background_kappa2 / cal.kappa2_slope;
    cal.em = cal.skew_ratio > 1.2;
    const double g = cal.kappa2_slope / (cal.em ? 2.0 : 1.0);
    // The base from the background's third cumulant, which read noise does not touch.
    const double above_base = cal.background_kappa3 / ((cal.em ? 6.0 : 1.0) * g * g);
    cal.base_level = cal.background_mean_adu - above_base;
  } else {
    // Dense: spots overlap and few pixels are far from all of them. The variance line comes from
    // the frames' finest detail (high_frequency_bins), which needs neither background pixels nor
    // well-fitted spots; the background's cumulants from the pixels whose neighbours are darkest.
    std::pair<double, double> line;
    std::tie(line, cal.bins) = detail_variance_line(stack, false, cal.detail_slope_se);
    std::tie(cal.kappa2_slope, cal.kappa2_intercept) = line;
    cal.detail_slope = cal.kappa2_slope;
    if (!(cal.kappa2_slope > 0))
      throw InputError(
          fmt::format("{}: the pixel variance does not grow with the mean (slope {:.3g}); not "
                      "shot-noise-limited data",
                      name, cal.kappa2_slope));
    misfit_cut(use);
    width_cut(use, kWidthCut);
    // The background's cumulants from the kBackgroundShare of all pixels whose 8 neighbours are
    // darkest (lowest sum). An emitter's light on a pixel reaches its neighbours too (PSF sigma
    // ~1 px), so these pixels are the least lit; and the choice never looks at the pixel itself,
    // whose noise is independent of its neighbours', so the pixel's own value is not selected on
    // (a cut on the value would bias all three cumulants). Wider neighbourhoods (5x5, 7x7) dilute
    // a spot's light and let lit pixels in: their κ3 came out 1.5-50x too high on dense stacks.
    constexpr int R = 1;
    const auto neighbour_mean = [&](const std::vector<float>& img, int x, int y) {
      double s = 0;
      for (int dy = -R; dy <= R; ++dy)
        for (int dx = -R; dx <= R; ++dx)
          if (dx != 0 || dy != 0) s += img[(y + dy) * w + x + dx];
      return s;
    };
    // The kBackgroundShare quantile of the neighbour sums, from at most kModeSamples evenly spaced
    // pixels; then every pixel at or below it (a long stack's pixels would not fit in memory twice).
    const size_t per_frame = static_cast<size_t>(w - 2 * R) * static_cast<size_t>(h - 2 * R);
    const size_t total = per_frame * stack.frames.size();
    const size_t stride = std::max<size_t>(1, total / kModeSamples);
    std::vector<double> sums;
    for (size_t i = 0; i < total; i += stride) {
      const size_t p = i % per_frame;
      sums.push_back(neighbour_mean(stack.frames[i / per_frame], R + static_cast<int>(p % (w - 2 * R)),
                                    R + static_cast<int>(p / (w - 2 * R))));
    }
    std::sort(sums.begin(), sums.end());
    const auto dark_moments = [&](double cut) {
      Moments m;
      for (const auto& img : stack.frames)
        for (int y = R; y + R < h; ++y)
          for (int x = R; x + R < w; ++x)
            if (neighbour_mean(img, x, y) <= cut) m.add(img[y * w + x] - level);
      return m;
    };
    Moments bg = dark_moments(sums[static_cast<size_t>(kBackgroundShare * static_cast<double>(sums.size()))]);
    {
      // Where more of the frame is dark, more pixels: all whose neighbours sum to at most 8x the
      // background mean found so far (about half the unlit ones).
      const Moments more = dark_moments(8.0 * (level + bg.mean()));
      if (more.n > bg.n) bg = more;
    }
    double kept = 0;
    for (size_t k = 0; k < cal.spots.size(); ++k) kept += use[k];
    if (kept < kMinDenseSpots || bg.n < kMinDenseBackground)
      throw InputError(
          fmt::format("{}: too crowded to calibrate: {} spots fit as single emitters (at least {} "
                      "needed), {} pixels show the background alone (at least {} needed)",
                      name, kept, kMinDenseSpots, bg.n, kMinDenseBackground));
    cal.background_mean_adu = level + bg.mean();
    cal.background_kappa2 = bg.kappa2();
    cal.background_kappa3 = bg.kappa3();
    cal.background_samples = static_cast<uint64_t>(bg.n);
    // EM and the base as for sparse data.
    cal.skew_ratio = cal.background_kappa3 / cal.background_kappa2 / cal.kappa2_slope;
    cal.em = cal.skew_ratio > 1.2;
    const double g = cal.kappa2_slope / (cal.em ? 2.0 : 1.0);
    cal.base_level = cal.background_mean_adu - cal.background_kappa3 / ((cal.em ? 6.0 : 1.0) * g * g);
  }
  cal.adu_per_photon = cal.kappa2_slope / (cal.em ? 2.0 : 1.0);
  const double g = cal.adu_per_photon;
  const double above_base = cal.background_mean_adu - cal.base_level;
  cal.background_photons = std::max(0.0, above_base / g);
  // The read noise: what the shot noise leaves of the background variance (less 1/12 for rounding).
  cal.read_noise_adu =
      std::sqrt(std::max(0.0, cal.background_kappa2 - 1.0 / 12.0 - cal.kappa2_slope * above_base));

  for (size_t k = 0; k < cal.spots.size(); ++k) cal.spots[k].used = use[k];
  // Sparse: every isolated spot's width (as before the cuts existed); dense: the single emitters'.
  std::vector<double> sigmas;
  for (size_t k = 0; k < cal.spots.size(); ++k)
    if (use[k] || !cal.dense) sigmas.push_back(cal.spots[k].sigma_px);
  cal.sigma_px = median(sigmas);
  if (cal.pixel_size_nm > 0) {
    cal.sigma_nm = cal.sigma_px * cal.pixel_size_nm;
    const double area_um2 = w * h * cal.pixel_size_nm * cal.pixel_size_nm * 1e-6;
    const double observed = cal.detections_per_frame / area_um2;
    double rho = observed;
    // Two emitters closer than the detector resolves merge into one maximum: with a Poisson field
    // of density ρ and a merge area A around each emitter, ρ_observed ≈ ρ (1 + exp(-ρ A)) / 2 (each
    // close pair counts once); solved for ρ. A from pairs like the spots fitted (merge_area).
    std::vector<double> totals;
    for (size_t k = 0; k < cal.spots.size(); ++k)
      if (use[k]) totals.push_back(cal.spots[k].total_adu);
    if (totals.empty())
      for (const SpotFit& sp : cal.spots) totals.push_back(sp.total_adu);
    const double area_px = cal.dense ? 0.0 : merge_area(cal.sigma_px, totals, threshold_excess);
    cal.merge_area_px2 = area_px;
    const double a_um2 = area_px * cal.pixel_size_nm * cal.pixel_size_nm * 1e-6;
    for (int it = 0; it < 50; ++it) rho = 2.0 * observed / (1.0 + std::exp(-rho * a_um2));
    cal.density_per_um2 = rho;
    if (cal.dense) {
      // Merged maxima undercount dense fields badly (by 3-4x on demo 1), and so did the light
      // over one fitted emitter's (the fits that pass as single lean to bright emitters and
      // blends: 20-52 % low); the frames' fluctuations do not (emitters_from_fluctuations).
      std::vector<double> totals;
      for (size_t k = 0; k < cal.spots.size(); ++k)
        if (use[k]) totals.push_back(cal.spots[k].total_adu);
      cal.brightness_cv2 = brightness_cv2(totals, cal);
      const double per_frame = emitters_from_fluctuations(stack, cal, cal.brightness_cv2);
      if (!(per_frame > 0))
        throw InputError(
            fmt::format("{}: the frames' light does not fluctuate beyond their noise ({} frames): no "
                        "density can be told from them",
                        name, stack.frames.size()));
      cal.density_per_um2 = per_frame / area_um2;
    }
  }

  sim::Camera& cam = cal.camera;
  cam.pixel_size_nm = cal.pixel_size_nm > 0 ? cal.pixel_size_nm : cam.pixel_size_nm;
  cam.base_level = cal.base_level;
  cam.quantum_efficiency = 1.0;
  cam.background_photons = cal.background_photons;
  sim::set_gain(cam, g, cal.em);
  cam.read_noise_e = cal.read_noise_adu * cam.e_per_adu;
  return cal;
}

std::vector<std::pair<std::string, std::string>> calibration_keys(const Calibration& c) {
  std::vector<std::pair<std::string, std::string>> keys = {
      {"camera.base_level", fmt::format("{:.6g}", c.camera.base_level)},
      {"camera.e_per_adu", fmt::format("{:.6g}", c.camera.e_per_adu)},
      {"camera.em_gain", fmt::format("{:.6g}", c.camera.em_gain)},
      {"camera.read_noise_e", fmt::format("{:.6g}", c.camera.read_noise_e)},
      {"camera.quantum_efficiency", "1.0"},
      {"camera.background_photons", fmt::format("{:.6g}", c.camera.background_photons)},
  };
  if (c.pixel_size_nm > 0) {
    const double fwhm = 2.0 * std::sqrt(2.0 * std::log(2.0)) * c.sigma_nm;
    keys.emplace_back("camera.pixel_size_nm", fmt::format("{:.6g}", c.pixel_size_nm));
    keys.emplace_back("psf.fwhm_nm", fmt::format("[{:.5g}, {:.5g}]", fwhm, fwhm));
    keys.emplace_back("simulate.acquisition.density", fmt::format("{:.4g}", c.density_per_um2));
    keys.emplace_back("simulate.train.density", fmt::format("{:.4g}", c.density_per_um2));
  }
  return keys;
}

std::string calibration_yaml(const Calibration& c, const std::string& source) {
  std::string y = fmt::format(
      "# dsir calibrate: {} ({} frames of {}x{})\n"
      "# {} ADU per photon, EM register {} (third-cumulant ratio {:.3f}: 1.5 with EM, 1 without),\n"
      "# {} spots fitted ({} used), {:.2f} detections per frame; {}.\n"
      "# Use as the config of `dsir simulate` (or copy these keys into a config).\n",
      source, c.frames, c.width, c.height, fmt::format("{:.4g}", c.adu_per_photon), c.em ? "on" : "off",
      c.skew_ratio, c.spots.size(),
      std::count_if(c.spots.begin(), c.spots.end(), [](const SpotFit& s) { return s.used; }),
      c.detections_per_frame,
      c.dense ? fmt::format("dense data: variance from the finest image detail, density from the frames' "
                            "fluctuations (brightness CV² {:.3g})",
                            c.brightness_cv2)
              : fmt::format("sparse data: variance slope {:.4g}, the mean of the isolated spots' ({:.4g}) "
                            "and the finest image detail's ({:.4g})",
                            c.kappa2_slope, c.spot_slope, c.detail_slope));
  // Nested YAML from the dotted keys: a section's header where it differs from the key before.
  std::vector<std::string> open;
  for (const auto& [key, value] : calibration_keys(c)) {
    std::vector<std::string> parts;
    for (size_t start = 0, dot;; start = dot + 1) {
      dot = key.find('.', start);
      parts.push_back(key.substr(start, dot == std::string::npos ? std::string::npos : dot - start));
      if (dot == std::string::npos) break;
    }
    size_t same = 0;
    while (same < open.size() && same + 1 < parts.size() && open[same] == parts[same]) ++same;
    open.resize(same);
    for (size_t i = same; i + 1 < parts.size(); ++i) {
      y += std::string(2 * i, ' ') + parts[i] + ":\n";
      open.push_back(parts[i]);
    }
    y += std::string(2 * (parts.size() - 1), ' ') + parts.back() + ": " + value + "\n";
  }
  if (!(c.pixel_size_nm > 0))
    y += fmt::format("# pixel size unknown: PSF sigma {:.4g} px, {:.4g} detections per pixel² per frame\n",
                     c.sigma_px, c.detections_per_frame / (c.width * c.height));
  return y;
}

void save_calibration_png(const std::string& path, const Calibration& c) {
  picture::Series bins{c.dense ? "fine-detail bins" : "bins (first: background)", {}, {}},
      line{"fit", {}, {}};
  double lo = INFINITY, hi = -INFINITY;
  for (const auto& b : c.bins) {
    bins.x.insert(bins.x.end(), {b.mean_adu, NAN});  // NaN between points: drawn as marks
    bins.y.insert(bins.y.end(), {b.kappa2, NAN});
    lo = std::min(lo, b.mean_adu);
    hi = std::max(hi, b.mean_adu);
  }
  for (double m : {std::min(lo, c.base_level), hi}) {
    line.x.push_back(m);
    line.y.push_back(c.kappa2_slope * m + c.kappa2_intercept);
  }
  const picture::Canvas mv = picture::line_plot(
      path, fmt::format("mean-variance: {:.3g} ADU/photon, EM {}", c.adu_per_photon, c.em ? "on" : "off"),
      "mean (ADU)", "variance (ADU^2)", {bins, line}, false, 560, 420);
  // Histogram of spot widths as a step line.
  const double scale = c.pixel_size_nm > 0 ? c.pixel_size_nm : 1.0;
  std::vector<double> widths;  // the spots the median is taken over
  for (const auto& s : c.spots)
    if (s.used || !c.dense) widths.push_back(s.sigma_px * scale);
  const double w_lo = *std::min_element(widths.begin(), widths.end());
  const double w_hi = *std::max_element(widths.begin(), widths.end());
  const int nb = 30;
  const double step = std::max((w_hi - w_lo) / nb, 1e-9);
  std::vector<double> counts(nb, 0.0);
  for (double v : widths) counts[std::min(nb - 1, static_cast<int>((v - w_lo) / step))] += 1;
  picture::Series hist{"", {}, {}};
  for (int b = 0; b < nb; ++b) {
    hist.x.insert(hist.x.end(), {w_lo + b * step, w_lo + (b + 1) * step});
    hist.y.insert(hist.y.end(), {counts[b], counts[b]});
  }
  const picture::Canvas hs = picture::line_plot(
      path,
      fmt::format("spot sigma: median {:.4g} {}", c.sigma_px * scale, c.pixel_size_nm > 0 ? "nm" : "px"),
      c.pixel_size_nm > 0 ? "sigma (nm)" : "sigma (px)", "spots", {hist}, false, 560, 420);
  picture::Canvas out(mv.width() + hs.width(), std::max(mv.height(), hs.height()));
  out.paste(mv, 0, 0);
  out.paste(hs, mv.width(), 0);
  out.save_png(path);
}

}  // namespace dsir::calibrate
