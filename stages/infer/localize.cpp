#include "stages/infer/localize.h"

#include <cmath>

namespace dsir {

std::vector<Emitter> localize(const float* map, int height, int width, double pixel_size_nm, int64_t frame,
                              const LocalizeOptions& opt) {
  // Smoothing merges the checkerboard of transposed convolutions into one peak per emitter.
  const float k[3] = {0.27406862f, 0.45186276f, 0.27406862f};  // Gaussian sigma = 1 px, normalised
  const size_t n = static_cast<size_t>(height) * static_cast<size_t>(width);
  std::vector<float> tmp(n, 0.0f), smooth(n, 0.0f);
  auto at = [width](int r, int c) {
    return static_cast<size_t>(r) * static_cast<size_t>(width) + static_cast<size_t>(c);
  };
  for (int r = 0; r < height; ++r)
    for (int c = 0; c < width; ++c) {
      float s = 0;
      for (int d = -1; d <= 1; ++d)
        if (c + d >= 0 && c + d < width) s += k[d + 1] * map[at(r, c + d)];
      tmp[at(r, c)] = s;
    }
  for (int r = 0; r < height; ++r)
    for (int c = 0; c < width; ++c) {
      float s = 0;
      for (int d = -1; d <= 1; ++d)
        if (r + d >= 0 && r + d < height) s += k[d + 1] * tmp[at(r + d, c)];
      smooth[at(r, c)] = s;
    }

  std::vector<Emitter> out;
  const int R = opt.radius;
  for (int r = 0; r < height; ++r)
    for (int c = 0; c < width; ++c) {
      const float v = smooth[at(r, c)];
      if (v <= 0) continue;
      // Local maximum in the window; ties go to the first pixel in raster order.
      bool is_max = true;
      for (int dr = -R; dr <= R && is_max; ++dr)
        for (int dc = -R; dc <= R; ++dc) {
          const int rr = r + dr, cc = c + dc;
          if ((dr == 0 && dc == 0) || rr < 0 || cc < 0 || rr >= height || cc >= width) continue;
          const float u = smooth[at(rr, cc)];
          const bool before = dr < 0 || (dr == 0 && dc < 0);
          if (u > v || (before && u == v)) {
            is_max = false;
            break;
          }
        }
      if (!is_max) continue;
      double mass = 0, sx = 0, sy = 0;
      for (int rr = std::max(0, r - R); rr <= std::min(height - 1, r + R); ++rr)
        for (int cc = std::max(0, c - R); cc <= std::min(width - 1, c + R); ++cc) {
          const double m = std::max(0.0f, map[at(rr, cc)]);
          mass += m;
          sx += m * (cc + 0.5);
          sy += m * (rr + 0.5);
        }
      if (mass < opt.threshold || mass <= 0) continue;
      Emitter e;
      e.frame = frame;
      e.x_nm = sx / mass * pixel_size_nm;
      e.y_nm = sy / mass * pixel_size_nm;
      e.confidence = mass;
      out.push_back(e);
    }
  return out;
}

}  // namespace dsir
