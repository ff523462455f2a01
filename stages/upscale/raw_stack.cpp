#include "stages/upscale/raw_stack.h"

#include <cmath>

#include "pipeline/errors.h"

namespace dsir {

RawStack::RawStack(const std::string& path) : path_(path), file_(h5::File::open(path)) {
  if (!file_.has("/frames")) throw InputError(path + ": missing dataset /frames (not a raw.h5?)");
  h5::Dims d = file_.shape("/frames");
  if (d.size() != 3) throw InputError(path + ": /frames must be 3-D (frames x height x width)");
  frames_ = d[0];
  height_ = static_cast<int>(d[1]);
  width_ = static_cast<int>(d[2]);
  if (!file_.has_attr("/", "pixel_size_nm"))
    throw InputError(path + ": missing attribute pixel_size_nm on /");
  pixel_size_nm_ = file_.attr_double("/", "pixel_size_nm");
  if (!(pixel_size_nm_ > 0)) throw InputError(path + ": attribute pixel_size_nm must be > 0");
}

std::vector<float> RawStack::read(uint64_t first, uint64_t count) const {
  return file_.read_rows<float>("/frames", first, count);
}

std::vector<Emitter> RawStack::emitters() const {
  if (!has_emitters()) return {};
  return table_to_emitters(file_.read_table("/emitters"));
}

std::pair<double, double> RawStack::mean_std() const {
  double sum = 0, sumsq = 0;
  const uint64_t chunk = 64;
  for (uint64_t f = 0; f < frames_; f += chunk) {
    for (float v : read(f, std::min(chunk, frames_ - f))) {
      sum += v;
      sumsq += static_cast<double>(v) * v;
    }
  }
  const double n = static_cast<double>(frames_) * height_ * width_;
  const double mean = sum / n;
  return {mean, std::sqrt(std::max(0.0, sumsq / n - mean * mean))};
}

}  // namespace dsir
