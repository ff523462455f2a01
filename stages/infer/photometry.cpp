#include "stages/infer/photometry.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>

#include "pipeline/errors.h"

namespace dsir {

double CameraCalibration::to_photons(double adu) const {
  return (adu - base_level) * e_per_adu / std::max(1.0, em_gain) / quantum_efficiency;
}

CameraCalibration CameraCalibration::from_json(const std::string& json, const std::string& where) {
  CameraCalibration c;
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(json);
  } catch (const std::exception& e) {
    throw InputError(where + ": camera attribute is not JSON: " + e.what());
  }
  auto get = [&](const char* key, double& v) {
    if (!j.contains(key)) return;
    if (!j[key].is_number()) throw InputError(where + ": camera." + key + " is not a number");
    v = j[key].get<double>();
  };
  get("base_level", c.base_level);
  get("e_per_adu", c.e_per_adu);
  get("em_gain", c.em_gain);
  get("quantum_efficiency", c.quantum_efficiency);
  if (!(c.e_per_adu > 0) || !(c.quantum_efficiency > 0))
    throw InputError(where + ": camera e_per_adu and quantum_efficiency must be > 0");
  c.known = true;
  return c;
}

namespace {

// Fraction of a unit-integral Gaussian (centre `mu`, sigma `s`) falling in pixel [k, k+1).
double pixel_mass(int k, double mu, double s) {
  const double a = 1.0 / (std::sqrt(2.0) * s);
  return 0.5 * (std::erf((k + 1 - mu) * a) - std::erf((k - mu) * a));
}

struct Window {
  int r0, r1, c0, c1;  // inclusive
  int n() const { return (r1 - r0 + 1) * (c1 - c0 + 1); }
};

// Least squares of d = N g + b for a fixed sigma; returns the residual sum of squares.
double solve(const float* d, int width, const Window& w, double u, double v, double s, double* photons,
             double* background) {
  double ex[64], ey[64];
  for (int c = w.c0; c <= w.c1; ++c) ex[c - w.c0] = pixel_mass(c, u, s);
  for (int r = w.r0; r <= w.r1; ++r) ey[r - w.r0] = pixel_mass(r, v, s);
  double sg = 0, sgg = 0, sd = 0, sgd = 0, sdd = 0;
  for (int r = w.r0; r <= w.r1; ++r)
    for (int c = w.c0; c <= w.c1; ++c) {
      const double g = ex[c - w.c0] * ey[r - w.r0];
      const double x = d[static_cast<size_t>(r) * static_cast<size_t>(width) + static_cast<size_t>(c)];
      sg += g;
      sgg += g * g;
      sd += x;
      sgd += g * x;
      sdd += x * x;
    }
  const double n = w.n();
  const double det = n * sgg - sg * sg;
  if (!(det > 0)) return std::numeric_limits<double>::infinity();
  *photons = (n * sgd - sg * sd) / det;
  *background = (sgg * sd - sg * sgd) / det;
  return std::max(0.0, sdd - *photons * sgd - *background * sd);
}

}  // namespace

