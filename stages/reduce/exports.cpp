#include "stages/reduce/exports.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "pipeline/errors.h"

namespace dsir {

double localization_precision(double photons, double sigma, double background, bool em_gain) {
  if (!(photons > 0)) return std::nan("");
  const double pi = 3.14159265358979323846;
  const double sa2 = sigma * sigma + 1.0 / 12.0;  // pixelation adds a/12 (pixel size 1)
  double v = sa2 * (16.0 / 9.0 + 8.0 * pi * sa2 * background / photons) / photons;
  if (em_gain) v *= 2.0;  // excess noise of the EM register
  return std::sqrt(v);
}

void assign_uncertainty(std::vector<Emitter>& locs, double raw_pixel_size_nm, bool em_gain) {
  const double px = raw_pixel_size_nm;
  std::vector<double> passed;
  for (Emitter& e : locs) {
    e.uncertainty_nm = std::nan("");
    if (e.photometry_flags != 0) continue;
    e.uncertainty_nm = localization_precision(e.photons, e.sigma_nm / px, e.offset, em_gain) * px;
    if (std::isfinite(e.uncertainty_nm)) passed.push_back(e.uncertainty_nm);
  }
  if (passed.empty()) return;
  std::nth_element(passed.begin(), passed.begin() + passed.size() / 2, passed.end());
  const double median = passed[passed.size() / 2];
  for (Emitter& e : locs)
    if (!std::isfinite(e.uncertainty_nm)) e.uncertainty_nm = median;
}

FailedPhotometry failed_photometry_from_name(const std::string& name) {
  if (name == "flag") return FailedPhotometry::Flag;
  if (name == "drop") return FailedPhotometry::Drop;
  throw ConfigError("reduce.failed_photometry: '" + name + "' is not one of flag, drop");
}

std::string PhotometryFailures::summary() const {
  std::string text = fmt::format(
      "{} of {} localizations failed photometry ({} no fit, {} photons <= 0, {} background < 0, "
      "{} sigma at a search bound)",
      failed, of, no_fit, nonpositive_photons, negative_background, sigma_at_bound);
  if (not_measured > 0)
    text += fmt::format("; {} not checked (no photometry flags: shards of an older dsir)", not_measured);
  return text;
}

PhotometryFailures count_photometry_failures(const std::vector<Emitter>& locs) {
  namespace flag = photometry_flag;
  PhotometryFailures c;
  c.of = locs.size();
  for (const Emitter& e : locs) {
    c.not_measured += e.photometry_flags == flag::not_measured;
    if (!e.photometry_failed()) continue;
    ++c.failed;
    c.no_fit += (e.photometry_flags & flag::no_fit) != 0;
    c.nonpositive_photons += (e.photometry_flags & flag::nonpositive_photons) != 0;
    c.negative_background += (e.photometry_flags & flag::negative_background) != 0;
    c.sigma_at_bound += (e.photometry_flags & flag::sigma_at_bound) != 0;
  }
  return c;
}

PhotometryFailures apply_failed_photometry(std::vector<Emitter>& locs, FailedPhotometry policy) {
  const PhotometryFailures before = count_photometry_failures(locs);
  if (policy == FailedPhotometry::Drop)
    locs.erase(
        std::remove_if(locs.begin(), locs.end(), [](const Emitter& e) { return e.photometry_failed(); }),
        locs.end());
  return before;
}

}  // namespace dsir
