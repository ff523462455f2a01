#pragma once
// Localizations from one frame's predicted emitter map (DSIR gives images only).
#include <vector>

#include "pipeline/csv.h"

namespace dsir {

// For a model without a threshold of its own (infer.threshold: auto; stages/train/threshold.h).
constexpr double kDefaultLocalizeThreshold = 0.3;

// A peak of crowded emitters holds more than one emitter's mass (two emitters closer than the
// network resolves make one peak); it gives one localization per emitter it holds, at most this many.
constexpr int kMaxEmittersPerPeak = 4;

struct LocalizeOptions {
  double threshold =
      kDefaultLocalizeThreshold;  // minimum emitter mass (prediction / label_scale in the window)
  // One emitter's mass in the window: a peak of mass M gives max(1, round(M / emitter_mass))
  // localizations (at most kMaxEmittersPerPeak) spread along its long axis; 0: one per peak.
  double emitter_mass = 0;
  int radius = 2;  // window half-width in upscaled pixels (5x5 at radius 2)
  // Half-width of the window whose spread places a split peak's localizations (11x11: 137 nm at
  // 12.5 nm pixels). The 5x5 window cuts off emitters 50 nm apart and placed the localizations a
  // third too close; on dense filaments JI@50 rose with this window up to 11x11 (docs/accuracy.md).
  int spread_radius = 5;
};

// One local maximum of the map: the window's centroid and mass, and the spread of the wider window
// (spread_radius) along its long axis beyond its spread across it (what emitters side by side add
// to one emitter's width).
struct Peak {
  double x_nm = 0, y_nm = 0, mass = 0;
  double axis_x = 1, axis_y = 0;  // the long axis, a unit vector
  double excess_variance_nm2 = 0;
};

// `map` is height x width in emitter units (prediction / label_scale) on pixels of
// `pixel_size_nm`. Peaks are local maxima of the map smoothed by a 1-pixel Gaussian; each gives
// the centroid in the window of the map filtered by [1 2 1]/4 along rows and columns (sub-pixel
// position, free of the checkerboard), the window's mass of the map (confidence ~ expected number
// of emitters), and the second moments of the filtered map in the (2 spread_radius + 1)² window.
// Peaks lighter than `min_mass` are left out. Pixel k spans [k, k+1) x pixel_size_nm.
std::vector<Peak> find_peaks(const float* map, int height, int width, double pixel_size_nm, double min_mass,
                             int radius, int spread_radius);

// The localizations of the peaks that reach options.threshold, appended to `out`: one per emitter
// a peak holds (LocalizeOptions::emitter_mass), evenly spaced along its long axis so that their
// spread is the peak's excess variance, each with confidence mass / count.
void localizations_of_peaks(const std::vector<Peak>& peaks, int64_t frame, const LocalizeOptions& options,
                            std::vector<Emitter>& out);

// find_peaks then localizations_of_peaks.
std::vector<Emitter> localize(const float* map, int height, int width, double pixel_size_nm, int64_t frame,
                              const LocalizeOptions& options);

}  // namespace dsir
