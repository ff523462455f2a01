#pragma once
// Finds the camera that explains real frames, given the expected photon image of each pixel
// (rendered from the frames' ground truth): how docs/simulator.md's fitted camera of
// ThunderSTORM's demo data was found, and how to match the simulator to other ground-truthed data.
#include <cstdint>
#include <limits>
#include <vector>

#include "stages/simulate/simulator.h"

namespace dsir::sim {

struct CameraFitOptions {
  // Background photons per pixel when known (ThunderSTORM's ground truth: bkgstd^2);
  // NaN: estimated from the residual variance.
  double background_photons = std::numeric_limits<double>::quiet_NaN();
};

struct CameraFit {
  // 1. Least squares observed = a * expected + c.
  double adu_per_photon = 0;  // a
  double intercept_adu = 0;   // c = base level + a * background
  double pearson = 0;
  // 2. Least squares of the squared residuals r^2 = s * expected + t: each expected photon adds
  //    F^2 a^2 to the variance, with F^2 = 1 for Poisson and 2 behind an EM register.
  double excess_noise = 0;              // s / a^2
  bool em_gain = false;                 // excess_noise closer to 2 than to 1
  double background_photons = 0;        // given, or (t - 1/12) / (F^2 a^2) with the chosen F^2
  double background_from_variance = 0;  // that estimate, also when the background was given
  double base_level = 0;                // c - a * background
  // A camera with these properties: ADU per photon = em_gain / e_per_adu (EM) or 1 / e_per_adu.
  // Only that ratio is identifiable (Gamma(n, g) / e = Gamma(n, g / e)), so e_per_adu is 1 unless
  // the EM gain would fall below 1; quantum efficiency 1 (it folds into a and the background).
  Camera camera;
  // 3. Normalised residual z = (observed - mean) / sqrt(model variance) under `camera`: mean 0
  //    and variance 1 when the camera explains the frames.
  double z_mean = 0, z_variance = 0;
  uint64_t pixels = 0;
};

// Sets cam.e_per_adu and cam.em_gain for `adu_per_photon` ADU per photoelectron. Behind an EM
// register only the ratio is identifiable (Gamma(n, g) / e = Gamma(n, g / e)), so e_per_adu is 1
// unless the EM gain would fall below 1; without one, e_per_adu = 1 / adu_per_photon.
void set_gain(Camera& cam, double adu_per_photon, bool em);

// `expected` (photons, background excluded) and `observed` (ADU) pixel by pixel. Error when the
// sizes differ or the expected image is constant (nothing to fit).
CameraFit fit_camera(const std::vector<double>& expected, const std::vector<double>& observed,
                     const CameraFitOptions& options = {});

}  // namespace dsir::sim
