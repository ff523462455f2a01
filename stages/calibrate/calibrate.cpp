#include "stages/calibrate/calibrate.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <filesystem>
#include <optional>

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
constexpr int kMomentBins = 16;
constexpr size_t kMinSpots = 50;              // fewer isolated spots leave the variance line to chance
constexpr double kMinBackgroundShare = 0.05;  // of all pixel values, for the background cumulants
constexpr double kWidthCut = 3;     // spots this many robust deviations wider or narrower are left out
constexpr double kMisfitRatio = 2;  // spots with this many times the expected squared residuals too

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  const size_t m = v.size() / 2;
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(m), v.end());
  return v[m];
}

// The mass of a unit Gaussian (centre c, width s) inside [a, a + 1).
double pixel_mass(double a, double c, double s) {
  const double k = 1.0 / (std::sqrt(2.0) * s);
  return 0.5 * (std::erf((a + 1 - c) * k) - std::erf((a - c) * k));
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
  int x0 = 0, y0 = 0, size = 0;  // top-left pixel, side
  std::vector<double> values;    // ADU, row-major
};

using Params = std::array<double, 5>;  // x, y, sigma, total, offset

std::vector<double> model(const Roi& roi, const Params& p) {
  std::vector<double> m(roi.values.size());
  std::array<double, 2 * kRoiHalf + 1> mx{}, my{};
  for (int i = 0; i < roi.size; ++i) {
    mx[i] = pixel_mass(roi.x0 + i, p[0], p[2]);
    my[i] = pixel_mass(roi.y0 + i, p[1], p[2]);
  }
  for (int r = 0; r < roi.size; ++r)
    for (int c = 0; c < roi.size; ++c) m[r * roi.size + c] = p[4] + p[3] * mx[c] * my[r];
  return m;
}

std::vector<double> jacobian(const Roi& roi, const Params& p) {
  const size_t n = roi.values.size();
  std::vector<double> j(n * 5);
  const std::vector<double> m0 = model(roi, p);
  for (int k = 0; k < 5; ++k) {
    Params q = p;
    const double h = 1e-6 * std::max(1.0, std::abs(p[k]));
    q[k] += h;
    const std::vector<double> m1 = model(roi, q);
    for (size_t i = 0; i < n; ++i) j[i * 5 + k] = (m1[i] - m0[i]) / h;
  }
  return j;
}

double sum_sq(const std::vector<double>& m, const Roi& roi) {
  double s = 0;
  for (size_t i = 0; i < m.size(); ++i) s += (m[i] - roi.values[i]) * (m[i] - roi.values[i]);
  return s;
}

