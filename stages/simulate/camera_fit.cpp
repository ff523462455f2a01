#include "stages/simulate/camera_fit.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "pipeline/errors.h"

namespace dsir::sim {
namespace {

struct Line {
  double slope = 0, intercept = 0, pearson = 0;
};

// Ordinary least squares y = slope * x + intercept.
Line least_squares(const std::vector<double>& x, const std::vector<double>& y) {
  const double n = static_cast<double>(x.size());
  double mx = 0, my = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    mx += x[i];
    my += y[i];
  }
  mx /= n;
  my /= n;
  double sxx = 0, syy = 0, sxy = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    sxx += (x[i] - mx) * (x[i] - mx);
    syy += (y[i] - my) * (y[i] - my);
    sxy += (x[i] - mx) * (y[i] - my);
  }
  if (!(sxx > 0)) throw Error("camera fit: the expected image is constant; nothing to fit");
  Line l;
  l.slope = sxy / sxx;
  l.intercept = my - l.slope * mx;
  l.pearson = syy > 0 ? sxy / std::sqrt(sxx * syy) : 0.0;
  return l;
}

}  // namespace

void set_gain(Camera& cam, double adu_per_photon, bool em) {
  if (em) {
    cam.e_per_adu = std::max(1.0, 1.0 / adu_per_photon);
    cam.em_gain = adu_per_photon * cam.e_per_adu;
  } else {
    cam.e_per_adu = 1.0 / adu_per_photon;
    cam.em_gain = 0;
  }
}

CameraFit fit_camera(const std::vector<double>& expected, const std::vector<double>& observed,
                     const CameraFitOptions& options) {
  if (expected.size() != observed.size())
    throw Error("camera fit: " + std::to_string(expected.size()) + " expected values but " +
                std::to_string(observed.size()) + " observed");
  if (expected.size() < 3) throw Error("camera fit: needs at least 3 pixels");
  CameraFit fit;
  fit.pixels = expected.size();

  const Line mean = least_squares(expected, observed);
  fit.adu_per_photon = mean.slope;
  fit.intercept_adu = mean.intercept;
  fit.pearson = mean.pearson;
  const double a = mean.slope;
  if (!(a > 0))
    throw Error("camera fit: the frames do not brighten where emitters are (slope " + std::to_string(a) +
                ")");

  std::vector<double> r2(expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    const double r = observed[i] - (a * expected[i] + mean.intercept);
    r2[i] = r * r;
  }
  const Line var = least_squares(expected, r2);
  fit.excess_noise = var.slope / (a * a);
  fit.em_gain = fit.excess_noise > 1.5;
  const double f2 = fit.em_gain ? 2.0 : 1.0;
  // Rounding to integer ADU adds 1/12 to every pixel's variance.
  fit.background_from_variance = (var.intercept - 1.0 / 12.0) / (f2 * a * a);
  fit.background_photons = std::isnan(options.background_photons)
                               ? std::max(0.0, fit.background_from_variance)
                               : options.background_photons;
  fit.base_level = mean.intercept - a * fit.background_photons;

  Camera& cam = fit.camera;
  cam.background_photons = fit.background_photons;
  cam.base_level = fit.base_level;
  cam.quantum_efficiency = 1.0;
  cam.read_noise_e = 0;
  set_gain(cam, a, fit.em_gain);

  double sum = 0, sum2 = 0;
  for (size_t i = 0; i < expected.size(); ++i) {
    const double photons = expected[i] + fit.background_photons;
    const double z =
        (observed[i] - (fit.base_level + a * photons)) / std::sqrt(model_variance_adu(photons, cam));
    sum += z;
    sum2 += z * z;
  }
  const double n = static_cast<double>(expected.size());
  fit.z_mean = sum / n;
  fit.z_variance = sum2 / n - fit.z_mean * fit.z_mean;
  return fit;
}

}  // namespace dsir::sim
