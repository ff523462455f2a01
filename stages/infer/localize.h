#pragma once
// Localizations from one frame's predicted emitter map (DSIR gives images only).
#include <vector>

#include "pipeline/csv.h"

namespace dsir {

// For a model without a threshold of its own (infer.threshold: auto; stages/train/threshold.h).
constexpr double kDefaultLocalizeThreshold = 0.3;

struct LocalizeOptions {
  double threshold =
      kDefaultLocalizeThreshold;  // minimum emitter mass (prediction / label_scale in the window)
  int radius = 2;                 // window half-width in upscaled pixels (5x5 at radius 2)
};

// `map` is height x width in emitter units (prediction / label_scale) on pixels of
// `pixel_size_nm`. Peaks are local maxima of the map smoothed by a 1-pixel Gaussian; each gives
// the centroid in the window of the map filtered by [1 2 1]/4 along rows and columns (sub-pixel
// position, free of the checkerboard) and the window's mass of the map (confidence ~ expected
// number of emitters). Pixel k spans [k, k+1) x pixel_size_nm.
std::vector<Emitter> localize(const float* map, int height, int width, double pixel_size_nm, int64_t frame,
                              const LocalizeOptions& options);

}  // namespace dsir
