#include "stages/reduce/render.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "pipeline/pixel_gaussian.h"

namespace dsir {

RenderMode render_mode_from_name(const std::string& name) {
  if (name == "sum") return RenderMode::Sum;
  if (name == "histogram") return RenderMode::Histogram;
  if (name == "gaussian") return RenderMode::Gaussian;
  throw std::invalid_argument("unknown render mode '" + name + "' (sum, histogram or gaussian)");
}

std::vector<float> render_histogram(const std::vector<Emitter>& locs, const RenderGrid& grid) {
  std::vector<float> image(static_cast<size_t>(grid.width) * grid.height, 0.0f);
  for (const Emitter& e : locs) {
    const double col = std::floor(e.x_nm / grid.pixel_size_nm), row = std::floor(e.y_nm / grid.pixel_size_nm);
    if (!(col >= 0 && col < grid.width && row >= 0 && row < grid.height)) continue;  // also NaN
    image[static_cast<size_t>(row) * grid.width + static_cast<size_t>(col)] += 1.0f;
  }
  return image;
}

std::vector<float> render_gaussian(const std::vector<Emitter>& locs, const std::vector<double>& sigma_nm,
                                   const RenderGrid& grid) {
  if (sigma_nm.size() != locs.size())
    throw std::invalid_argument("render_gaussian: one sigma per localization");
  // Accumulated in double: a long acquisition adds millions of small weights to a pixel.
  std::vector<double> sum(static_cast<size_t>(grid.width) * grid.height, 0.0);
  std::vector<double> wx, wy;
  for (size_t i = 0; i < locs.size(); ++i) {
    const double x = locs[i].x_nm / grid.pixel_size_nm, y = locs[i].y_nm / grid.pixel_size_nm;
    const double s = sigma_nm[i] / grid.pixel_size_nm;
    if (!std::isfinite(x) || !std::isfinite(y) || !(s > 0) || !std::isfinite(s)) continue;
    const int x0 = std::max(0, static_cast<int>(std::floor(x - 4 * s)));
    const int x1 = std::min(grid.width, static_cast<int>(std::floor(x + 4 * s)) + 1);
    const int y0 = std::max(0, static_cast<int>(std::floor(y - 4 * s)));
    const int y1 = std::min(grid.height, static_cast<int>(std::floor(y + 4 * s)) + 1);
    if (x0 >= x1 || y0 >= y1) continue;  // entirely outside the grid
    pixel_gaussian_masses(x, s, x0, x1 - x0, wx);
    pixel_gaussian_masses(y, s, y0, y1 - y0, wy);
    for (int r = y0; r < y1; ++r) {
      double* line = &sum[static_cast<size_t>(r) * grid.width];
      const double wr = wy[static_cast<size_t>(r - y0)];
      for (int c = x0; c < x1; ++c) line[c] += wr * wx[static_cast<size_t>(c - x0)];
    }
  }
  return std::vector<float>(sum.begin(), sum.end());
}

}  // namespace dsir
