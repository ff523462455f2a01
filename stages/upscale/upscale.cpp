#include "stages/upscale/upscale.h"

#include <algorithm>
#include <cmath>
#include <tuple>

#include "pipeline/config.h"
#include "pipeline/errors.h"
#include "pipeline/pixel_gaussian.h"

namespace dsir {

Normalization parse_normalization(const std::string& name) {
  if (name == "per-frame") return Normalization::PerFrame;
  if (name == "global") return Normalization::Global;
  if (name == "none") return Normalization::None;
  throw ConfigError("unknown normalization '" + name + "' (per-frame, global, none)");
}

std::string to_string(Normalization norm) {
  return norm == Normalization::PerFrame ? "per-frame" : norm == Normalization::Global ? "global" : "none";
}

LabelMode parse_label_mode(const std::string& name) {
  if (name == "dsir") return LabelMode::Dsir;
  if (name == "deepstorm") return LabelMode::DeepStorm;
  if (name == "gaussian") return LabelMode::Gaussian;
  throw ConfigError("unknown label mode '" + name + "' (dsir, deepstorm, gaussian)");
}

namespace {
// Sample positions and weights along one axis; mirror ('reflect' in numpy terms) at the edges.
struct Tap {
  int i0, i1;
  float w1;  // weight of i1; i0 gets 1 - w1
};
std::vector<Tap> taps(int n_in, int factor) {
  const int n_out = n_in * factor;
  std::vector<Tap> t(static_cast<size_t>(n_out));
  auto mirror = [n_in](int i) {
    if (n_in == 1) return 0;
    const int period = 2 * (n_in - 1);
    i = ((i % period) + period) % period;
    return i < n_in ? i : period - i;
  };
  for (int o = 0; o < n_out; ++o) {
    const double x = (o + 0.5) / factor - 0.5;
    const double fl = std::floor(x);
    const int i = static_cast<int>(fl);
    t[static_cast<size_t>(o)] = {mirror(i), mirror(i + 1), static_cast<float>(x - fl)};
  }
  return t;
}
}  // namespace

void resize_bilinear(const float* in, int height, int width, int factor, float* out) {
  const auto ty = taps(height, factor), tx = taps(width, factor);
  const size_t ow = static_cast<size_t>(width) * static_cast<size_t>(factor);
  // Interpolate along x for the (at most two) source rows each output row needs, then along y.
  std::vector<float> row0(ow), row1(ow);
  for (size_t r = 0; r < ty.size(); ++r) {
    const float* a = in + static_cast<size_t>(ty[r].i0) * static_cast<size_t>(width);
    const float* b = in + static_cast<size_t>(ty[r].i1) * static_cast<size_t>(width);
    for (size_t c = 0; c < ow; ++c) {
      const Tap& t = tx[c];
      row0[c] = a[t.i0] + t.w1 * (a[t.i1] - a[t.i0]);
      row1[c] = b[t.i0] + t.w1 * (b[t.i1] - b[t.i0]);
    }
    float* o = out + r * ow;
    const float wy = ty[r].w1;
    for (size_t c = 0; c < ow; ++c) o[c] = row0[c] + wy * (row1[c] - row0[c]);
  }
}

std::vector<float> resize_matrix(int n, int factor) {
  const auto t = taps(n, factor);
  std::vector<float> m(t.size() * static_cast<size_t>(n), 0.0f);
  for (size_t o = 0; o < t.size(); ++o) {
    m[o * static_cast<size_t>(n) + static_cast<size_t>(t[o].i0)] += 1.0f - t[o].w1;
    m[o * static_cast<size_t>(n) + static_cast<size_t>(t[o].i1)] += t[o].w1;
  }
  return m;
}

void zscore(float* data, size_t n) {
  double sum = 0;
  for (size_t i = 0; i < n; ++i) sum += data[i];
  const double mean = sum / static_cast<double>(n);
  double ss = 0;
  for (size_t i = 0; i < n; ++i) ss += (data[i] - mean) * (data[i] - mean);
  const double sd = std::sqrt(ss / static_cast<double>(n));
  const double inv = sd > 0 ? 1.0 / sd : 0.0;  // a constant frame becomes all zeros
  for (size_t i = 0; i < n; ++i) data[i] = static_cast<float>((data[i] - mean) * inv);
}

void upscale_frame(const float* raw, int height, int width, int factor, Normalization norm,
                   double global_mean, double global_std, float* out) {
  resize_bilinear(raw, height, width, factor, out);
  const size_t n = static_cast<size_t>(height) * static_cast<size_t>(width) * static_cast<size_t>(factor) *
                   static_cast<size_t>(factor);
  if (norm == Normalization::PerFrame) {
    zscore(out, n);
  } else if (norm == Normalization::Global) {
    const double inv = global_std > 0 ? 1.0 / global_std : 0.0;
    for (size_t i = 0; i < n; ++i) out[i] = static_cast<float>((out[i] - global_mean) * inv);
  }
}

std::pair<int, int> patch_origin(uint64_t seed, uint64_t frame, int height, int width, int patch,
                                 uint64_t k) {
  // SplitMix64 stream keyed by (seed, frame): cheap, portable, independent of the rank. Its state
  // advances by a constant, so draw j is at start + j·γ and patch k (draws 2k+1, 2k+2) needs no
  // draws before it.
  constexpr uint64_t kGamma = 0x9e3779b97f4a7c15ull;
  const uint64_t start = seed * kGamma ^ (frame + 1) * 0xbf58476d1ce4e5b9ull;
  auto draw = [start](uint64_t j) {
    uint64_t z = start + j * kGamma;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  };
  return {static_cast<int>(draw(2 * k + 1) % static_cast<uint64_t>(height - patch + 1)),
          static_cast<int>(draw(2 * k + 2) % static_cast<uint64_t>(width - patch + 1))};
}

std::vector<std::pair<int, int>> patch_origins(uint64_t seed, uint64_t frame, int height, int width,
                                               int patch, int count) {
  std::vector<std::pair<int, int>> o;
  for (int k = 0; k < count; ++k)
    o.push_back(patch_origin(seed, frame, height, width, patch, static_cast<uint64_t>(k)));
  return o;
}

void crop(const float* frame, int width, int row0, int col0, int ph, int pw, float* out) {
  for (int r = 0; r < ph; ++r)
    std::copy(frame + static_cast<size_t>(row0 + r) * width + col0,
              frame + static_cast<size_t>(row0 + r) * width + col0 + pw, out + static_cast<size_t>(r) * pw);
}

void add_gaussian(double fx, double fy, double sigma, double weight, double reach_sigmas, int64_t oh,
                  int64_t ow, float* out) {
  const double reach = reach_sigmas * sigma;
  const int64_t c0 = std::max<int64_t>(0, static_cast<int64_t>(std::floor(fx - reach)));
  const int64_t c1 = std::min<int64_t>(ow - 1, static_cast<int64_t>(std::floor(fx + reach)));
  const int64_t r0 = std::max<int64_t>(0, static_cast<int64_t>(std::floor(fy - reach)));
  const int64_t r1 = std::min<int64_t>(oh - 1, static_cast<int64_t>(std::floor(fy + reach)));
  if (c0 > c1 || r0 > r1) return;  // wholly outside the image
  // Per thread, so that painting a frame pixel by pixel allocates nothing.
  thread_local std::vector<double> mx, my;
  pixel_gaussian_masses(fx, sigma, c0, c1 - c0 + 1, mx);
  pixel_gaussian_masses(fy, sigma, r0, r1 - r0 + 1, my);
  for (int64_t r = r0; r <= r1; ++r) {
    const double row = weight * my[static_cast<size_t>(r - r0)];
    float* line = out + r * ow;
    for (int64_t c = c0; c <= c1; ++c) line[c] += static_cast<float>(row * mx[static_cast<size_t>(c - c0)]);
  }
}

uint64_t render_labels(const std::vector<Emitter>& emitters, int height, int width, int factor,
                       double pixel_size_nm, LabelMode mode, float* out, double sigma_px) {
  const int64_t oh = static_cast<int64_t>(height) * factor, ow = static_cast<int64_t>(width) * factor;
  std::fill(out, out + oh * ow, 0.0f);
  const double scale = factor / pixel_size_nm;
  uint64_t dropped = 0;
  for (const auto& e : emitters) {
    const double fx = e.x_nm * scale, fy = e.y_nm * scale;
    // Outside the field before any rounding: int(-0.3) is 0 in DSIR, but the emitter is outside.
    if (!(fx >= 0 && fy >= 0 && fx < ow && fy < oh)) {
      ++dropped;
      continue;
    }
    if (mode == LabelMode::Gaussian) {
      add_gaussian(fx, fy, sigma_px, 1, 4, oh, ow, out);
      continue;
    }
    // DSIR truncates (int()), Deep-STORM rounds to the nearest pixel index.
    const double cx = mode == LabelMode::Dsir ? std::trunc(fx) : std::floor(fx);
    const double cy = mode == LabelMode::Dsir ? std::trunc(fy) : std::floor(fy);
    float& px = out[static_cast<int64_t>(cy) * ow + static_cast<int64_t>(cx)];
    px = mode == LabelMode::Dsir ? 1.0f : px + 1.0f;
  }
  return dropped;
}

ItemSpec item_spec(const Config& c) {
  ItemSpec s;
  s.factor = static_cast<int>(c.get_int("upscale.factor"));
  s.normalize = parse_normalization(c.get_string("upscale.normalize"));
  s.labels = parse_label_mode(c.get_string("upscale.labels"));
  s.label_sigma_px = c.get_double("upscale.label_sigma_px");
  s.patch_size = static_cast<int>(c.get_int("upscale.patch_size"));
  s.patches_per_frame = static_cast<uint64_t>(c.get_int("upscale.patches_per_frame"));
  s.seed = static_cast<uint64_t>(c.get_int("run.seed"));
  return s;
}

TrainingItems::TrainingItems(const RawFileReader& raw, const ItemSpec& spec) : raw_(raw), spec_(spec) {
  const int patch = spec.patch_size;
  if (patch > std::min(raw.height(), raw.width()))
    throw ConfigError("upscale.patch_size: " + std::to_string(patch) + " exceeds the " +
                      std::to_string(raw.height()) + "x" + std::to_string(raw.width()) + " frames of " +
                      raw.path());
  per_frame_ = patch > 0 ? spec.patches_per_frame : 1;
  item_height_ = patch > 0 ? patch : raw.height();
  item_width_ = patch > 0 ? patch : raw.width();
  if (spec.normalize == Normalization::Global) std::tie(global_mean_, global_std_) = raw.mean_std();
  // Memory by emitters, not by frames: a stack may declare billions of frames; RawFileReader
  // checked every frame is inside the stack.
  truth_ = raw.emitters();
  std::stable_sort(truth_.begin(), truth_.end(),
                   [](const Emitter& a, const Emitter& b) { return a.frame < b.frame; });
}

std::pair<int, int> TrainingItems::origin(uint64_t item) const {
  if (spec_.patch_size == 0) return {0, 0};
  return patch_origin(spec_.seed, item / per_frame_, raw_.height(), raw_.width(), spec_.patch_size,
                      item % per_frame_);
}

std::vector<Emitter> TrainingItems::emitters(uint64_t item) const {
  const int64_t f = static_cast<int64_t>(item / per_frame_);
  const auto [row0, col0] = origin(item);
  const auto at = [](const Emitter& e, int64_t k) { return e.frame < k; };
  const auto first = std::lower_bound(truth_.begin(), truth_.end(), f, at);
  const auto last = std::lower_bound(first, truth_.end(), f + 1, at);
  std::vector<Emitter> shifted(first, last);
  const double px = raw_.pixel_size_nm();
  for (auto& e : shifted) {
    e.x_nm -= col0 * px;
    e.y_nm -= row0 * px;
  }
  return shifted;
}

uint64_t TrainingItems::render(uint64_t item, const float* frame, float* input, float* label) const {
  std::vector<float> window(static_cast<size_t>(item_height_) * static_cast<size_t>(item_width_));
  const uint64_t dropped = render_raw(item, frame, window.data(), label);
  upscale_frame(window.data(), item_height_, item_width_, spec_.factor, spec_.normalize, global_mean_,
                global_std_, input);
  return dropped;
}

uint64_t TrainingItems::render_raw(uint64_t item, const float* frame, float* window, float* label) const {
  const auto [row0, col0] = origin(item);
  crop(frame, raw_.width(), row0, col0, item_height_, item_width_, window);
  return render_labels(emitters(item), item_height_, item_width_, spec_.factor, raw_.pixel_size_nm(),
                       spec_.labels, label, spec_.label_sigma_px);
}

}  // namespace dsir
