#pragma once
// Photometry of localizations on the raw camera frame: the network gives positions and a
// confidence, not photons. At each position a symmetric Gaussian PSF (integrated over pixels)
// plus a flat background is fitted by least squares, centre fixed, as the columns ThunderSTORM
// and picasso expect (intensity, sigma, background).
#include <string>
#include <vector>

#include "pipeline/csv.h"

namespace dsir {

// ADU -> photons as the simulator and picasso model the camera:
// photons = (ADU - base_level) * e_per_adu / max(1, em_gain) / quantum_efficiency.
struct CameraCalibration {
  double base_level = 0, e_per_adu = 1, em_gain = 0, quantum_efficiency = 1;
  bool known = false;  // false: no calibration in the file, "photons" are ADU above zero
  double to_photons(double adu) const;
  bool em() const { return em_gain >= 1; }
  // From raw.h5's `camera` attribute (JSON of the camera.* keys); `where` names it in errors.
  static CameraCalibration from_json(const std::string& json, const std::string& where);
};

struct SpotFit {
  bool ok = false;              // false when the window is too small or the fit is degenerate
  double photons = 0;           // total photons of the PSF
  double sigma_px = 0;          // PSF sigma, camera pixels
  double background = 0;        // photons per pixel
  double background_std = 0;    // RMS residual away from the spot, photons per pixel
  bool sigma_at_bound = false;  // the best sigma is an end of the search interval: no minimum inside
};

// Search interval of the PSF sigma (camera pixels).
constexpr double kFitSigmaMinPx = 0.3, kFitSigmaMaxPx = 3.0;

// Why `fit`'s numbers are not to be trusted (photometry_flag bits of pipeline/csv.h; 0 = passed):
// no fit, photons <= 0, background < 0, sigma at a search bound.
int photometry_flags(const SpotFit& fit);

// Fits photons * PSF(sigma) + background to the (2 radius + 1)^2 window of `photons_frame`
// (height x width, photons) around (u, v) in camera pixels (pixel k spans [k, k+1)); the window
// is clipped at the frame's edges. sigma is searched in [kFitSigmaMinPx, kFitSigmaMaxPx].
SpotFit fit_spot(const float* photons_frame, int height, int width, double u, double v, int radius = 3);

// Fills photons, sigma_nm, offset (background) and bkgstd of `locs` (localizations of this one
// frame, positions in nm) from the raw frame in ADU, and photometry_flags. Fits that fail leave NaN
// (flag no_fit); implausible fits keep their numbers, flagged.
void measure_photometry(const float* raw_adu, int height, int width, double raw_pixel_size_nm,
                        const CameraCalibration& camera, std::vector<Emitter>::iterator begin,
                        std::vector<Emitter>::iterator end);

}  // namespace dsir