SpotFit fit_spot(const float* frame, int height, int width, double u, double v, int radius) {
  SpotFit fit;
  if (!(std::isfinite(u) && std::isfinite(v)) || radius < 1 || radius > 31) return fit;
  const int cu = static_cast<int>(std::floor(u)), cv = static_cast<int>(std::floor(v));
  const Window w{std::max(0, cv - radius), std::min(height - 1, cv + radius), std::max(0, cu - radius),
                 std::min(width - 1, cu + radius)};
  if (w.r1 < w.r0 || w.c1 < w.c0 || w.n() < 9) return fit;
  double n_photons = 0, bg = 0;
  auto rss = [&](double s) { return solve(frame, width, w, u, v, s, &n_photons, &bg); };
  // A coarse scan brackets the best sigma, a golden-section search refines it: the residual is
  // smooth and, within one grid step of the best point, unimodal.
  const double lo = kFitSigmaMinPx, hi = kFitSigmaMaxPx, step = 0.1;
  double best_s = lo, best = std::numeric_limits<double>::infinity();
  for (double s = lo; s <= hi + 1e-9; s += step) {
    const double e = rss(s);
    if (e < best) best = e, best_s = s;
  }
  double a = std::max(lo, best_s - step), b = std::min(hi, best_s + step);
  const double g = (std::sqrt(5.0) - 1) / 2;
  double x1 = b - g * (b - a), x2 = a + g * (b - a);
  double f1 = rss(x1), f2 = rss(x2);
  for (int it = 0; it < 40; ++it) {
    if (f1 < f2) {
      b = x2, x2 = x1, f2 = f1;
      x1 = b - g * (b - a), f1 = rss(x1);
    } else {
      a = x1, x1 = x2, f1 = f2;
      x2 = a + g * (b - a), f2 = rss(x2);
    }
  }
  const double s = (a + b) / 2;
  const double e = rss(s);
  if (!std::isfinite(e) || !std::isfinite(n_photons)) return fit;
  fit.ok = true;
  fit.sigma_px = s;
  // The golden section ends within ~1e-9 of an end it is pushed against.
  fit.sigma_at_bound = s - lo < 1e-6 || hi - s < 1e-6;
  fit.photons = n_photons;
  fit.background = bg;
  // Background noise from the residuals where the PSF carries < 1% of its peak (the spot's own
  // shot noise would inflate it); all pixels when too few are that far out.
  double peak = 0;
  std::vector<double> psf;
  for (int r = w.r0; r <= w.r1; ++r)
    for (int c = w.c0; c <= w.c1; ++c) {
      psf.push_back(pixel_mass(c, u, s) * pixel_mass(r, v, s));
      peak = std::max(peak, psf.back());
    }
  for (const double cut : {0.01 * peak, std::numeric_limits<double>::infinity()}) {
    double ss = 0;
    int n = 0;
    size_t i = 0;
    for (int r = w.r0; r <= w.r1; ++r)
      for (int c = w.c0; c <= w.c1; ++c, ++i) {
        if (psf[i] >= cut) continue;
        const double res =
            frame[static_cast<size_t>(r) * static_cast<size_t>(width) + static_cast<size_t>(c)] -
            n_photons * psf[i] - bg;
        ss += res * res;
        ++n;
      }
    if (n >= 8) {
      fit.background_std = std::sqrt(ss / n);
      break;
    }
  }
  return fit;
}

int photometry_flags(const SpotFit& fit) {
  namespace flag = photometry_flag;
  if (!fit.ok || !std::isfinite(fit.photons) || !std::isfinite(fit.background) ||
      !std::isfinite(fit.sigma_px))
    return flag::no_fit;
  int flags = 0;
  if (!(fit.photons > 0)) flags |= flag::nonpositive_photons;
  if (fit.background < 0) flags |= flag::negative_background;
  if (fit.sigma_at_bound) flags |= flag::sigma_at_bound;
  return flags;
}

void measure_photometry(const float* raw_adu, int height, int width, double raw_pixel_size_nm,
                        const CameraCalibration& camera, std::vector<Emitter>::iterator begin,
                        std::vector<Emitter>::iterator end) {
  if (begin == end) return;
  std::vector<float> photons(static_cast<size_t>(height) * static_cast<size_t>(width));
  for (size_t i = 0; i < photons.size(); ++i) photons[i] = static_cast<float>(camera.to_photons(raw_adu[i]));
  for (auto e = begin; e != end; ++e) {
    const SpotFit f =
        fit_spot(photons.data(), height, width, e->x_nm / raw_pixel_size_nm, e->y_nm / raw_pixel_size_nm);
    e->photometry_flags = photometry_flags(f);
    if (e->photometry_flags == photometry_flag::no_fit) continue;
    e->photons = f.photons;
    e->sigma_nm = f.sigma_px * raw_pixel_size_nm;
    e->offset = f.background;
    e->bkgstd = f.background_std;
  }
}

}  // namespace dsir
