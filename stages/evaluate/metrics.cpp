#include "stages/evaluate/metrics.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <map>
#include <numeric>
#include <string>
#include <tuple>
#include <unordered_map>
#include <utility>

#include "pipeline/errors.h"

namespace dsir::metrics {
namespace {

// A prediction/truth pair within tolerance; p and t index the frame's own point lists.
struct Candidate {
  size_t p, t;
  double d;
};

struct Tally {
  uint64_t tp = 0;
  double sum_sq = 0;
  void add(double d) {
    ++tp;
    sum_sq += d * d;
  }
};

using Cell = std::pair<int64_t, int64_t>;

struct CellHash {
  size_t operator()(const Cell& c) const {
    uint64_t h = static_cast<uint64_t>(c.first) * 0x9E3779B97F4A7C15ULL + static_cast<uint64_t>(c.second);
    return static_cast<size_t>(h ^ (h >> 32));
  }
};

int64_t cell_index(double v, double cell) {
  // Clamping keeps the cast defined for extreme coordinates; it can only merge distant cells,
  // which costs time but never loses a pair.
  constexpr double kLimit = 1e15;
  return static_cast<int64_t>(std::clamp(std::floor(v / cell), -kLimit, kLimit));
}

bool finite(const Point& p) { return std::isfinite(p.x_nm) && std::isfinite(p.y_nm); }

// All pairs of one frame within `tol`, found through a uniform grid of truths.
std::vector<Candidate> find_candidates(const std::vector<Point>& predicted,
                                       const std::vector<size_t>& pred_ids, const std::vector<Point>& truth,
                                       const std::vector<size_t>& truth_ids, double tol) {
  // Any cell size >= tol puts every partner of a point in the 3x3 cells around it.
  const double cell = tol > 0 ? tol : 1.0;
  std::unordered_map<Cell, std::vector<size_t>, CellHash> grid;
  for (size_t j = 0; j < truth_ids.size(); ++j) {
    const Point& t = truth[truth_ids[j]];
    if (finite(t)) grid[{cell_index(t.x_nm, cell), cell_index(t.y_nm, cell)}].push_back(j);
  }
  std::vector<Candidate> out;
  for (size_t i = 0; i < pred_ids.size(); ++i) {
    const Point& p = predicted[pred_ids[i]];
    if (!finite(p)) continue;  // NaN / inf coordinates never match
    const int64_t cx = cell_index(p.x_nm, cell), cy = cell_index(p.y_nm, cell);
    for (int64_t gx = cx - 1; gx <= cx + 1; ++gx) {
      for (int64_t gy = cy - 1; gy <= cy + 1; ++gy) {
        const auto it = grid.find({gx, gy});
        if (it == grid.end()) continue;
        for (size_t j : it->second) {
          const Point& t = truth[truth_ids[j]];
          const double d = std::hypot(p.x_nm - t.x_nm, p.y_nm - t.y_nm);
          if (d <= tol) out.push_back({i, j, d});
        }
      }
    }
  }
  return out;
}

void match_greedy(std::vector<Candidate> pairs, size_t n_pred, size_t n_truth, Tally& tally) {
  // Index tie-breaks make the result independent of the order the grid produced the pairs in.
  std::sort(pairs.begin(), pairs.end(), [](const Candidate& a, const Candidate& b) {
    return std::tie(a.d, a.p, a.t) < std::tie(b.d, b.p, b.t);
  });
  std::vector<char> pred_used(n_pred, 0), truth_used(n_truth, 0);
  for (const Candidate& c : pairs) {
    if (pred_used[c.p] || truth_used[c.t]) continue;
    pred_used[c.p] = truth_used[c.t] = 1;
    tally.add(c.d);
  }
}

// Minimum-cost assignment of every row to a distinct column (rows <= cols; the missing rows of a
// square matrix would be zero-cost padding). Shortest augmenting paths with potentials
// (Kuhn-Munkres in the Jonker-Volgenant form), O(rows^2 * cols). Returns each row's column.
std::vector<size_t> solve_assignment(const std::vector<double>& cost, size_t rows, size_t cols) {
  const double inf = std::numeric_limits<double>::infinity();
  // 1-based; column 0 is a virtual column holding the row being inserted.
  std::vector<double> u(rows + 1, 0.0), v(cols + 1, 0.0), minv(cols + 1);
  std::vector<size_t> row_of(cols + 1, 0), way(cols + 1, 0);
  std::vector<char> used(cols + 1);
  for (size_t i = 1; i <= rows; ++i) {
    row_of[0] = i;
    size_t j0 = 0;
    std::fill(minv.begin(), minv.end(), inf);
    std::fill(used.begin(), used.end(), 0);
    do {
      used[j0] = 1;
      const size_t i0 = row_of[j0];
      const double* row = &cost[(i0 - 1) * cols];
      double delta = inf;
      size_t j1 = 0;
      for (size_t j = 1; j <= cols; ++j) {
        if (used[j]) continue;
        const double reduced = row[j - 1] - u[i0] - v[j];
        if (reduced < minv[j]) {
          minv[j] = reduced;
          way[j] = j0;
        }
        if (minv[j] < delta) {
          delta = minv[j];
          j1 = j;
        }
      }
      for (size_t j = 0; j <= cols; ++j) {
        if (used[j]) {
          u[row_of[j]] += delta;
          v[j] -= delta;
        } else {
          minv[j] -= delta;
        }
      }
      j0 = j1;
    } while (row_of[j0] != 0);
    do {  // flip the augmenting path
      const size_t j1 = way[j0];
      row_of[j0] = row_of[j1];
      j0 = j1;
    } while (j0 != 0);
  }
  std::vector<size_t> col_of_row(rows);
  for (size_t j = 1; j <= cols; ++j) {
    if (row_of[j] != 0) col_of_row[row_of[j] - 1] = j - 1;
  }
  return col_of_row;
}

// Optimal matching of one connected component of the "within tolerance" graph.
void solve_component(const std::vector<Candidate>& edges, double tol, Tally& tally) {
  std::vector<size_t> preds, truths;
  for (const Candidate& e : edges) {
    preds.push_back(e.p);
    truths.push_back(e.t);
  }
  for (auto* ids : {&preds, &truths}) {
    std::sort(ids->begin(), ids->end());
    ids->erase(std::unique(ids->begin(), ids->end()), ids->end());
  }
  const auto slot = [](const std::vector<size_t>& ids, size_t id) {
    return static_cast<size_t>(std::lower_bound(ids.begin(), ids.end(), id) - ids.begin());
  };
  // The smaller side forms the rows so that every row can be assigned.
  const bool pred_rows = preds.size() <= truths.size();
  const size_t rows = std::min(preds.size(), truths.size());
  const size_t cols = std::max(preds.size(), truths.size());
  // Disallowed pairs cost more than the distances of any whole matching (at most rows * tol), so
  // one more allowed pair always outweighs any saving in total distance.
  const double big = 2.0 * static_cast<double>(rows) * tol + 1.0;
  std::vector<double> cost(rows * cols, big);
  for (const Candidate& e : edges) {
    const size_t r = pred_rows ? slot(preds, e.p) : slot(truths, e.t);
    const size_t c = pred_rows ? slot(truths, e.t) : slot(preds, e.p);
    cost[r * cols + c] = e.d;
  }
  const std::vector<size_t> col_of_row = solve_assignment(cost, rows, cols);
  for (size_t r = 0; r < rows; ++r) {
    const double d = cost[r * cols + col_of_row[r]];
    if (d < big) tally.add(d);
  }
}

void match_hungarian(const std::vector<Candidate>& pairs, size_t n_pred, size_t n_truth, double tol,
                     Tally& tally) {
  // Union-find over predictions [0, n_pred) and truths [n_pred, n_pred + n_truth): components
  // are independent, and solving them apart keeps the cubic cost on small matrices.
  std::vector<size_t> parent(n_pred + n_truth);
  std::iota(parent.begin(), parent.end(), size_t{0});
  const auto find = [&parent](size_t v) {
    while (parent[v] != v) v = parent[v] = parent[parent[v]];
    return v;
  };
  for (const Candidate& c : pairs) {
    const size_t a = find(c.p), b = find(n_pred + c.t);
    parent[a] = b;
  }
  std::map<size_t, std::vector<Candidate>> components;  // ordered: deterministic summation
  for (const Candidate& c : pairs) components[find(c.p)].push_back(c);
  for (const auto& component : components) solve_component(component.second, tol, tally);
}

size_t image_size(int width, int height, const char* who) {
  if (width < 0 || height < 0) {
    throw Error(std::string(who) + ": negative image size " + std::to_string(width) + "x" +
                std::to_string(height));
  }
  return static_cast<size_t>(width) * static_cast<size_t>(height);
}

}  // namespace

MatchResult match(const std::vector<Point>& predicted, const std::vector<Point>& truth, double tolerance_nm,
                  Matching method) {
  if (!std::isfinite(tolerance_nm) || tolerance_nm < 0) {
    throw Error("metrics::match: tolerance_nm must be finite and >= 0, got " + std::to_string(tolerance_nm));
  }
  struct FramePoints {
    std::vector<size_t> pred, truth;  // indices into the input lists, ascending
  };
  std::map<int64_t, FramePoints> frames;
  for (size_t i = 0; i < predicted.size(); ++i) frames[predicted[i].frame].pred.push_back(i);
  for (size_t j = 0; j < truth.size(); ++j) frames[truth[j].frame].truth.push_back(j);

  Tally tally;
  for (const auto& entry : frames) {
    const FramePoints& f = entry.second;
    if (f.pred.empty() || f.truth.empty()) continue;
    std::vector<Candidate> pairs = find_candidates(predicted, f.pred, truth, f.truth, tolerance_nm);
    if (method == Matching::Greedy) {
      match_greedy(std::move(pairs), f.pred.size(), f.truth.size(), tally);
    } else {
      match_hungarian(pairs, f.pred.size(), f.truth.size(), tolerance_nm, tally);
    }
  }

  MatchResult r;
  r.tolerance_nm = tolerance_nm;
  r.tp = tally.tp;
  r.fp = predicted.size() - tally.tp;
  r.fn = truth.size() - tally.tp;
  r.jaccard = jaccard_index(static_cast<double>(r.tp), static_cast<double>(r.fp), static_cast<double>(r.fn));
  r.rmse_lateral_nm = r.tp == 0 ? 0.0 : std::sqrt(tally.sum_sq / static_cast<double>(r.tp));
  r.efficiency = efficiency(r.jaccard, r.rmse_lateral_nm);
  return r;
}

Extent extent(const std::vector<Point>& points) {
  Extent e;
  if (points.empty()) return e;
  e.first_frame = e.last_frame = points[0].frame;
  e.x_min = e.x_max = points[0].x_nm;
  e.y_min = e.y_max = points[0].y_nm;
  for (const Point& p : points) {
    e.first_frame = std::min(e.first_frame, p.frame), e.last_frame = std::max(e.last_frame, p.frame);
    e.x_min = std::min(e.x_min, p.x_nm), e.x_max = std::max(e.x_max, p.x_nm);
    e.y_min = std::min(e.y_min, p.y_nm), e.y_max = std::max(e.y_max, p.y_nm);
  }
  return e;
}

namespace {

double fraction_within(const std::vector<Point>& points, const Extent& e, bool frames, double margin_nm) {
  if (points.empty()) return std::numeric_limits<double>::quiet_NaN();
  size_t inside = 0;
  for (const Point& p : points)
    inside += frames ? (p.frame >= e.first_frame && p.frame <= e.last_frame)
                     : (p.x_nm >= e.x_min - margin_nm && p.x_nm <= e.x_max + margin_nm &&
                        p.y_nm >= e.y_min - margin_nm && p.y_nm <= e.y_max + margin_nm);
  return static_cast<double>(inside) / static_cast<double>(points.size());
}

std::string percent(double f) { return std::to_string(static_cast<int>(std::lround(100 * f))) + " %"; }
std::string frames_text(const Extent& e) {  // 1-based, as the CSV files and the log count frames
  return "frames " + std::to_string(e.first_frame + 1) + "-" + std::to_string(e.last_frame + 1);
}
std::string field_text(const Extent& e) {
  auto nm = [](double v) { return std::to_string(static_cast<long long>(std::lround(v))); };
  return "x " + nm(e.x_min) + "-" + nm(e.x_max) + " nm, y " + nm(e.y_min) + "-" + nm(e.y_max) + " nm";
}

}  // namespace

Overlap overlap(const std::vector<Point>& locs, const std::vector<Point>& truth, double margin_nm) {
  Overlap o;
  o.locs = extent(locs), o.truth = extent(truth);
  o.locs_in_truth_frames = fraction_within(locs, o.truth, true, 0);
  o.truth_in_locs_frames = fraction_within(truth, o.locs, true, 0);
  o.locs_in_truth_field = fraction_within(locs, o.truth, false, margin_nm);
  o.truth_in_locs_field = fraction_within(truth, o.locs, false, margin_nm);
  if (locs.empty()) o.warnings.push_back("there are no localizations");
  if (truth.empty()) o.warnings.push_back("the ground truth is empty");
  if (locs.empty() || truth.empty()) return o;
  // NaN never compares below, so only real fractions warn.
  if (o.locs_in_truth_frames < kOverlapWarnBelow)
    o.warnings.push_back("only " + percent(o.locs_in_truth_frames) + " of the localizations (" +
                         frames_text(o.locs) + ") lie in the ground truth's " + frames_text(o.truth));
  if (o.truth_in_locs_frames < kOverlapWarnBelow)
    o.warnings.push_back("only " + percent(o.truth_in_locs_frames) + " of the ground truth (" +
                         frames_text(o.truth) + ") lies in the localizations' " + frames_text(o.locs));
  if (o.locs_in_truth_field < kOverlapWarnBelow)
    o.warnings.push_back("only " + percent(o.locs_in_truth_field) + " of the localizations (" +
                         field_text(o.locs) + ") lie in the ground truth's field (" + field_text(o.truth) +
                         ", with the tolerance around it): a different field or pixel size?");
  if (o.truth_in_locs_field < kOverlapWarnBelow)
    o.warnings.push_back("only " + percent(o.truth_in_locs_field) + " of the ground truth (" +
                         field_text(o.truth) + ") lies in the localizations' field (" + field_text(o.locs) +
                         ", with the tolerance around it): a different field or pixel size?");
  return o;
}

double jaccard_index(double tp, double fp, double fn) {
  const double total = tp + fp + fn;
  return total == 0 ? 1.0 : tp / total;
}

double efficiency(double jaccard, double rmse_nm) {
  // Sage et al. 2019 weigh 1 nm of RMSE like 1 % of Jaccard; in fractions that is RMSE / 100 nm.
  return 1.0 - std::hypot(1.0 - jaccard, rmse_nm / 100.0);
}

std::vector<float> histogram(const std::vector<Point>& points, int width, int height, double pixel_size_nm) {
  const size_t n = image_size(width, height, "metrics::histogram");
  if (!std::isfinite(pixel_size_nm) || pixel_size_nm <= 0) {
    throw Error("metrics::histogram: pixel_size_nm must be > 0, got " + std::to_string(pixel_size_nm));
  }
  std::vector<float> img(n, 0.0f);
  for (const Point& p : points) {
    const double col = std::floor(p.x_nm / pixel_size_nm), row = std::floor(p.y_nm / pixel_size_nm);
    // Range checks in double, before any cast; they also reject NaN.
    if (!(col >= 0 && col < width && row >= 0 && row < height)) continue;
    img[static_cast<size_t>(row) * static_cast<size_t>(width) + static_cast<size_t>(col)] += 1.0f;
  }
  return img;
}

std::vector<float> gaussian_blur(const std::vector<float>& img, int width, int height, double sigma_px) {
  const size_t n = image_size(width, height, "metrics::gaussian_blur");
  if (img.size() != n) {
    throw Error("metrics::gaussian_blur: image has " + std::to_string(img.size()) + " pixels, expected " +
                std::to_string(width) + "x" + std::to_string(height));
  }
  if (!(sigma_px > 0)) return img;
  if (!std::isfinite(sigma_px)) throw Error("metrics::gaussian_blur: sigma_px is not finite");

  const ptrdiff_t radius = static_cast<ptrdiff_t>(std::ceil(4.0 * sigma_px));
  std::vector<double> kernel(static_cast<size_t>(2 * radius + 1));
  for (ptrdiff_t k = -radius; k <= radius; ++k) {
    const double t = static_cast<double>(k) / sigma_px;
    kernel[static_cast<size_t>(k + radius)] = std::exp(-0.5 * t * t);
  }
  const double norm = std::accumulate(kernel.begin(), kernel.end(), 0.0);
  for (double& w : kernel) w /= norm;

  const ptrdiff_t w = width, h = height;
  // Rows first, kept in double; zero padding means taps outside the image are simply skipped.
  std::vector<double> tmp(n, 0.0);
  for (ptrdiff_t y = 0; y < h; ++y) {
    const float* src = &img[static_cast<size_t>(y * w)];
    double* dst = &tmp[static_cast<size_t>(y * w)];
    for (ptrdiff_t x = 0; x < w; ++x) {
      double s = 0;
      for (ptrdiff_t xx = std::max<ptrdiff_t>(0, x - radius); xx <= std::min(w - 1, x + radius); ++xx) {
        s += kernel[static_cast<size_t>(xx - x + radius)] * src[xx];
      }
      dst[x] = s;
    }
  }
  // Then columns, accumulating whole rows to walk memory contiguously.
  std::vector<float> out(n);
  std::vector<double> acc(static_cast<size_t>(w));
  for (ptrdiff_t y = 0; y < h; ++y) {
    std::fill(acc.begin(), acc.end(), 0.0);
    for (ptrdiff_t yy = std::max<ptrdiff_t>(0, y - radius); yy <= std::min(h - 1, y + radius); ++yy) {
      const double k = kernel[static_cast<size_t>(yy - y + radius)];
      const double* src = &tmp[static_cast<size_t>(yy * w)];
      for (ptrdiff_t x = 0; x < w; ++x) acc[static_cast<size_t>(x)] += k * src[x];
    }
    std::transform(acc.begin(), acc.end(), out.begin() + y * w,
                   [](double v) { return static_cast<float>(v); });
  }
  return out;
}

double pearson(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) {
    throw Error("metrics::pearson: sizes differ (" + std::to_string(a.size()) + " vs " +
                std::to_string(b.size()) + ")");
  }
  if (a.empty()) throw Error("metrics::pearson: empty inputs");
  const double n = static_cast<double>(a.size());
  const double mean_a = std::accumulate(a.begin(), a.end(), 0.0) / n;
  const double mean_b = std::accumulate(b.begin(), b.end(), 0.0) / n;
  double saa = 0, sbb = 0, sab = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double da = a[i] - mean_a, db = b[i] - mean_b;
    saa += da * da;
    sbb += db * db;
    sab += da * db;
  }
  if (saa == 0 || sbb == 0) return 0.0;
  // Clamp the rounding excess of perfectly (anti)correlated inputs.
  return std::clamp(sab / (std::sqrt(saa) * std::sqrt(sbb)), -1.0, 1.0);
}

double image_correlation(const std::vector<float>& reconstruction, int width, int height,
                         double pixel_size_nm, const std::vector<Point>& truth, double blur_nm) {
  const size_t n = image_size(width, height, "metrics::image_correlation");
  if (reconstruction.size() != n) {
    throw Error("metrics::image_correlation: reconstruction has " + std::to_string(reconstruction.size()) +
                " pixels, expected " + std::to_string(width) + "x" + std::to_string(height));
  }
  const std::vector<float> reference = histogram(truth, width, height, pixel_size_nm);
  const double sigma_px = blur_nm / pixel_size_nm;
  return pearson(gaussian_blur(reconstruction, width, height, sigma_px),
                 gaussian_blur(reference, width, height, sigma_px));
}

}  // namespace dsir::metrics
