#include "stages/evaluate/quality.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <tuple>

#include "pipeline/errors.h"
#include "pipeline/picture.h"

namespace dsir::quality {
namespace {

constexpr double kPi = 3.14159265358979323846;
constexpr double kThreshold = 1.0 / 7;

using Complex = std::complex<double>;

// In-place radix-2 FFT of n points with the twiddles exp(-2 pi i k / n), k < n / 2.
void fft1(Complex* a, int n, const std::vector<Complex>& twiddle) {
  for (int i = 1, j = 0; i < n; ++i) {  // bit-reversed order
    int bit = n >> 1;
    for (; j & bit; bit >>= 1) j ^= bit;
    j ^= bit;
    if (i < j) std::swap(a[i], a[j]);
  }
  for (int len = 2; len <= n; len <<= 1) {
    const int step = n / len, half = len / 2;
    for (int i = 0; i < n; i += len)
      for (int k = 0; k < half; ++k) {
        const Complex u = a[i + k], v = a[i + k + half] * twiddle[size_t(k * step)];
        a[i + k] = u + v;
        a[i + k + half] = u - v;
      }
  }
}

bool finite(const metrics::Point& p) { return std::isfinite(p.x_nm) && std::isfinite(p.y_nm); }

}  // namespace

void fft2(std::vector<Complex>& data, int n) {
  if (n < 1 || (n & (n - 1)) != 0 || data.size() != size_t(n) * size_t(n))
    throw Error("fft2: " + std::to_string(n) + " is not a power of two matching the data");
  std::vector<Complex> twiddle(size_t(n / 2 + 1));
  for (int k = 0; k <= n / 2; ++k) twiddle[size_t(k)] = std::polar(1.0, -2 * kPi * k / n);
  for (int y = 0; y < n; ++y) fft1(&data[size_t(y) * n], n, twiddle);
  std::vector<Complex> column(static_cast<size_t>(n));
  for (int x = 0; x < n; ++x) {
    for (int y = 0; y < n; ++y) column[size_t(y)] = data[size_t(y) * n + x];
    fft1(column.data(), n, twiddle);
    for (int y = 0; y < n; ++y) data[size_t(y) * n + x] = column[size_t(y)];
  }
}

FrcResult frc(const std::vector<metrics::Point>& locs, const FrcOptions& o) {
  if (!(o.pixel_nm > 0) || o.block_frames < 1 || o.max_size < 64)
    throw Error("frc: pixel, block length and size must be positive");
  FrcResult r;
  double x0 = INFINITY, y0 = INFINITY, x1 = -INFINITY, y1 = -INFINITY;
  for (const auto& p : locs) {
    if (!finite(p)) continue;
    ((p.frame / o.block_frames) % 2 == 0 ? r.half_a : r.half_b) += 1;
    x0 = std::min(x0, p.x_nm), y0 = std::min(y0, p.y_nm), x1 = std::max(x1, p.x_nm),
    y1 = std::max(y1, p.y_nm);
  }
  if (std::min(r.half_a, r.half_b) < o.min_per_half) {
    r.why =
        fmt::format("{} and {} localizations in the two halves (odd/even blocks of {} frames), fewer than {}",
                    r.half_a, r.half_b, o.block_frames, o.min_per_half);
    return r;
  }
  // A square power-of-two image holding the localizations' bounding box and a pixel of margin.
  const double extent = std::max({x1 - x0, y1 - y0, o.pixel_nm});
  r.pixel_nm = o.pixel_nm;
  int n = 64;
  while (n < extent / r.pixel_nm + 3 && n < o.max_size) n *= 2;
  if (extent / r.pixel_nm + 3 > n) r.pixel_nm = extent / (n - 3);
  r.size = n;
  // Both halves in one complex image (a + i b): one transform gives both spectra.
  std::vector<Complex> z(size_t(n) * n);
  for (const auto& p : locs) {
    if (!finite(p)) continue;
    const size_t ix = size_t((p.x_nm - x0) / r.pixel_nm) + 1, iy = size_t((p.y_nm - y0) / r.pixel_nm) + 1;
    z[iy * size_t(n) + ix] += (p.frame / o.block_frames) % 2 == 0 ? Complex(1, 0) : Complex(0, 1);
  }
  fft2(z, n);
  const int rings = n / 2;
  std::vector<double> num(size_t(rings), 0.0), pa(size_t(rings), 0.0), pb(size_t(rings), 0.0);
  for (int ky = 0; ky < n; ++ky)
    for (int kx = 0; kx < n; ++kx) {
      const int fx = kx < n / 2 ? kx : kx - n, fy = ky < n / 2 ? ky : ky - n;
      const long ring = std::lround(std::sqrt(double(fx * fx + fy * fy)));
      if (ring >= rings) continue;
      const Complex zk = z[size_t(ky) * n + kx],
                    zm = std::conj(z[size_t((n - ky) % n) * n + size_t((n - kx) % n)]);
      const Complex a = 0.5 * (zk + zm), b = Complex(0, -0.5) * (zk - zm);
      num[size_t(ring)] += (a * std::conj(b)).real();
      pa[size_t(ring)] += std::norm(a);
      pb[size_t(ring)] += std::norm(b);
    }
  for (int k = 1; k < rings; ++k) {
    r.q_per_nm.push_back(k / (n * r.pixel_nm));
    const double den = std::sqrt(pa[size_t(k)] * pb[size_t(k)]);
    r.frc.push_back(den > 0 ? num[size_t(k)] / den : 0.0);
  }
  // Gaussian smoothing over rings, the same width in frequency (1/128 of Nyquist) for every size.
  const double sigma = std::max(1.0, n / 256.0);
  const int reach = int(std::ceil(3 * sigma));
  const int m = int(r.frc.size());
  for (int k = 0; k < m; ++k) {
    double s = 0, w = 0;
    for (int j = std::max(0, k - reach); j <= std::min(m - 1, k + reach); ++j) {
      const double g = std::exp(-0.5 * (j - k) * (j - k) / (sigma * sigma));
      s += g * r.frc[size_t(j)];
      w += g;
    }
    r.frc_smooth.push_back(s / w);
  }
  const auto below =
      std::find_if(r.frc_smooth.begin(), r.frc_smooth.end(), [](double v) { return v < kThreshold; });
  if (below == r.frc_smooth.end()) {
    r.why = fmt::format(
        "the FRC stays above 1/7 up to the Nyquist frequency of the {:.3g} nm pixel: the halves "
        "share structure at every scale (localizations locked to a grid, or repeated in consecutive "
        "frames: try evaluate.frc_block_frames), or the resolution is finer than two pixels (lower "
        "evaluate.frc_pixel_nm)",
        r.pixel_nm);
    return r;
  }
  const size_t k = size_t(below - r.frc_smooth.begin());
  if (k == 0) {
    r.why = "the two halves do not correlate even at the lowest frequency (too few localizations)";
    return r;
  }
  const double s0 = r.frc_smooth[k - 1], s1 = r.frc_smooth[k];
  r.crossing_per_nm = r.q_per_nm[k - 1] + (r.q_per_nm[k] - r.q_per_nm[k - 1]) * (s0 - kThreshold) / (s0 - s1);
  r.resolution_nm = 1 / r.crossing_per_nm;
  r.defined = true;
  return r;
}

namespace {

// Least squares of h ~ A g1 + C g2 with A, C >= 0; returns the residual sum of squares.
double fit_two(const std::vector<double>& h, const std::vector<double>& g1, const std::vector<double>& g2,
               double& a, double& c) {
  double s11 = 0, s12 = 0, s22 = 0, s1h = 0, s2h = 0;
  for (size_t i = 0; i < h.size(); ++i) {
    s11 += g1[i] * g1[i], s12 += g1[i] * g2[i], s22 += g2[i] * g2[i];
    s1h += g1[i] * h[i], s2h += g2[i] * h[i];
  }
  const double det = s11 * s22 - s12 * s12;
  a = det > 0 ? (s1h * s22 - s2h * s12) / det : -1;
  c = det > 0 ? (s2h * s11 - s1h * s12) / det : -1;
  if (a < 0 || c < 0) {  // the best non-negative fit has one term only
    const double a1 = s11 > 0 ? std::max(0.0, s1h / s11) : 0, c2 = s22 > 0 ? std::max(0.0, s2h / s22) : 0;
    double sse1 = 0, sse2 = 0;
    for (size_t i = 0; i < h.size(); ++i) {
      sse1 += std::pow(h[i] - a1 * g1[i], 2);
      sse2 += std::pow(h[i] - c2 * g2[i], 2);
    }
    if (sse1 <= sse2)
      a = a1, c = 0;
    else
      a = 0, c = c2;
  }
  double sse = 0;
  for (size_t i = 0; i < h.size(); ++i) sse += std::pow(h[i] - a * g1[i] - c * g2[i], 2);
  return sse;
}

// Expected counts per bin of the NeNA pair term for A = 1: p(d) * bin.
std::vector<double> pair_term(const std::vector<double>& d, double s, double bin) {
  std::vector<double> g(d.size());
  for (size_t i = 0; i < d.size(); ++i)
    g[i] = d[i] / (2 * s * s) * std::exp(-d[i] * d[i] / (4 * s * s)) * bin;
  return g;
}

}  // namespace

NenaResult nena(const std::vector<metrics::Point>& locs, const NenaOptions& o) {
  if (!(o.max_nm > 0) || !(o.bin_nm > 0) || o.bin_nm > o.max_nm) throw Error("nena: bad range or bin");
  NenaResult r;
  std::vector<metrics::Point> pts;
  for (const auto& p : locs)
    if (finite(p)) pts.push_back(p);
  // Frame order, then x: each frame's points form a run sorted by x for the window search.
  std::sort(pts.begin(), pts.end(), [](const metrics::Point& a, const metrics::Point& b) {
    return std::tie(a.frame, a.x_nm, a.y_nm) < std::tie(b.frame, b.x_nm, b.y_nm);
  });
  const size_t bins = size_t(std::ceil(o.max_nm / o.bin_nm));
  r.histogram.assign(bins, 0.0);
  size_t begin = 0;
  while (begin < pts.size()) {
    size_t end = begin;
    while (end < pts.size() && pts[end].frame == pts[begin].frame) ++end;
    size_t next_end = end;
    while (next_end < pts.size() && pts[next_end].frame == pts[begin].frame + 1) ++next_end;
    for (size_t i = begin; i < end && next_end > end; ++i) {
      const auto lo =
          std::lower_bound(pts.begin() + long(end), pts.begin() + long(next_end), pts[i].x_nm - o.max_nm,
                           [](const metrics::Point& p, double x) { return p.x_nm < x; });
      double best = INFINITY;
      for (auto it = lo; it != pts.begin() + long(next_end) && it->x_nm <= pts[i].x_nm + o.max_nm; ++it)
        best = std::min(best, std::hypot(it->x_nm - pts[i].x_nm, it->y_nm - pts[i].y_nm));
      if (best < o.max_nm) {
        r.histogram[std::min(bins - 1, size_t(best / o.bin_nm))] += 1;
        ++r.pairs;
      }
    }
    begin = end;
  }
  for (size_t i = 0; i < bins; ++i) r.d_nm.push_back((double(i) + 0.5) * o.bin_nm);
  if (r.pairs < o.min_pairs) {
    r.why = fmt::format("{} localizations have a neighbour within {} nm in the next frame, fewer than {}",
                        r.pairs, o.max_nm, o.min_pairs);
    return r;
  }
  // sigma on a log grid, then golden-section search between the grid neighbours of the best.
  const double lo = 0.5 * o.bin_nm, hi = o.max_nm / 2;
  const int grid = 200;
  auto sse_at = [&](double s, double& a, double& c) {
    return fit_two(r.histogram, pair_term(r.d_nm, s, o.bin_nm), r.d_nm, a, c);
  };
  int best = 0;
  double best_sse = INFINITY, a = 0, c = 0;
  for (int k = 0; k <= grid; ++k) {
    const double sse = sse_at(lo * std::pow(hi / lo, double(k) / grid), a, c);
    if (sse < best_sse) best_sse = sse, best = k;
  }
  double l = lo * std::pow(hi / lo, double(std::max(0, best - 1)) / grid);
  double h = lo * std::pow(hi / lo, double(std::min(grid, best + 1)) / grid);
  const double phi = (std::sqrt(5.0) - 1) / 2;
  for (int it = 0; it < 60; ++it) {
    const double m1 = h - phi * (h - l), m2 = l + phi * (h - l);
    if (sse_at(m1, a, c) < sse_at(m2, a, c))
      h = m2;
    else
      l = m1;
  }
  const double s = 0.5 * (l + h);
  sse_at(s, a, c);
  const std::vector<double> g = pair_term(r.d_nm, s, o.bin_nm);
  for (size_t i = 0; i < bins; ++i) r.fit.push_back(a * g[i] + c * r.d_nm[i]);
  r.sigma_nm = s;
  r.pair_fraction = a / double(r.pairs);
  if (!(a > 0)) {
    r.why = "no peak of repeated localizations in the next-frame distances (emitters on for one frame only?)";
    return r;
  }
  if (best == grid) {
    r.why = fmt::format("the precision is beyond the fit range (sigma >= {} nm)", hi);
    return r;
  }
  r.defined = true;
  return r;
}

void save_frc_plot(const std::string& path, const FrcResult& r) {
  const double q_max = r.q_per_nm.empty() ? 1 : r.q_per_nm.back();
  std::vector<picture::Series> s = {{"FRC", r.q_per_nm, r.frc},
                                    {"smoothed", r.q_per_nm, r.frc_smooth},
                                    {"1/7", {0, q_max}, {kThreshold, kThreshold}}};
  if (r.defined)
    s.push_back({fmt::format("{:.1f} nm", r.resolution_nm), {r.crossing_per_nm, r.crossing_per_nm}, {0, 1}});
  picture::save_line_plot(path,
                          r.defined ? fmt::format("FRC resolution {:.1f} nm", r.resolution_nm)
                                    : std::string("FRC (no resolution: ") + r.why.substr(0, 40) + "...)",
                          "spatial frequency (1/nm)", "FRC", s);
}

void save_nena_plot(const std::string& path, const NenaResult& r) {
  std::vector<picture::Series> s = {{"next-frame nearest neighbours", r.d_nm, r.histogram}};
  if (!r.fit.empty()) s.push_back({fmt::format("fit, sigma {:.1f} nm", r.sigma_nm), r.d_nm, r.fit});
  picture::save_line_plot(
      path, r.defined ? fmt::format("NeNA precision {:.1f} nm", r.sigma_nm) : "NeNA (undefined)",
      "distance (nm)", "localizations", s);
}

}  // namespace dsir::quality
