#include "stages/upscale/raw_stack.h"

#include <cmath>

#include "pipeline/errors.h"

namespace dsir {

RawStack::RawStack(const std::string& path) : path_(path), file_(h5::File::open(path)) {
  if (!file_.has("/frames")) throw InputError(path + ": missing dataset /frames (not a raw.h5?)");
  h5::Dims d = file_.shape("/frames");
  if (d.size() != 3) throw InputError(path + ": /frames must be 3-D (frames x height x width)");
  // A camera frame is at most a few thousand pixels a side. Checked before the narrowing to int:
  // a side of 2^32 + 5 read as 5, and 2^32 as 0 ("empty").
  constexpr uint64_t kMaxSide = uint64_t(1) << 16;
  if (d[1] > kMaxSide || d[2] > kMaxSide)
    throw InputError(path + ": /frames has frames of " + std::to_string(d[1]) + " x " + std::to_string(d[2]) +
                     " pixels; at most " + std::to_string(kMaxSide) + " a side are supported");
  frames_ = d[0];
  height_ = static_cast<int>(d[1]);
  width_ = static_cast<int>(d[2]);
  if (!file_.has_attr("/", "pixel_size_nm"))
    throw InputError(path + ": missing attribute pixel_size_nm on /");
  pixel_size_nm_ = file_.attr_double("/", "pixel_size_nm");
  if (!(pixel_size_nm_ > 0) || !std::isfinite(pixel_size_nm_))
    throw InputError(path + ": attribute pixel_size_nm must be a finite number > 0, got " +
                     std::to_string(pixel_size_nm_));
  if (frames_ == 0 || height_ <= 0 || width_ <= 0)
    throw InputError(path + ": /frames is empty (" + std::to_string(frames_) + " frames of " +
                     std::to_string(height_) + " x " + std::to_string(width_) + " pixels)");
}

std::vector<float> RawStack::read(uint64_t first, uint64_t count) const {
  std::vector<float> rows = file_.read_rows<float>("/frames", first, count);
  const size_t frame = static_cast<size_t>(height_) * static_cast<size_t>(width_);
  for (size_t i = 0; i < rows.size(); ++i)
    if (!std::isfinite(rows[i]))
      throw InputError(path_ + ": /frames: frame " + std::to_string(first + i / frame) +
                       " has a non-finite pixel (NaN or infinity) at row " +
                       std::to_string(i % frame / width_) + ", column " +
                       std::to_string(i % static_cast<size_t>(width_)));
  return rows;
}

std::vector<Emitter> RawStack::emitters() const {
  if (!has_emitters()) return {};
  std::vector<Emitter> emitters = table_to_emitters(file_.read_table("/emitters"), path_ + ":/emitters");
  for (size_t i = 0; i < emitters.size(); ++i)
    if (emitters[i].frame >= static_cast<int64_t>(frames_))
      throw InputError(path_ + ":/emitters: row " + std::to_string(i) + ": frame " +
                       std::to_string(emitters[i].frame) + " is beyond the stack's " +
                       std::to_string(frames_) + " frames");
  return emitters;
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
