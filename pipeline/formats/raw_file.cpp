#include "pipeline/formats/raw_file.h"

#include <algorithm>
#include <cmath>

#include "pipeline/errors.h"

namespace dsir {

RawFileWriter::RawFileWriter(const std::string& path, const RawFileInfo& info,
                             const h5::Attributes& provenance)
    : file_(h5::File::create(path, provenance)), info_(info) {
  if (info.frames == 0 || info.width == 0 || info.height == 0)
    throw Error(path + ": cannot write an empty stack (" + std::to_string(info.frames) + " frames of " +
                std::to_string(info.width) + "x" + std::to_string(info.height) + ")");
  // One chunk per frame: readers stream frames, and shuffle + deflate suit camera counts.
  file_.create_dataset("/frames", info.float32 ? h5::DType::f32 : h5::DType::u16,
                       {info.frames, info.height, info.width}, {1, info.height, info.width}, 4);
}

void RawFileWriter::write_frame(const uint16_t* pixels) {
  if (info_.float32) throw Error(file_.path() + ": 16-bit frame given to a float32 /frames");
  if (written_ >= info_.frames)
    throw Error(file_.path() + ": more frames than the " + std::to_string(info_.frames) + " declared");
  file_.write_rows("/frames", written_++, 1, pixels);
}

void RawFileWriter::write_frame(const float* pixels) {
  if (!info_.float32) throw Error(file_.path() + ": float frame given to a uint16 /frames");
  if (written_ >= info_.frames)
    throw Error(file_.path() + ": more frames than the " + std::to_string(info_.frames) + " declared");
  file_.write_rows("/frames", written_++, 1, pixels);
}

void RawFileWriter::set_emitters(const std::vector<Emitter>& emitters, const std::string& source_file,
                                 uint64_t outside_field_of_view) {
  file_.write_table("/emitters", emitters_to_table(emitters));
  file_.set_attr("/emitters", "source_file", source_file);
  file_.set_attr("/emitters", "outside_field_of_view", static_cast<double>(outside_field_of_view));
}

void RawFileWriter::commit() {
  if (written_ != info_.frames)
    throw Error(file_.path() + ": " + std::to_string(written_) + " frames written but " +
                std::to_string(info_.frames) + " declared");
  file_.set_attr("/frames", "pixel_size_nm", info_.pixel_size_nm);
  file_.set_attr("/", "pixel_size_nm", info_.pixel_size_nm);
  file_.set_attr("/", "camera", info_.camera_json);
  file_.set_attr("/", "source_files", info_.source_files);
  file_.commit();
}

RawFileReader::RawFileReader(const std::string& path) : path_(path), file_(h5::File::open(path)) {
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

std::vector<float> RawFileReader::read(uint64_t first, uint64_t count) const {
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

std::vector<Emitter> RawFileReader::emitters() const {
  if (!has_emitters()) return {};
  std::vector<Emitter> emitters = table_to_emitters(file_.read_table("/emitters"), path_ + ":/emitters");
  for (size_t i = 0; i < emitters.size(); ++i)
    if (emitters[i].frame >= static_cast<int64_t>(frames_))
      throw InputError(path_ + ":/emitters: row " + std::to_string(i) + ": frame " +
                       std::to_string(emitters[i].frame) + " is beyond the stack's " +
                       std::to_string(frames_) + " frames");
  return emitters;
}

std::pair<double, double> RawFileReader::mean_std() const {
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

uint64_t count_outside(const std::vector<Emitter>& emitters, double width_nm, double height_nm) {
  uint64_t n = 0;
  for (const Emitter& e : emitters)
    n += e.x_nm < 0 || e.y_nm < 0 || e.x_nm >= width_nm || e.y_nm >= height_nm;
  return n;
}

}  // namespace dsir
