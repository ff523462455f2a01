#pragma once
// Super-resolved images rendered from localizations (reduce.render), as an alternative to the
// network's summed maps: a localization is a point, so the transposed convolution's checkerboard
// in the maps does not carry over.
#include <string>
#include <vector>

#include "pipeline/csv.h"

namespace dsir {

enum class RenderMode { Sum, Histogram, Gaussian };

// "sum", "histogram", "gaussian" -> mode; ConfigError-free: std::invalid_argument otherwise.
RenderMode render_mode_from_name(const std::string& name);

struct RenderGrid {
  int width = 0, height = 0;  // pixels
  double pixel_size_nm = 0;   // pixel k spans [k, k+1) x pixel_size_nm
};

// Localizations counted per pixel (row-major height x width); those outside the grid or not
// finite are left out.
std::vector<float> render_histogram(const std::vector<Emitter>& locs, const RenderGrid& grid);

// Each localization a 2-D Gaussian of unit mass and standard deviation sigma_nm[i] (nm),
// integrated over each pixel (differences of erf, so a point's mass does not depend on where it
// falls within a pixel: no grid pattern), cut at 4 sigma. sigma_nm.size() == locs.size().
std::vector<float> render_gaussian(const std::vector<Emitter>& locs, const std::vector<double>& sigma_nm,
                                   const RenderGrid& grid);

}  // namespace dsir
