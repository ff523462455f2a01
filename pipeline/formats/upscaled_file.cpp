#include "pipeline/formats/upscaled_file.h"

#include <cmath>

#include "pipeline/errors.h"

namespace dsir {

UpscaledLayout read_upscaled_layout(const h5::File& file) {
  const std::string& path = file.path();
  for (const char* d : {"/inputs", "/labels"})
    if (!file.has(d))
      throw InputError(path + ": missing dataset " + std::string(d) + " (not an upscaled.h5?)");
  const h5::Dims d = file.shape("/inputs");
  if (d.size() != 3 || file.shape("/labels") != d)
    throw InputError(path + ": /inputs and /labels must both be frames x height x width");
  // A training frame is a patch of at most a few thousand pixels a side; the bound keeps
  // height * width (one frame, allocated per batch item) far from overflow.
  constexpr uint64_t kMaxSide = uint64_t(1) << 16;
  if (d[0] == 0 || d[1] == 0 || d[2] == 0 || d[1] > kMaxSide || d[2] > kMaxSide)
    throw InputError(path + ": /inputs is " + std::to_string(d[0]) + " x " + std::to_string(d[1]) + " x " +
                     std::to_string(d[2]) + "; expected frames of 1 to " + std::to_string(kMaxSide) +
                     " pixels a side");
  for (const char* a : {"factor", "raw_pixel_size_nm", "normalize"})
    if (!file.has_attr("/", a)) throw InputError(path + ": missing attribute " + std::string(a));
  UpscaledLayout l;
  l.frames = d[0];
  l.height = static_cast<int64_t>(d[1]);
  l.width = static_cast<int64_t>(d[2]);
  l.factor = static_cast<int>(file.attr_int("/", "factor", 1, 32));  // upscale.factor's range
  l.raw_pixel_size_nm = file.attr_double("/", "raw_pixel_size_nm");
  if (!(l.raw_pixel_size_nm > 0) || !std::isfinite(l.raw_pixel_size_nm))
    throw InputError(path + ": attribute raw_pixel_size_nm must be a finite number > 0, got " +
                     std::to_string(l.raw_pixel_size_nm));
  l.normalize = file.attr_string("/", "normalize");
  return l;
}

UpscaledFileWriter::UpscaledFileWriter(const std::string& path, uint64_t items, int height, int width,
                                       const h5::Attributes& provenance)
    : file_(h5::File::create(path, provenance)) {
  const h5::Dims dims{items, static_cast<uint64_t>(height), static_cast<uint64_t>(width)};
  const h5::Dims chunk{1, static_cast<uint64_t>(height), static_cast<uint64_t>(width)};
  file_.create_dataset("/inputs", h5::DType::f32, dims, chunk, 4);
  file_.create_dataset("/labels", h5::DType::f32, dims, chunk, 4);
}

void UpscaledFileWriter::write(uint64_t first, uint64_t count, const float* inputs, const float* labels) {
  file_.write_rows("/inputs", first, count, inputs);
  file_.write_rows("/labels", first, count, labels);
}

void UpscaledFileWriter::commit(const UpscaledFileInfo& info) {
  file_.set_attr("/", "factor", static_cast<double>(info.factor));
  file_.set_attr("/", "raw_pixel_size_nm", info.raw_pixel_size_nm);
  file_.set_attr("/", "pixel_size_nm", info.raw_pixel_size_nm / info.factor);
  file_.set_attr("/", "normalize", info.normalize);
  file_.set_attr("/", "global_mean_std", std::vector<double>{info.global_mean, info.global_std});
  file_.set_attr("/", "labels", info.labels);
  file_.set_attr("/", "source_file", info.source_file);
  file_.set_attr("/", "patch_size", static_cast<double>(info.patch_size));
  file_.set_attr("/", "patches_per_frame", static_cast<double>(info.patches_per_frame));
  file_.set_attr("/labels", "emitters_dropped_outside", static_cast<double>(info.emitters_dropped_outside));
  file_.commit();
}

UpscaledFileReader::UpscaledFileReader(const std::string& path)
    : file_(h5::File::open(path)), layout_(read_upscaled_layout(file_)) {}

std::vector<float> UpscaledFileReader::inputs(uint64_t first, uint64_t count) const {
  return file_.read_rows<float>("/inputs", first, count);
}

std::vector<float> UpscaledFileReader::labels(uint64_t first, uint64_t count) const {
  return file_.read_rows<float>("/labels", first, count);
}

}  // namespace dsir
