#include "stages/reduce/drift.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <filesystem>
#include <numeric>

#include "pipeline/atomic_file.h"
#include "pipeline/errors.h"
#include "pipeline/picture.h"

namespace fs = std::filesystem;

namespace dsir::drift {
namespace {

// The coarse search runs on histograms this many fine pixels wide; the fine one looks within two
// coarse pixels of the coarse peak, so a coarse peak off by one pixel is still found.
constexpr int kCoarse = 8;
constexpr size_t kMaxCoarsePixels = 4'000'000;  // per bin image

struct Bin {
  std::vector<size_t> ids;                   // finite localizations, input order
  std::vector<float> coarse;                 // dense coarse histogram
  std::vector<std::array<int, 3>> nonzero;   // (ix, iy, count) of the coarse histogram
  std::vector<std::vector<uint32_t>> cells;  // localizations per fine-search cell
};

struct Field {
  double x0, y0;  // lower corner (nm)
  double coarse_nm;
  int gw, gh;      // coarse grid
  double cell_nm;  // fine-search cell
  int cw, ch;      // cell grid
};

// Sub-pixel offset of a peak from its three samples: Gaussian (parabola of the logarithm) when all
// are positive, else a plain parabola; within [-0.5, 0.5].
double peak_offset(double l, double c, double r) {
  double off = 0;
  if (l > 0 && c > 0 && r > 0) {
    const double a = std::log(l), b = std::log(c), d = std::log(r);
    const double den = a - 2 * b + d;
    if (den < 0) off = 0.5 * (a - d) / den;
  } else {
    const double den = l - 2 * c + r;
    if (den < 0) off = 0.5 * (l - r) / den;
  }
  return std::clamp(off, -0.5, 0.5);
}

// Blur with a Gaussian of sigma 1 pixel (radius 3), zero padding: the pair histogram is noisy.
std::vector<double> smooth(const std::vector<double>& h, int n) {
  const double k[7] = {std::exp(-4.5), std::exp(-2.0), std::exp(-0.5), 1.0,
                       std::exp(-0.5), std::exp(-2.0), std::exp(-4.5)};
  std::vector<double> tmp(h.size(), 0.0), out(h.size(), 0.0);
  for (int y = 0; y < n; ++y)
    for (int x = 0; x < n; ++x)
      for (int d = -3; d <= 3; ++d)
        if (x + d >= 0 && x + d < n) tmp[size_t(y) * n + x] += k[d + 3] * h[size_t(y) * n + x + d];
  for (int y = 0; y < n; ++y)
    for (int x = 0; x < n; ++x)
      for (int d = -3; d <= 3; ++d)
        if (y + d >= 0 && y + d < n) out[size_t(y) * n + x] += k[d + 3] * tmp[size_t(y + d) * n + x];
  return out;
}

// Coarse peak of the cross-correlation of bins a and b within +-w coarse pixels (in coarse
// pixels); false when the histograms do not overlap at any shift.
bool coarse_peak(const Bin& a, const Bin& b, const Field& f, int w, int& sx, int& sy) {
  const int n = 2 * w + 1;
  std::vector<double> c(size_t(n) * n, 0.0);
  for (const auto& [x, y, v] : a.nonzero)
    for (int dy = std::max(-w, -y); dy <= std::min(w, f.gh - 1 - y); ++dy) {
      const float* row = &b.coarse[size_t(y + dy) * f.gw];
      double* out = &c[size_t(dy + w) * n];
      for (int dx = std::max(-w, -x); dx <= std::min(w, f.gw - 1 - x); ++dx) out[dx + w] += v * row[x + dx];
    }
  const size_t best = size_t(std::max_element(c.begin(), c.end()) - c.begin());
  if (!(c[best] > 0)) return false;
  sx = int(best % n) - w;
  sy = int(best / n) - w;
  return true;
}

// Sub-pixel drift of bin b relative to bin a: the histogram of displacements between their
// localizations (their cross-correlation) at the fine pixel, around the coarse peak.
bool fine_peak(const std::vector<Emitter>& locs, const Bin& a, const Bin& b, const Field& f, double px,
               double cx, double cy, double& rx, double& ry) {
  const double half = 2 * f.coarse_nm;
  const int kh = int(std::ceil(half / px)), n = 2 * kh + 1;
  std::vector<double> h(size_t(n) * n, 0.0);
  for (size_t ia : a.ids) {
    const double tx = locs[ia].x_nm + cx, ty = locs[ia].y_nm + cy;  // where a's partner should be
    const int c0x = std::max(0, int(std::floor((tx - half - f.x0) / f.cell_nm)));
    const int c1x = std::min(f.cw - 1, int(std::floor((tx + half - f.x0) / f.cell_nm)));
    const int c0y = std::max(0, int(std::floor((ty - half - f.y0) / f.cell_nm)));
    const int c1y = std::min(f.ch - 1, int(std::floor((ty + half - f.y0) / f.cell_nm)));
    for (int gy = c0y; gy <= c1y; ++gy)
      for (int gx = c0x; gx <= c1x; ++gx)
        for (uint32_t ib : b.cells[size_t(gy) * f.cw + gx]) {
          const long kx = std::lround((locs[ib].x_nm - tx) / px) + kh;
          const long ky = std::lround((locs[ib].y_nm - ty) / px) + kh;
          if (kx >= 0 && kx < n && ky >= 0 && ky < n) h[size_t(ky) * n + size_t(kx)] += 1;
        }
  }
  const std::vector<double> s = smooth(h, n);
  const size_t best = size_t(std::max_element(s.begin(), s.end()) - s.begin());
  const int bx = int(best % n), by = int(best / n);
  // A peak on the border lies outside the window: the coarse peak was not the drift.
  if (!(s[best] > 0) || bx == 0 || by == 0 || bx == n - 1 || by == n - 1) return false;
  auto at = [&](int x, int y) { return s[size_t(y) * n + x]; };
  rx = cx + (bx - kh + peak_offset(at(bx - 1, by), at(bx, by), at(bx + 1, by))) * px;
  ry = cy + (by - kh + peak_offset(at(bx, by - 1), at(bx, by), at(bx, by + 1))) * px;
  return true;
}

bool connected(const std::vector<Pair>& pairs, int bins, int skip) {
  std::vector<int> parent(static_cast<size_t>(bins));
  std::iota(parent.begin(), parent.end(), 0);
  auto root = [&](int v) {
    while (parent[size_t(v)] != v) v = parent[size_t(v)] = parent[size_t(parent[size_t(v)])];
    return v;
  };
  int groups = bins;
  for (int k = 0; k < int(pairs.size()); ++k) {
    if (!pairs[size_t(k)].active || k == skip) continue;
    const int a = root(pairs[size_t(k)].i), b = root(pairs[size_t(k)].j);
    if (a != b) parent[size_t(a)] = b, --groups;
  }
  return groups == 1;
}

// Least squares for the per-bin drift D (D_0 = 0) from D_j - D_i = r_ij over the active pairs:
// the normal equations are the pair graph's Laplacian without bin 0.
void solve(const std::vector<Pair>& pairs, int bins, std::vector<double>& dx, std::vector<double>& dy) {
  const int n = bins - 1;
  std::vector<double> m(size_t(n) * n, 0.0), bx(size_t(n), 0.0), by(size_t(n), 0.0);
  for (const Pair& p : pairs) {
    if (!p.active) continue;
    for (const auto& [k, sign] : {std::pair{p.i, -1.0}, std::pair{p.j, 1.0}}) {
      if (k == 0) continue;
      bx[size_t(k - 1)] += sign * p.rx;
      by[size_t(k - 1)] += sign * p.ry;
      m[size_t(k - 1) * n + size_t(k - 1)] += 1;
    }
    if (p.i > 0) {
      m[size_t(p.i - 1) * n + size_t(p.j - 1)] -= 1;
      m[size_t(p.j - 1) * n + size_t(p.i - 1)] -= 1;
    }
  }
  // Gaussian elimination with partial pivoting (n is small; connected graph: non-singular).
  for (int c = 0; c < n; ++c) {
    int piv = c;
    for (int r = c + 1; r < n; ++r)
      if (std::abs(m[size_t(r) * n + c]) > std::abs(m[size_t(piv) * n + c])) piv = r;
    if (piv != c) {
      for (int k = 0; k < n; ++k) std::swap(m[size_t(c) * n + k], m[size_t(piv) * n + k]);
      std::swap(bx[size_t(c)], bx[size_t(piv)]);
      std::swap(by[size_t(c)], by[size_t(piv)]);
    }
    for (int r = c + 1; r < n; ++r) {
      const double f = m[size_t(r) * n + c] / m[size_t(c) * n + c];
      if (f == 0) continue;
      for (int k = c; k < n; ++k) m[size_t(r) * n + k] -= f * m[size_t(c) * n + k];
      bx[size_t(r)] -= f * bx[size_t(c)];
      by[size_t(r)] -= f * by[size_t(c)];
    }
  }
  dx.assign(size_t(bins), 0.0);
  dy.assign(size_t(bins), 0.0);
  for (int r = n - 1; r >= 0; --r) {
    double sx = bx[size_t(r)], sy = by[size_t(r)];
    for (int k = r + 1; k < n; ++k) {
      sx -= m[size_t(r) * n + k] * dx[size_t(k + 1)];
      sy -= m[size_t(r) * n + k] * dy[size_t(k + 1)];
    }
    dx[size_t(r + 1)] = sx / m[size_t(r) * n + r];
    dy[size_t(r + 1)] = sy / m[size_t(r) * n + r];
  }
}

double residual(const Pair& p, const std::vector<double>& dx, const std::vector<double>& dy) {
  return std::hypot(dx[size_t(p.j)] - dx[size_t(p.i)] - p.rx, dy[size_t(p.j)] - dy[size_t(p.i)] - p.ry);
}

}  // namespace

PairSolution solve_pairs(std::vector<Pair> pairs, int bins, double rmax_nm) {
  if (!connected(pairs, bins, -1)) throw Error("solve_pairs: the pairs do not tie every bin together");
  // RCC's rmax: drop the worst pair while its residual exceeds rmax and the rest still ties every
  // bin together, then solve again.
  PairSolution sol;
  for (;;) {
    solve(pairs, bins, sol.x_nm, sol.y_nm);
    std::vector<std::pair<double, int>> worst;
    for (int k = 0; k < int(pairs.size()); ++k)
      if (pairs[size_t(k)].active) worst.push_back({residual(pairs[size_t(k)], sol.x_nm, sol.y_nm), k});
    std::sort(worst.begin(), worst.end(), std::greater<>());
    bool dropped = false;
    for (const auto& [r, k] : worst) {
      if (r <= rmax_nm) break;
      if (connected(pairs, bins, k)) {
        pairs[size_t(k)].active = false;
        ++sol.dropped;
        dropped = true;
        break;
      }
    }
    if (!dropped) break;
  }
  double ss = 0;
  size_t kept = 0;
  for (const Pair& p : pairs)
    if (p.active) ss += std::pow(residual(p, sol.x_nm, sol.y_nm), 2), ++kept;
  sol.residual_rms_nm = std::sqrt(ss / double(kept));
  return sol;
}

std::vector<double> spline(const std::vector<double>& t, const std::vector<double>& v, size_t n) {
  const size_t k = t.size();
  if (k < 2 || v.size() != k) throw Error("spline: needs at least two knots");
  std::vector<double> h(k - 1), m(k, 0.0);  // m: second derivatives, 0 at the ends (natural)
  for (size_t i = 0; i + 1 < k; ++i) h[i] = t[i + 1] - t[i];
  if (k > 2) {  // tridiagonal system for m[1 .. k-2] (Thomas algorithm)
    std::vector<double> diag(k), rhs(k), upper(k);
    for (size_t i = 1; i + 1 < k; ++i) {
      diag[i] = 2 * (h[i - 1] + h[i]);
      upper[i] = h[i];
      rhs[i] = 6 * ((v[i + 1] - v[i]) / h[i] - (v[i] - v[i - 1]) / h[i - 1]);
      if (i > 1) {
        const double f = h[i - 1] / diag[i - 1];
        diag[i] -= f * upper[i - 1];
        rhs[i] -= f * rhs[i - 1];
      }
    }
    for (size_t i = k - 2; i >= 1; --i) m[i] = (rhs[i] - (i + 2 < k ? upper[i] * m[i + 1] : 0.0)) / diag[i];
  }
  const double slope0 = (v[1] - v[0]) / h[0] - h[0] * m[1] / 6;
  const double slope1 = (v[k - 1] - v[k - 2]) / h[k - 2] + h[k - 2] * m[k - 2] / 6;
  std::vector<double> out(n);
  size_t seg = 0;
  for (size_t f = 0; f < n; ++f) {
    const double x = double(f);
    if (x <= t[0]) {
      out[f] = v[0] + slope0 * (x - t[0]);
    } else if (x >= t[k - 1]) {
      out[f] = v[k - 1] + slope1 * (x - t[k - 1]);
    } else {
      while (x > t[seg + 1]) ++seg;
      const double a = (t[seg + 1] - x) / h[seg], b = (x - t[seg]) / h[seg];
      out[f] = a * v[seg] + b * v[seg + 1] +
               ((a * a * a - a) * m[seg] + (b * b * b - b) * m[seg + 1]) * h[seg] * h[seg] / 6;
    }
  }
  return out;
}

Estimate estimate_rcc(const std::vector<Emitter>& locs, uint64_t frames, const Options& o,
                      const std::string& where) {
  if (o.bins < 3 || !(o.pixel_nm > 0) || !(o.max_drift_nm > 0) || !(o.rmax_nm > 0))
    throw ConfigError(where +
                      ": reduce.drift_*: needs at least 3 bins and positive pixel, max drift and rmax");
  if (frames < uint64_t(o.bins))
    throw InputError(
        fmt::format("{}: reduce.drift: rcc: {} frames cannot make {} time bins (lower "
                    "reduce.drift_bins or set reduce.drift: none)",
                    where, frames, o.bins));
  std::vector<Bin> bins(size_t(o.bins));
  double x0 = INFINITY, y0 = INFINITY, x1 = -INFINITY, y1 = -INFINITY;
  for (size_t i = 0; i < locs.size(); ++i) {
    const Emitter& e = locs[i];
    if (!std::isfinite(e.x_nm) || !std::isfinite(e.y_nm) || e.frame < 0 || uint64_t(e.frame) >= frames)
      continue;
    bins[size_t(uint64_t(e.frame) * uint64_t(o.bins) / frames)].ids.push_back(i);
    x0 = std::min(x0, e.x_nm), y0 = std::min(y0, e.y_nm), x1 = std::max(x1, e.x_nm),
    y1 = std::max(y1, e.y_nm);
  }
  Estimate est;
  for (int b = 0; b < o.bins; ++b) {
    const uint64_t first = (uint64_t(b) * frames + uint64_t(o.bins) - 1) / uint64_t(o.bins);
    const uint64_t last = (uint64_t(b + 1) * frames + uint64_t(o.bins) - 1) / uint64_t(o.bins);  // exclusive
    if (bins[size_t(b)].ids.size() < o.min_locs_per_bin)
      throw InputError(fmt::format(
          "{}: reduce.drift: rcc: time bin {} of {} (frames {}-{}) has {} localizations, fewer than the "
          "{} a cross-correlation needs (lower reduce.drift_bins or set reduce.drift: none)",
          where, b + 1, o.bins, first + 1, last, bins[size_t(b)].ids.size(), o.min_locs_per_bin));
    double sum = 0;
    for (size_t i : bins[size_t(b)].ids) sum += double(locs[i].frame);
    est.bin_frame.push_back(sum / double(bins[size_t(b)].ids.size()));
  }

  Field f;
  f.x0 = x0, f.y0 = y0;
  f.coarse_nm = o.pixel_nm * kCoarse;
  const auto grid = [](double extent, double cell) { return int(std::floor(extent / cell)) + 1; };
  while (double(grid(x1 - x0, f.coarse_nm)) * grid(y1 - y0, f.coarse_nm) > double(kMaxCoarsePixels))
    f.coarse_nm *= 2;  // a huge field: coarser search, the fine stage still uses pixel_nm
  // Beyond that the fine search window (four coarse pixels) would outgrow memory: a field this size
  // means stray coordinates rather than a sample.
  if (f.coarse_nm > 4 * o.pixel_nm * kCoarse)
    throw InputError(
        fmt::format("{}: reduce.drift: rcc: the localizations span {:.0f} x {:.0f} nm, too large for "
                    "the cross-correlation at reduce.drift_pixel_nm = {} (stray coordinates?)",
                    where, x1 - x0, y1 - y0, o.pixel_nm));
  f.gw = grid(x1 - x0, f.coarse_nm), f.gh = grid(y1 - y0, f.coarse_nm);
  f.cell_nm = 4 * f.coarse_nm;  // each fine search box (4 coarse pixels wide) spans <= 2 cells per axis
  f.cw = grid(x1 - x0, f.cell_nm), f.ch = grid(y1 - y0, f.cell_nm);
  for (Bin& b : bins) {
    b.coarse.assign(size_t(f.gw) * f.gh, 0.0f);
    b.cells.resize(size_t(f.cw) * f.ch);
    for (size_t i : b.ids) {
      const int gx = int((locs[i].x_nm - x0) / f.coarse_nm), gy = int((locs[i].y_nm - y0) / f.coarse_nm);
      b.coarse[size_t(gy) * f.gw + gx] += 1;
      b.cells[size_t((locs[i].y_nm - y0) / f.cell_nm) * f.cw + size_t((locs[i].x_nm - x0) / f.cell_nm)]
          .push_back(uint32_t(i));
    }
    for (int y = 0; y < f.gh; ++y)
      for (int x = 0; x < f.gw; ++x)
        if (const float v = b.coarse[size_t(y) * f.gw + x]; v > 0) b.nonzero.push_back({x, y, int(v)});
  }

  const int w = int(std::ceil(o.max_drift_nm / f.coarse_nm));
  std::vector<Pair> pairs;
  for (int i = 0; i < o.bins; ++i)
    for (int j = i + 1; j < o.bins; ++j) {
      int sx = 0, sy = 0;
      Pair p{i, j, 0, 0};
      if (coarse_peak(bins[size_t(i)], bins[size_t(j)], f, w, sx, sy) &&
          fine_peak(locs, bins[size_t(i)], bins[size_t(j)], f, o.pixel_nm, sx * f.coarse_nm, sy * f.coarse_nm,
                    p.rx, p.ry))
        pairs.push_back(p);
    }
  est.pairs = pairs.size();
  if (!connected(pairs, o.bins, -1))
    throw InputError(where +
                     ": reduce.drift: rcc: the time bins do not correlate (too little structure or a "
                     "drift beyond reduce.drift_max_nm)");
  const PairSolution sol = solve_pairs(pairs, o.bins, o.rmax_nm);
  est.pairs_dropped = sol.dropped;
  est.residual_rms_nm = sol.residual_rms_nm;
  const std::vector<double>&dx = sol.x_nm, &dy = sol.y_nm;
  est.bin_x_nm = dx;
  est.bin_y_nm = dy;
  est.x_nm = spline(est.bin_frame, dx, size_t(frames));
  est.y_nm = spline(est.bin_frame, dy, size_t(frames));
  // Drift is defined up to a constant: the first frame is the reference.
  const double ox = est.x_nm[0], oy = est.y_nm[0];
  for (double& v : est.x_nm) v -= ox;
  for (double& v : est.y_nm) v -= oy;
  for (double& v : est.bin_x_nm) v -= ox;
  for (double& v : est.bin_y_nm) v -= oy;
  return est;
}

void apply(std::vector<Emitter>& locs, const Estimate& d) {
  if (d.x_nm.empty()) return;
  const int64_t last = int64_t(d.x_nm.size()) - 1;
  for (Emitter& e : locs) {
    const size_t f = size_t(std::clamp<int64_t>(e.frame, 0, last));
    e.x_raw_nm = e.x_nm;
    e.y_raw_nm = e.y_nm;
    e.x_nm -= d.x_nm[f];
    e.y_nm -= d.y_nm[f];
  }
}

void write_csv(const std::string& path, const Estimate& d) {
  std::string text = "frame,drift_x_nm,drift_y_nm\n";
  text.reserve(text.size() + d.x_nm.size() * 28);
  for (size_t f = 0; f < d.x_nm.size(); ++f)
    text += fmt::format("{},{:.3f},{:.3f}\n", f + 1, d.x_nm[f], d.y_nm[f]);
  write_text_file(path, text);
}

void save_plot(const std::string& path, const Estimate& d) {
  picture::Series x{"drift x", {}, d.x_nm}, y{"drift y", {}, d.y_nm};
  for (size_t f = 0; f < d.x_nm.size(); ++f) x.x.push_back(double(f + 1));
  y.x = x.x;
  // The per-bin estimates as isolated points (NaN breaks the line, so each is marked).
  picture::Series bx{"bins x", {}, {}}, by{"bins y", {}, {}};
  for (size_t b = 0; b < d.bin_frame.size(); ++b) {
    for (auto* s : {&bx, &by}) s->x.insert(s->x.end(), {d.bin_frame[b] + 1, NAN});
    bx.y.insert(bx.y.end(), {d.bin_x_nm[b], NAN});
    by.y.insert(by.y.end(), {d.bin_y_nm[b], NAN});
  }
  picture::save_line_plot(path, "Drift (RCC)", "frame", "drift (nm)", {x, y, bx, by});
}

std::string correct(std::vector<Emitter>& locs, uint64_t frames, const std::string& where,
                    const std::string& dir, const std::optional<Options>& rcc) {
  const fs::path csv = fs::path(dir) / "drift.csv", png = fs::path(dir) / "drift.png";
  if (!rcc) {
    // A drift.csv left by an earlier rcc run would describe coordinates these exports do not have.
    fs::remove(csv);
    fs::remove(png);
    return "";
  }
  const Estimate d = estimate_rcc(locs, frames, *rcc, where);
  apply(locs, d);
  write_csv(csv.string(), d);
  save_plot(png.string(), d);
  double largest = 0;
  for (size_t f = 0; f < d.x_nm.size(); ++f) largest = std::max(largest, std::hypot(d.x_nm[f], d.y_nm[f]));
  return fmt::format(
      "reduce: {}: drift corrected by RCC ({} bins, {} of {} pairs kept, pair residual RMS "
      "{:.1f} nm, largest drift {:.0f} nm)\n",
      png.string(), d.bin_frame.size(), d.pairs - d.pairs_dropped, d.pairs, d.residual_rms_nm, largest);
}

}  // namespace dsir::drift