// Levenberg–Marquardt least squares; false when it does not settle on a plausible spot.
bool fit_spot(const Roi& roi, Params& p) {
  double lambda = 1e-3, cost = sum_sq(model(roi, p), roi);
  const double x_start = p[0], y_start = p[1];
  for (int it = 0; it < 60; ++it) {
    const std::vector<double> m = model(roi, p), j = jacobian(roi, p);
    std::vector<double> jtj(25, 0.0), g(5, 0.0);
    for (size_t i = 0; i < m.size(); ++i) {
      const double r = m[i] - roi.values[i];
      for (int a = 0; a < 5; ++a) {
        g[a] -= j[i * 5 + a] * r;
        for (int b = 0; b < 5; ++b) jtj[a * 5 + b] += j[i * 5 + a] * j[i * 5 + b];
      }
    }
    bool improved = false;
    for (int tries = 0; tries < 10 && !improved; ++tries) {
      std::vector<double> a = jtj, step = g;
      for (int d = 0; d < 5; ++d) a[d * 5 + d] *= 1 + lambda;
      if (!solve(a, step, 5)) return false;
      Params q = p;
      for (int k = 0; k < 5; ++k) q[k] += step[k];
      if (!(q[2] > 0.2)) q[2] = 0.2;
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
  return std::isfinite(cost) && p[2] > 0.3 && p[2] < kRoiHalf * 0.75 && p[3] > 0 &&
         std::hypot(p[0] - x_start, p[1] - y_start) < 1.5;
}

// Least squares line y = slope x + intercept with weights w.
std::pair<double, double> weighted_line(const std::vector<double>& x, const std::vector<double>& y,
                                        const std::vector<double>& w) {
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
  return {slope, my - slope * mx};
}

// One fitted pixel. The fit's residuals are r = A e with A = I - H (H the hat matrix) and e the
// pixels' independent noise, so E[r_i²] = Σ_j A_ij² κ2_j and E[r_i³] = Σ_j A_ij³ κ3_j. With
// κ_j = slope μ_j + intercept both are linear in (slope, intercept): E[r_i^k] = slope u_k + intercept v_k
// with u_k = Σ_j A_ij^k μ_j and v_k = Σ_j A_ij^k. Regressing on u and v undoes the fit's pull toward
// 0 exactly even though the variance changes across the spot (a per-pixel 1/(1 - h_ii) would not:
// the peak pixels' leverage is 0.4).
struct Sample {
  double mean, r2, u2, v2;
};

// The line κ2 = slope μ + intercept through the background (one point) and the used spots' pixels
// in kMomentBins bins of equal count by fitted mean. A bin's averages keep E[r2] = slope u2 +
// intercept v2, so (u2 / v2, r2 / v2) lies on the line: the point plotted and fitted. Weights: the
// sampling variance of a mean of squared residuals grows as κ2² per sample, divided by v².
void fit_variance_line(const std::vector<std::vector<Sample>>& samples_of_spot,
                       const std::vector<uint8_t>& use, const MomentBin& background, Calibration& cal) {
  std::vector<Sample> samples;
  for (size_t k = 0; k < samples_of_spot.size(); ++k)
    if (use[k]) samples.insert(samples.end(), samples_of_spot[k].begin(), samples_of_spot[k].end());
  std::sort(samples.begin(), samples.end(), [](const Sample& a, const Sample& b) { return a.mean < b.mean; });
  cal.bins = {background};
  std::vector<double> x{background.mean_adu}, y{background.kappa2},
      w{background.count / (background.kappa2 * background.kappa2)};
  for (int b = 0; b < kMomentBins; ++b) {
    const size_t lo = samples.size() * b / kMomentBins, hi = samples.size() * (b + 1) / kMomentBins;
    if (hi <= lo) continue;
    Sample sum{0, 0, 0, 0};
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
  std::tie(cal.kappa2_slope, cal.kappa2_intercept) = weighted_line(x, y, w);
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

  // First guess of the background and its noise from all values: the median and the MAD are
  // barely moved by sparse spots.
  std::vector<double> all;
  all.reserve(npx * stack.frames.size());
  for (const auto& fr : stack.frames)
    for (float v : fr) all.push_back(v);
  const double level = median(all);
  for (double& v : all) v = std::abs(v - level);
  const double noise = 1.4826 * median(all);
  if (!(noise > 0))
    throw InputError(
        fmt::format("{}: the pixel values do not vary (constant frames?); nothing to calibrate", name));
  all.clear();
  all.shrink_to_fit();

  // Detection: local maxima of the 3x3 mean well above the background.
  const double threshold = level + kDetectSigmas * noise / 3.0;
  std::vector<std::vector<std::pair<int, int>>> maxima(stack.frames.size());
  std::vector<Roi> rois;
  std::vector<float> smooth(npx);
  std::vector<uint8_t> signal(npx);
  std::vector<double> background_values;
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
    std::fill(signal.begin(), signal.end(), 0);
    const int rad = static_cast<int>(std::ceil(kSignalRadiusPx));
    for (auto [mx, my] : found)
      for (int y = std::max(0, my - rad); y <= std::min(h - 1, my + rad); ++y)
        for (int x = std::max(0, mx - rad); x <= std::min(w - 1, mx + rad); ++x)
          if ((x - mx) * (x - mx) + (y - my) * (y - my) <= kSignalRadiusPx * kSignalRadiusPx)
            signal[y * w + x] = 1;
    for (size_t i = 0; i < npx; ++i)
      if (!signal[i]) background_values.push_back(img[i]);

    for (size_t k = 0; k < found.size(); ++k) {
      const auto [mx, my] = found[k];
      if (mx < kRoiHalf || my < kRoiHalf || mx + kRoiHalf >= w || my + kRoiHalf >= h) continue;
      bool isolated = true;
      for (size_t o = 0; o < found.size() && isolated; ++o)
        if (o != k && std::hypot(found[o].first - mx, found[o].second - my) < kIsolationPx) isolated = false;
      if (!isolated) continue;
      Roi roi;
      roi.frame = static_cast<int>(f);
      roi.x0 = mx - kRoiHalf;
      roi.y0 = my - kRoiHalf;
      roi.size = 2 * kRoiHalf + 1;
      for (int y = 0; y < roi.size; ++y)
        for (int x = 0; x < roi.size; ++x) roi.values.push_back(img[(roi.y0 + y) * w + roi.x0 + x]);
      rois.push_back(std::move(roi));
    }
  }
  // The cumulants need background pixels away from every spot and isolated spots: dense frames
  // (overlapping PSFs everywhere) have neither, and fitting them anyway gives nonsense.
  size_t detections = 0;
  for (const auto& m : maxima) detections += m.size();
  cal.detections_per_frame = static_cast<double>(detections) / cal.frames;
  const double background_share =
      static_cast<double>(background_values.size()) / static_cast<double>(npx * stack.frames.size());
  if (background_share < kMinBackgroundShare)
    throw InputError(
        fmt::format("{}: too dense to calibrate: only {:.1f} % of the pixels are farther than {} "
                    "pixels from a spot ({:.1f} spots per frame); calibrate on a sparser "
                    "acquisition of the same camera",
                    name, 100 * background_share, kSignalRadiusPx, cal.detections_per_frame));
  {
    double s = 0;
    for (double v : background_values) s += v;
    const double m = s / static_cast<double>(background_values.size());
    double m2 = 0, m3 = 0;
    for (double v : background_values) {
      m2 += (v - m) * (v - m);
      m3 += (v - m) * (v - m) * (v - m);
    }
    const double n = static_cast<double>(background_values.size());
    cal.background_mean_adu = m;
    cal.background_kappa2 = m2 / (n - 1);
    cal.background_kappa3 = m3 * n / ((n - 1) * (n - 2));
    cal.background_samples = background_values.size();
  }

  // Fit the isolated spots; keep each pixel's fitted mean, its residual's powers and their
  // expected values' coefficients (Sample).
  std::vector<double> sigmas;
  std::vector<std::vector<Sample>> samples_of_spot;
  for (const Roi& roi : rois) {
    Params p{};
    p[0] = roi.x0 + kRoiHalf + 0.5;
    p[1] = roi.y0 + kRoiHalf + 0.5;
    p[2] = 1.2;
    p[4] = cal.background_mean_adu;
    double total = 0;
    for (double v : roi.values) total += v - p[4];
    p[3] = std::max(total, 1.0);
    if (!fit_spot(roi, p)) continue;
    const size_t n = roi.values.size();
    const std::vector<double> m = model(roi, p), j = jacobian(roi, p);
    std::vector<double> jtj(25, 0.0);
    for (size_t i = 0; i < n; ++i)
      for (int a = 0; a < 5; ++a)
        for (int b = 0; b < 5; ++b) jtj[a * 5 + b] += j[i * 5 + a] * j[i * 5 + b];
    // (JᵀJ)⁻¹ Jᵀ, column by column.
    std::vector<double> pinv(5 * n);
    bool ok = true;
    for (size_t i = 0; i < n && ok; ++i) {
      std::vector<double> col(5);
      for (int a = 0; a < 5; ++a) col[a] = j[i * 5 + a];
      ok = solve(jtj, col, 5);
      for (int a = 0; a < 5; ++a) pinv[a * n + i] = col[a];
    }
    if (!ok) continue;
    std::vector<Sample>& spot_samples = samples_of_spot.emplace_back();
    for (size_t i = 0; i < n; ++i) {
      Sample smp{m[i], 0, 0, 0};
      for (size_t k = 0; k < n; ++k) {
        double hik = 0;
        for (int a = 0; a < 5; ++a) hik += j[i * 5 + a] * pinv[a * n + k];
        const double aik = (i == k ? 1.0 : 0.0) - hik;
        smp.v2 += aik * aik;
        smp.u2 += aik * aik * m[k];
      }
      const double r = roi.values[i] - m[i];
      smp.r2 = r * r;
      spot_samples.push_back(smp);
    }
    SpotFit s;
    s.frame = roi.frame;
    s.x = p[0];
    s.y = p[1];
    s.sigma_px = p[2];
    s.total_adu = p[3];
    s.offset_adu = p[4];
    cal.spots.push_back(s);
    sigmas.push_back(p[2]);
  }
  if (cal.spots.size() < kMinSpots)
    throw InputError(
        fmt::format("{}: only {} isolated spots could be fitted (at least {} needed): too few "
                    "emitters, too dense, or no spots above the noise",
                    name, cal.spots.size(), kMinSpots));
  // Two emitters closer than the detector resolves fit as one wider spot whose residuals are
  // misfit, not noise: only spots of the usual width feed the line. The cut is wide (the fitted
  // widths' own scatter is a few %), so it barely selects on the noise itself.
  std::vector<uint8_t> use(cal.spots.size(), 0);
  {
    const double mid = median(sigmas);
    std::vector<double> dev;
    for (double v : sigmas) dev.push_back(std::abs(v - mid));
    const double spread = 1.4826 * median(dev);
    for (size_t k = 0; k < cal.spots.size(); ++k)
      use[k] = std::abs(cal.spots[k].sigma_px - mid) <= kWidthCut * spread;
  }
  const MomentBin background{cal.background_mean_adu, cal.background_kappa2,
                             static_cast<double>(cal.background_samples)};
  fit_variance_line(samples_of_spot, use, background, cal);
  // Second pass: spots whose residuals are far larger than the first line predicts (an unresolved
  // neighbour that kept the width) are misfits; 2x the expected sum of squares is > 5 standard
  // deviations of that sum for 81 pixels, so noise alone is almost never cut.
  for (size_t k = 0; k < cal.spots.size(); ++k) {
    if (!use[k]) continue;
    double got = 0, expected = 0;
    for (const Sample& smp : samples_of_spot[k]) {
      got += smp.r2;
      expected += cal.kappa2_slope * smp.u2 + cal.kappa2_intercept * smp.v2;
    }
    use[k] = got < kMisfitRatio * expected;
  }
  fit_variance_line(samples_of_spot, use, background, cal);
  if (!(cal.kappa2_slope > 0))
    throw InputError(
        fmt::format("{}: the pixel variance does not grow with the mean (slope {:.3g}); not "
                    "shot-noise-limited data",
                    name, cal.kappa2_slope));

  // Compound Poisson: n ~ Poisson(λ) photoelectrons, each amplified to Y ADU, gives κ_k = λ E[Y^k].
  // Without EM, Y = g: κ2 = g (mean - base), κ3 = g² (mean - base). Behind an EM register each
  // electron leaves as Exp(g) (the simulator's Gamma(n, g) is a sum of n such), E[Y^k] = k! g^k:
  // κ2 = 2 g (mean - base), κ3 = 6 g² (mean - base). The line's slope is F² g either way, so at the
  // background (κ3 / κ2) / slope = 1.5 f with EM and f without, f = shot / (shot + read) <= 1 the
  // share of the variance that is shot noise (Gaussian read noise has no κ3). The third cumulant is
  // taken on the background, where it is measured on far more pixels than on the spots (a spot
  // pixel's cubed residual scatters as 15 κ2³). EM is called when the ratio exceeds 1.2; an EM camera
  // whose read noise exceeds 1/4 of the background's shot variance would be missed (not seen in EM
  // practice, where the gain lifts the signal far above the read noise).
  cal.skew_ratio = cal.background_kappa3 / cal.background_kappa2 / cal.kappa2_slope;
  cal.em = cal.skew_ratio > 1.2;
  const double excess = cal.em ? 2.0 : 1.0;
  cal.adu_per_photon = cal.kappa2_slope / excess;
  const double g = cal.adu_per_photon;
  // The base from the background's third cumulant, which read noise does not touch; the read
  // noise is then what the shot noise leaves of the background variance (less 1/12 for rounding).
  const double kappa3_per_adu = (cal.em ? 6.0 : 1.0) * g * g;
  const double above_base = cal.background_kappa3 / kappa3_per_adu;
  cal.base_level = cal.background_mean_adu - above_base;
  cal.background_photons = std::max(0.0, above_base / g);
  cal.read_noise_adu =
      std::sqrt(std::max(0.0, cal.background_kappa2 - 1.0 / 12.0 - cal.kappa2_slope * above_base));

  cal.sigma_px = median(sigmas);
  if (cal.pixel_size_nm > 0) {
    cal.sigma_nm = cal.sigma_px * cal.pixel_size_nm;
    const double area_um2 = w * h * cal.pixel_size_nm * cal.pixel_size_nm * 1e-6;
    const double observed = cal.detections_per_frame / area_um2;
    // Two emitters closer than about 2 sigma merge into one maximum: with a Poisson field of
    // density ρ, ρ_observed ≈ ρ (1 + exp(-ρ π d²)) / 2 (each close pair counts once); solved for ρ.
    const double d_um = 2.0 * cal.sigma_nm * 1e-3;
    double rho = observed;
    for (int it = 0; it < 50; ++it) rho = 2.0 * observed / (1.0 + std::exp(-rho * M_PI * d_um * d_um));
    cal.density_per_um2 = rho;
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
      "# {} isolated spots fitted, {:.2f} detections per frame.\n"
      "# Use as the config of `dsir simulate` (or copy these keys into a config).\n",
      source, c.frames, c.width, c.height, fmt::format("{:.4g}", c.adu_per_photon), c.em ? "on" : "off",
      c.skew_ratio, c.spots.size(), c.detections_per_frame);
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
  picture::Series bins{"bins (first: background)", {}, {}}, line{"fit", {}, {}};
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
  std::vector<double> widths;
  for (const auto& s : c.spots) widths.push_back(s.sigma_px * scale);
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
