#include "stages/ingest/raw_file.h"

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

uint64_t count_outside(const std::vector<Emitter>& emitters, double width_nm, double height_nm) {
  uint64_t n = 0;
  for (const Emitter& e : emitters)
    n += e.x_nm < 0 || e.y_nm < 0 || e.x_nm >= width_nm || e.y_nm >= height_nm;
  return n;
}

}  // namespace dsir
