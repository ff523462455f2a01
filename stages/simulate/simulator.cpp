#include "stages/simulate/simulator.h"

#include <algorithm>
#include <cmath>

#include "pipeline/errors.h"
#include "pipeline/tiff.h"

namespace dsir::sim {
namespace {

uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

double uniform(std::mt19937_64& rng, double lo, double hi) {
  return std::uniform_real_distribution<double>(lo, hi)(rng);
}

constexpr double kFwhmPerSigma = 2.3548200450309493;  // 2 sqrt(2 ln 2)

}  // namespace

std::mt19937_64 frame_rng(uint64_t seed, int64_t frame) {
  return std::mt19937_64(splitmix64(splitmix64(seed) ^ static_cast<uint64_t>(frame + 1)));
}

Filaments::Filaments(const FieldSpec& field, double px, uint64_t seed) {
  std::mt19937_64 rng(splitmix64(seed ^ 0x66696c616d656e74ull));  // "filament"
  const double w = field.width * px, h = field.height * px;
  const double step = 10.0;           // nm
  const double persistence = 3000.0;  // nm; microtubules are stiffer, this reads well
  const double turn_sd = std::sqrt(2 * step / persistence);
  for (int k = 0; k < field.filaments; ++k) {
    // Start on a random point of the field, walk both ways until leaving a margin around it.
    double x0 = uniform(rng, 0, w), y0 = uniform(rng, 0, h);
    double a0 = uniform(rng, 0, 2 * M_PI);
    std::vector<std::pair<double, double>> halves[2];
    for (int dir = 0; dir < 2; ++dir) {
      double x = x0, y = y0, a = a0 + dir * M_PI;
      std::normal_distribution<double> turn(0.0, turn_sd);
      for (int i = 0; i < 100000; ++i) {
        x += step * std::cos(a);
        y += step * std::sin(a);
        a += turn(rng);
        if (x < -px || y < -px || x > w + px || y > h + px) break;
        halves[dir].emplace_back(x, y);
      }
    }
    std::vector<std::pair<double, double>> curve(halves[1].rbegin(), halves[1].rend());
    curve.emplace_back(x0, y0);
    curve.insert(curve.end(), halves[0].begin(), halves[0].end());
    curves_.push_back(std::move(curve));
  }
  double total = 0;
  for (size_t c = 0; c < curves_.size(); ++c)
    for (size_t i = 0; i + 1 < curves_[c].size(); ++i) {
      total += std::hypot(curves_[c][i + 1].first - curves_[c][i].first,
                          curves_[c][i + 1].second - curves_[c][i].second);
      cumulative_.push_back(total);
      segment_.emplace_back(c, i);
    }
  if (cumulative_.empty()) throw Error("simulate: filament structure is empty (no filaments in the field)");
}

std::pair<double, double> Filaments::sample(std::mt19937_64& rng) const {
  double s = uniform(rng, 0, cumulative_.back());
  size_t k =
      static_cast<size_t>(std::lower_bound(cumulative_.begin(), cumulative_.end(), s) - cumulative_.begin());
  k = std::min(k, cumulative_.size() - 1);
  double start = k ? cumulative_[k - 1] : 0.0;
  double len = cumulative_[k] - start;
  double t = len > 0 ? (s - start) / len : 0.0;
  const auto& [c, i] = segment_[k];
  const auto& p = curves_[c][i];
  const auto& q = curves_[c][i + 1];
  return {p.first + t * (q.first - p.first), p.second + t * (q.second - p.second)};
}

Filaments frame_filaments(const FieldSpec& field, double pixel_size_nm, uint64_t seed, int64_t frame) {
  return Filaments(field, pixel_size_nm, seed + 0x9e3779b97f4a7c15ull * static_cast<uint64_t>(frame + 1));
}

std::vector<double> render_expected(const std::vector<Emitter>& emitters, int width, int height, double px,
                                    PsfModel psf) {
  std::vector<double> img(static_cast<size_t>(width) * static_cast<size_t>(height), 0.0);
  std::vector<double> gx, gy;
  for (const auto& e : emitters) {
    const double s = e.sigma_nm / px;  // pixels
    const double cx = e.x_nm / px, cy = e.y_nm / px;
    const int radius = static_cast<int>(std::ceil(5 * s)) + 1;
    const int c0 = std::max(0, static_cast<int>(std::floor(cx)) - radius);
    const int c1 = std::min(width - 1, static_cast<int>(std::floor(cx)) + radius);
    const int r0 = std::max(0, static_cast<int>(std::floor(cy)) - radius);
    const int r1 = std::min(height - 1, static_cast<int>(std::floor(cy)) + radius);
    if (c0 > c1 || r0 > r1) continue;
    // Both models are separable in x and y: one factor per column and one per row.
    gx.assign(static_cast<size_t>(c1 - c0 + 1), 0.0);
    gy.assign(static_cast<size_t>(r1 - r0 + 1), 0.0);
    if (psf == PsfModel::Integrated) {
      // The PSF's mass inside each pixel.
      const double k = 1.0 / (std::sqrt(2.0) * s);
      for (int c = c0; c <= c1; ++c)
        gx[static_cast<size_t>(c - c0)] = 0.5 * (std::erf((c + 1 - cx) * k) - std::erf((c - cx) * k));
      for (int r = r0; r <= r1; ++r)
        gy[static_cast<size_t>(r - r0)] = 0.5 * (std::erf((r + 1 - cy) * k) - std::erf((r - cy) * k));
    } else {
      // The density at the pixel centre (pixel area 1).
      const double norm = 1.0 / (std::sqrt(2.0 * M_PI) * s), k = 1.0 / (2.0 * s * s);
      for (int c = c0; c <= c1; ++c)
        gx[static_cast<size_t>(c - c0)] = norm * std::exp(-(c + 0.5 - cx) * (c + 0.5 - cx) * k);
      for (int r = r0; r <= r1; ++r)
        gy[static_cast<size_t>(r - r0)] = norm * std::exp(-(r + 0.5 - cy) * (r + 0.5 - cy) * k);
    }
    for (int r = r0; r <= r1; ++r)
      for (int c = c0; c <= c1; ++c)
        img[static_cast<size_t>(r) * static_cast<size_t>(width) + static_cast<size_t>(c)] +=
            e.photons * gx[static_cast<size_t>(c - c0)] * gy[static_cast<size_t>(r - r0)];
  }
  return img;
}

DensityMask::DensityMask(std::vector<double> weights, int width, int height, std::string source)
    : weights_(std::move(weights)), width_(width), height_(height) {
  if (width <= 0 || height <= 0 ||
      weights_.size() != static_cast<size_t>(width) * static_cast<size_t>(height))
    throw InputError(source + ": density mask of " + std::to_string(weights_.size()) + " values is not " +
                     std::to_string(width) + "x" + std::to_string(height));
  double max = 0;
  for (size_t i = 0; i < weights_.size(); ++i) {
    const double v = weights_[i];
    if (!std::isfinite(v) || v < 0)
      throw InputError(source + ": density mask pixel (row " +
                       std::to_string(i / static_cast<size_t>(width)) + ", column " +
                       std::to_string(i % static_cast<size_t>(width)) + ") is " + std::to_string(v) +
                       "; weights must be finite and >= 0");
    max = std::max(max, v);
  }
  if (!(max > 0)) throw InputError(source + ": density mask is zero everywhere (no emitter could appear)");
  double sum = 0;
  for (double& v : weights_) {
    v /= max;
    sum += v;
  }
  mean_ = sum / static_cast<double>(weights_.size());
}

DensityMask DensityMask::from_tiff(const std::string& path) {
  tiff::Reader reader(path);
  const auto& info = reader.info();
  if (info.frames != 1)
    throw InputError(path + ": a density mask is one image, but the TIFF has " + std::to_string(info.frames) +
                     " frames");
  std::vector<float> pixels(static_cast<size_t>(info.width) * info.height);
  reader.read_frame(0, pixels.data());
  return DensityMask(std::vector<double>(pixels.begin(), pixels.end()), static_cast<int>(info.width),
                     static_cast<int>(info.height), path);
}

double DensityMask::weight_at(double fx, double fy) const {
  const int c = std::clamp(static_cast<int>(fx * width_), 0, width_ - 1);
  const int r = std::clamp(static_cast<int>(fy * height_), 0, height_ - 1);
  return weights_[static_cast<size_t>(r) * static_cast<size_t>(width_) + static_cast<size_t>(c)];
}

std::vector<uint16_t> apply_camera(const std::vector<double>& expected, const Camera& cam,
                                   std::mt19937_64& rng) {
  std::vector<uint16_t> out(expected.size());
  std::normal_distribution<double> read(0.0, 1.0);
  for (size_t i = 0; i < expected.size(); ++i) {
    const double lambda = cam.quantum_efficiency * (expected[i] + cam.background_photons);
    double electrons = static_cast<double>(std::poisson_distribution<int64_t>(lambda)(rng));
    if (cam.em_gain >= 1 && electrons > 0)
      electrons = std::gamma_distribution<double>(electrons, cam.em_gain)(rng);
    if (cam.read_noise_e > 0) electrons += cam.read_noise_e * read(rng);
    // Ties to even: rounding half-integers up would bias the mean by +0.25 ADU at 2 e-/ADU.
    const double adu = std::nearbyint(electrons / cam.e_per_adu + cam.base_level);
    out[i] = static_cast<uint16_t>(std::clamp(adu, 0.0, 65535.0));
  }
  return out;
}

double model_variance_adu(double photons, const Camera& cam) {
  const double electrons = cam.quantum_efficiency * photons;
  // EM registers double the shot-noise variance (excess noise factor F² = 2) at high gain.
  const double shot = cam.em_gain >= 1 ? 2.0 * electrons * cam.em_gain * cam.em_gain : electrons;
  const double var_e = shot + cam.read_noise_e * cam.read_noise_e;
  return var_e / (cam.e_per_adu * cam.e_per_adu) + 1.0 / 12.0;  // + rounding to integers
}

Frame simulate_frame(const FieldSpec& field, const Camera& cam, const EmitterRanges& ranges,
                     const Filaments* filaments, uint64_t seed, int64_t frame, const DensityMask* mask) {
  std::mt19937_64 rng = frame_rng(seed, frame);
  const double w_nm = field.width * cam.pixel_size_nm, h_nm = field.height * cam.pixel_size_nm;
  const double mean = field.density_per_um2 * (w_nm / 1000.0) * (h_nm / 1000.0);
  const int64_t n = std::poisson_distribution<int64_t>(mean)(rng);
  Frame f;
  f.emitters.reserve(static_cast<size_t>(n));
  if (field.structure == Structure::Filaments && !filaments)
    throw Error("simulate: a filament field needs its Filaments structure");
  std::normal_distribution<double> jitter(0.0, 8.0);  // label size around the filament axis, nm
  for (int64_t i = 0; i < n; ++i) {
    Emitter e;
    e.frame = frame;
    if (field.structure == Structure::Filaments) {
      auto [x, y] = filaments->sample(rng);
      e.x_nm = x + jitter(rng);
      e.y_nm = y + jitter(rng);
      if (e.x_nm < 0 || e.y_nm < 0 || e.x_nm >= w_nm || e.y_nm >= h_nm) continue;
    } else {
      e.x_nm = uniform(rng, 0, w_nm);
      e.y_nm = uniform(rng, 0, h_nm);
    }
    // Thinning a Poisson process by the mask's weight leaves a Poisson process with that density.
    if (mask && uniform(rng, 0, 1) >= mask->weight_at(e.x_nm / w_nm, e.y_nm / h_nm)) continue;
    e.sigma_nm = uniform(rng, ranges.fwhm_min_nm, ranges.fwhm_max_nm) / kFwhmPerSigma;
    e.photons = uniform(rng, ranges.photons_min, ranges.photons_max);
    e.offset = cam.background_photons;
    e.bkgstd = std::sqrt(cam.background_photons);
    f.emitters.push_back(e);
  }
  f.pixels = apply_camera(
      render_expected(f.emitters, field.width, field.height, cam.pixel_size_nm, ranges.psf), cam, rng);
  return f;
}

}  // namespace dsir::sim
