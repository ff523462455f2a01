#pragma once
// Camera and data properties from an acquisition alone (no ground truth): base level, ADU per
// photon, EM register on/off, read noise, background, PSF width and emitter density, written as
// the simulator's config keys so simulated training data matches the camera (README.md).
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "stages/simulate/simulator.h"

namespace dsir::calibrate {

// Frames in memory, all the same size. `sources[i]` names the file frame i came from (errors).
struct Stack {
  int width = 0, height = 0;
  double pixel_size_nm = 0;  // 0: unknown
  std::vector<std::vector<float>> frames;
  std::vector<std::string> sources;
};

// TIFF stacks or raw.h5 files (by extension .h5/.hdf5), concatenated; at most `max_frames` of
// their frames (0: all), evenly spaced over all the files end to end, so that an archive is
// sampled rather than loaded. InputError naming the file when one is unreadable or its frames
// differ in size from the first file's.
Stack read_stacks(const std::vector<std::string>& files, uint64_t max_frames = 0);

// One isolated spot fitted with a pixel-integrated 2-D Gaussian plus a constant (least squares).
struct SpotFit {
  int frame = 0;
  double x = 0, y = 0;  // pixels, pixel (r, c) covers [c, c+1) x [r, r+1)
  double sigma_px = 0;
  double total_adu = 0;   // the Gaussian's integral, ADU
  double offset_adu = 0;  // the constant under it
  int neighbours = 0;     // other maxima fitted with it in its window (crowded data)
  bool used = false;      // passed the width and misfit cuts: fed the PSF width (and the line)
};

// The variance of one bin of spot pixels (by fitted mean) with the fit's pull on the residuals
// undone (calibrate.cpp, Sample), or of the background pixels.
struct MomentBin {
  double mean_adu = 0, kappa2 = 0;
  double count = 0;
};

struct Calibration {
  // Background pixels (sparse: outside every detected spot; dense: darkest neighbours), pooled.
  double background_mean_adu = 0, background_kappa2 = 0, background_kappa3 = 0;
  uint64_t background_samples = 0;
  // Sparse: spot pixels by fitted mean, bins[0] the background; dense: the fine-detail bins.
  std::vector<MomentBin> bins;
  double kappa2_slope = 0, kappa2_intercept = 0;  // kappa2 = slope * mean + intercept (= F² g)
  // Sparse: the slope is the mean of the spots' and the finest detail's; dense: the detail's.
  double spot_slope = 0, detail_slope = 0, spot_slope_se = 0, detail_slope_se = 0;
  // (background κ3 / κ2) / kappa2_slope: 1.5 behind an EM register, 1 without (less with read noise)
  double skew_ratio = 0;
  bool em = false;
  double adu_per_photon = 0;  // g, quantum efficiency folded in
  double base_level = 0;      // ADU
  double read_noise_adu = 0;
  double background_photons = 0;
  std::vector<SpotFit> spots;   // spots that were fitted (isolated, or crowded with neighbours)
  size_t isolated_windows = 0;  // maxima with no other within 10 px
  bool dense = false;           // too few of those: the dense method (README)
  double sigma_nm = 0;          // median of the fits; 0 when pixel_size_nm is unknown
  double sigma_px = 0;
  double detections_per_frame = 0;
  double merge_area_px2 = 0;   // sparse: around an emitter, where a second one merges with it
  double density_per_um2 = 0;  // 0 when pixel_size_nm is unknown
  double brightness_cv2 = 0;   // dense: the emitters' brightness spread (CV²) the density assumes
  int frames = 0, width = 0, height = 0;
  double pixel_size_nm = 0;
  sim::Camera camera;  // the simulator camera with these properties
};

// Sparse data (enough isolated spots) and dense data (overlapping spots) by different methods
// (README.md). InputError naming the stack's file when it has fewer than 2 frames, constant pixels,
// too few spots to fit, or (dense) too few that fit as single emitters.
Calibration calibrate(const Stack& stack);

// The simulator's config keys the calibration sets (camera.*, and with a known pixel size
// camera.pixel_size_nm, psf.fwhm_nm, simulate.*.density), as (key, YAML value), grouped by section.
std::vector<std::pair<std::string, std::string>> calibration_keys(const Calibration& c);
// The same keys as a YAML config, with the fit's figures as comments.
std::string calibration_yaml(const Calibration& c, const std::string& source);

// Mean–variance plot with the fitted line and a histogram of the spot widths, side by side.
void save_calibration_png(const std::string& path, const Calibration& c);

}  // namespace dsir::calibrate
