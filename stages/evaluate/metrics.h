#pragma once
// Localization and image metrics (Sage et al. 2019, "Super-resolution fight club").
#include <cstdint>
#include <string>
#include <vector>

namespace dsir::metrics {

struct Point {
  int64_t frame = 0;  // 0-based
  double x_nm = 0, y_nm = 0;
};

enum class Matching { Greedy, Hungarian };

struct MatchResult {
  double tolerance_nm = 0;
  uint64_t tp = 0, fp = 0, fn = 0;
  double jaccard = 0;          // TP / (TP + FP + FN); 1 when all are 0 (both sets empty agree)
  double rmse_lateral_nm = 0;  // sqrt(sum(dx^2 + dy^2) / TP); 0 when TP == 0
  double efficiency = 0;       // 1 - sqrt((1 - JI)^2 + (RMSE / 100 nm)^2)
};

// Matches predictions to ground truth frame by frame within `tolerance_nm` (pairs farther apart
// never match). Greedy: repeatedly take the globally closest remaining pair (as DECODE).
// Hungarian: the assignment maximising the number of matches, then minimising total distance.
MatchResult match(const std::vector<Point>& predicted, const std::vector<Point>& truth, double tolerance_nm,
                  Matching method);

double efficiency(double jaccard, double rmse_nm);
// TP / (TP + FP + FN); 1 when all are 0 (both sets empty agree). Counts summed over ranks are
// doubles (MPI sums), hence the type.
double jaccard_index(double tp, double fp, double fn);

// Frames and field a point set covers (0-based frames, nm).
struct Extent {
  int64_t first_frame = 0, last_frame = -1;
  double x_min = 0, x_max = 0, y_min = 0, y_max = 0;
  bool empty() const { return last_frame < first_frame; }
};
Extent extent(const std::vector<Point>& points);

// How much of the localizations lies where the ground truth is, and the reverse: fractions of
// each set inside the other's frame range and inside its field (bounding box grown by
// `margin_nm`, the largest matching tolerance). A wrong file, a cut-out ground truth or a wrong
// pixel size shows here; otherwise it would read only as a poor score. NaN where a set is empty.
struct Overlap {
  Extent locs, truth;
  double locs_in_truth_frames = 0, truth_in_locs_frames = 0;
  double locs_in_truth_field = 0, truth_in_locs_field = 0;
  std::vector<std::string> warnings;  // each a sentence; empty when both cover each other
};
// Below this fraction (of either set, frames or field) evaluate warns.
constexpr double kOverlapWarnBelow = 0.8;
Overlap overlap(const std::vector<Point>& locs, const std::vector<Point>& truth, double margin_nm);

// 2-D histogram of points (all frames) on a width x height grid of `pixel_size_nm` pixels
// (x along columns); points outside are ignored.
std::vector<float> histogram(const std::vector<Point>& points, int width, int height, double pixel_size_nm);

// Separable Gaussian blur, sigma in pixels, kernel truncated at 4 sigma, zero padding.
std::vector<float> gaussian_blur(const std::vector<float>& img, int width, int height, double sigma_px);

// Pearson correlation; 0 when either input is constant.
double pearson(const std::vector<float>& a, const std::vector<float>& b);

// Pearson correlation between a reconstruction and the ground-truth histogram at the same pixel
// size, both blurred by a Gaussian of `blur_nm` (sigma).
double image_correlation(const std::vector<float>& reconstruction, int width, int height,
                         double pixel_size_nm, const std::vector<Point>& truth, double blur_nm = 20);

}  // namespace dsir::metrics
