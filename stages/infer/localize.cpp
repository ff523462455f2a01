#include "stages/infer/localize.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace dsir {

std::vector<Peak> find_peaks(const float* map, int height, int width, double pixel_size_nm, double min_mass,
                             int radius, int spread_radius) {
  // Smoothing merges the checkerboard of transposed convolutions into one peak per emitter.
  const float k[3] = {0.27406862f, 0.45186276f, 0.27406862f};  // Gaussian sigma = 1 px, normalised
  const size_t n = static_cast<size_t>(height) * static_cast<size_t>(width);
  // Scratch reused between frames (every element is written before it is read).
  static thread_local std::vector<float> tmp, smooth, window_max;
  tmp.resize(n);
  smooth.resize(n);
  window_max.resize(n);
  auto at = [width](int r, int c) {
    return static_cast<size_t>(r) * static_cast<size_t>(width) + static_cast<size_t>(c);
  };
  // Separable smoothing, each sum in the same order as k[0], k[1], k[2] (the edges drop terms);
  // the loops over columns have no branches, so they vectorise.
  for (int r = 0; r < height; ++r) {
    const float* m = map + at(r, 0);
    float* t = tmp.data() + at(r, 0);
    {
      float s = 0;
      s += k[1] * m[0];
      if (width > 1) s += k[2] * m[1];
      t[0] = s;
    }
    for (int c = 1; c + 1 < width; ++c) {
      float s = 0;
      s += k[0] * m[c - 1];
      s += k[1] * m[c];
      s += k[2] * m[c + 1];
      t[c] = s;
    }
    if (width > 1) {
      float s = 0;
      s += k[0] * m[width - 2];
      s += k[1] * m[width - 1];
      t[width - 1] = s;
    }
  }
  for (int r = 0; r < height; ++r) {
    const float* up = r > 0 ? tmp.data() + at(r - 1, 0) : nullptr;
    const float* mid = tmp.data() + at(r, 0);
    const float* down = r + 1 < height ? tmp.data() + at(r + 1, 0) : nullptr;
    float* out = smooth.data() + at(r, 0);
    if (up != nullptr && down != nullptr) {
      for (int c = 0; c < width; ++c) {
        float s = 0;
        s += k[0] * up[c];
        s += k[1] * mid[c];
        s += k[2] * down[c];
        out[c] = s;
      }
    } else {
      for (int c = 0; c < width; ++c) {
        float s = 0;
        if (up != nullptr) s += k[0] * up[c];
        s += k[1] * mid[c];
        if (down != nullptr) s += k[2] * down[c];
        out[c] = s;
      }
    }
  }

  // The window maximum of the smoothed map (separable): a pixel below it cannot be a peak, so the
  // exact test with its tie rule below runs only where the pixel equals it.
  const int R = radius;
  for (int r = 0; r < height; ++r) {
    const float* v = smooth.data() + at(r, 0);
    float* t = tmp.data() + at(r, 0);
    std::copy(v, v + width, t);
    for (int d = 1; d <= R && d < width; ++d) {
      for (int c = d; c < width; ++c) t[c] = std::max(t[c], v[c - d]);
      for (int c = 0; c + d < width; ++c) t[c] = std::max(t[c], v[c + d]);
    }
  }
  for (int r = 0; r < height; ++r) {
    float* w = window_max.data() + at(r, 0);
    std::copy(tmp.data() + at(r, 0), tmp.data() + at(r, 0) + width, w);
    for (int rr = std::max(0, r - R); rr <= std::min(height - 1, r + R); ++rr) {
      const float* t = tmp.data() + at(rr, 0);
      for (int c = 0; c < width; ++c) w[c] = std::max(w[c], t[c]);
    }
  }

  // Plain pointers from here on: the thread_local vectors would be looked up on every access.
  const float* sm = smooth.data();
  const float* peak_bound = window_max.data();
  std::vector<Peak> out;
  for (int r = 0; r < height; ++r)
    for (int c = 0; c < width; ++c) {
      const float v = sm[at(r, c)];
      if (v <= 0 || v < peak_bound[at(r, c)]) continue;
      // Local maximum in the window; ties go to the first pixel in raster order.
      bool is_max = true;
      for (int dr = -R; dr <= R && is_max; ++dr)
        for (int dc = -R; dc <= R; ++dc) {
          const int rr = r + dr, cc = c + dc;
          if ((dr == 0 && dc == 0) || rr < 0 || cc < 0 || rr >= height || cc >= width) continue;
          const float u = sm[at(rr, cc)];
          const bool before = dr < 0 || (dr == 0 && dc < 0);
          if (u > v || (before && u == v)) {
            is_max = false;
            break;
          }
        }
      if (!is_max) continue;
      // The mass from the map itself; the centroid from the map filtered by [1 2 1]/4 along both
      // axes, which damps the transposed convolution's checkerboard (zero response at the
      // Nyquist frequency) and keeps a symmetric spot's centre. On the map itself the heavier
      // odd columns drew positions to them: in the quick-start run a histogram of the
      // localizations had 28 % more in odd columns than in even ones; now 2 % (docs/accuracy.md).
      auto positive = [&](int rr, int cc) -> double {
        return rr < 0 || cc < 0 || rr >= height || cc >= width ? 0.0 : std::max(0.0f, map[at(rr, cc)]);
      };
      // The [1 2 1]-filtered map at a pixel (0 outside the map).
      auto level_at = [&](int rr, int cc) {
        double level = 0;
        for (int dr = -1; dr <= 1; ++dr)
          for (int dc = -1; dc <= 1; ++dc)
            level += (dr == 0 ? 2 : 1) * (dc == 0 ? 2 : 1) * positive(rr + dr, cc + dc);
        return level;
      };
      double mass = 0, level_sum = 0, sx = 0, sy = 0;
      for (int rr = std::max(0, r - R); rr <= std::min(height - 1, r + R); ++rr)
        for (int cc = std::max(0, c - R); cc <= std::min(width - 1, c + R); ++cc) {
          mass += positive(rr, cc);
          const double level = level_at(rr, cc);
          level_sum += level;
          sx += level * (cc + 0.5);
          sy += level * (rr + 0.5);
        }
      if (mass < min_mass || mass <= 0 || level_sum <= 0) continue;
      // The spread: second moments of the filtered map over the wider window, about its own
      // centroid (offsets from the peak's pixel keep the sums small).
      const int S = spread_radius;
      double w = 0, mx = 0, my = 0, mxx = 0, myy = 0, mxy = 0;
      for (int rr = std::max(0, r - S); rr <= std::min(height - 1, r + S); ++rr)
        for (int cc = std::max(0, c - S); cc <= std::min(width - 1, c + S); ++cc) {
          const double level = level_at(rr, cc), dx = cc - c, dy = rr - r;
          w += level;
          mx += level * dx;
          my += level * dy;
          mxx += level * dx * dx;
          myy += level * dy * dy;
          mxy += level * dx * dy;
        }
      mx /= w;
      my /= w;
      const double vxx = mxx / w - mx * mx, vyy = myy / w - my * my, vxy = mxy / w - mx * my;
      // Eigen-decomposition of the 2x2 covariance: the long axis, and the spreads' difference.
      const double half_diff = 0.5 * (vxx - vyy), root = std::sqrt(half_diff * half_diff + vxy * vxy);
      const double angle = 0.5 * std::atan2(2 * vxy, vxx - vyy);
      Peak p;
      p.x_nm = sx / level_sum * pixel_size_nm;
      p.y_nm = sy / level_sum * pixel_size_nm;
      p.mass = mass;
      p.axis_x = std::cos(angle);
      p.axis_y = std::sin(angle);
      p.excess_variance_nm2 = 2 * root * pixel_size_nm * pixel_size_nm;
      out.push_back(p);
    }
  return out;
}

