#pragma once
// What reduce adds to the localizations before it exports them (pipeline/csv.h writes
// ThunderSTORM's CSV, pipeline/formats/picasso_file.h picasso's file): each one's lateral
// uncertainty, and what becomes of those whose photometry failed.
#include <cstddef>
#include <string>
#include <vector>

#include "pipeline/csv.h"

namespace dsir {

// Lateral localization precision (Mortensen et al. 2010, as picasso computes lpx/lpy), in the
// units of `sigma`: photons N, PSF sigma s, background b photons per pixel (pixel size 1 in those
// units), doubled variance with EM gain. NaN when N <= 0.
double localization_precision(double photons, double sigma, double background, bool em_gain);

// Sets every localization's uncertainty_nm, the one figure the CSV ("uncertainty [nm]"), picasso's
// lpx/lpy and the Gaussian rendering use: Mortensen's precision from its photometry on the camera's
// pixels (`raw_pixel_size_nm`) where the fit passed (photometry_flags 0); the median of those for
// the others (failed or not measured: flagged, so the figure is a stand-in); NaN for all when no
// fit passed.
void assign_uncertainty(std::vector<Emitter>& locs, double raw_pixel_size_nm, bool em_gain);

enum class FailedPhotometry { Flag, Drop };
FailedPhotometry failed_photometry_from_name(const std::string& name);  // "flag" or "drop"

// Localizations whose photometry failed, by cause (one may have several).
struct PhotometryFailures {
  size_t failed = 0, of = 0;
  size_t no_fit = 0, nonpositive_photons = 0, negative_background = 0, sigma_at_bound = 0;
  size_t not_measured = 0;      // no flags (shards of a dsir before them): not checked
  std::string summary() const;  // "N of M localizations failed photometry (causes)"
};
PhotometryFailures count_photometry_failures(const std::vector<Emitter>& locs);

// Under Drop, removes the localizations whose photometry failed (order kept); under Flag, nothing
// (their photometry_flags say it). Returns the count before.
PhotometryFailures apply_failed_photometry(std::vector<Emitter>& locs, FailedPhotometry policy);

}  // namespace dsir
