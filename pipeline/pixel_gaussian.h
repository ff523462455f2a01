#pragma once
// The mass of a 1-D Gaussian in whole pixels, shared by every stage that paints pixel-integrated
// Gaussians (the training labels, the detector's map, the reconstruction's rendering).
#include <cmath>
#include <cstdint>
#include <vector>

namespace dsir {

// The masses of a unit 1-D Gaussian (centre, sigma; pixels) in pixels [i, i + 1), i = first ..
// first + count - 1, into `out` (resized): one erf per pixel edge, each shared by its two pixels.
inline void pixel_gaussian_masses(double centre, double sigma, int64_t first, int64_t count,
                                  std::vector<double>& out) {
  const double to_erf = 1 / (std::sqrt(2.0) * sigma);
  out.resize(static_cast<size_t>(count));
  double below = std::erf((static_cast<double>(first) - centre) * to_erf);
  for (int64_t k = 0; k < count; ++k) {
    const double above = std::erf((static_cast<double>(first + k) + 1 - centre) * to_erf);
    out[static_cast<size_t>(k)] = 0.5 * (above - below);
    below = above;
  }
}

}  // namespace dsir