void localizations_of_peaks(const std::vector<Peak>& peaks, int64_t frame, const LocalizeOptions& opt,
                            std::vector<Emitter>& out) {
  for (const Peak& p : peaks) {
    if (p.mass < opt.threshold) continue;
    const int count = opt.emitter_mass > 0
                          ? static_cast<int>(std::clamp(std::lround(p.mass / opt.emitter_mass), 1L,
                                                        static_cast<long>(kMaxEmittersPerPeak)))
                          : 1;
    // `count` points evenly spaced by `step` have variance step² (count² - 1) / 12 along the axis.
    const double step = count > 1 ? std::sqrt(12 * p.excess_variance_nm2 / (count * count - 1)) : 0.0;
    for (int i = 0; i < count; ++i) {
      const double along = (i - 0.5 * (count - 1)) * step;
      Emitter e;
      e.frame = frame;
      e.x_nm = p.x_nm + along * p.axis_x;
      e.y_nm = p.y_nm + along * p.axis_y;
      e.confidence = p.mass / count;
      out.push_back(e);
    }
  }
}

std::vector<Emitter> localize(const float* map, int height, int width, double pixel_size_nm, int64_t frame,
                              const LocalizeOptions& options) {
  std::vector<Emitter> out;
  localizations_of_peaks(
      find_peaks(map, height, width, pixel_size_nm, options.threshold, options.radius, options.spread_radius),
      frame, options, out);
  return out;
}

}  // namespace dsir
