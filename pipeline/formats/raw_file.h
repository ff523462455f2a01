#pragma once
// raw.h5 (docs/data-format.md, "raw.h5"): its one writer (frame by frame, atomically; `ingest`, and
// `simulate` when it writes raw.h5 directly) and its one reader (`upscale`, `train`, `infer`, `predict`,
// `calibrate`, `evaluate`'s ground truth).
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "pipeline/csv.h"
#include "pipeline/h5store.h"

namespace dsir {

struct RawFileInfo {
  uint64_t frames = 0;
  uint32_t width = 0, height = 0;
  bool float32 = false;  // /frames as float32 (sources over 16 bits or float), else uint16
  double pixel_size_nm = 0;
  std::string camera_json;   // the `camera` attribute
  std::string source_files;  // newline-separated
};

class RawFileWriter {
 public:
  RawFileWriter(const std::string& path, const RawFileInfo& info, const h5::Attributes& provenance);
  // Frames in order, info.frames of them: uint16 for a uint16 file, float for a float32 one.
  void write_frame(const uint16_t* pixels);
  void write_frame(const float* pixels);
  // The ground-truth table and its attributes (optional).
  void set_emitters(const std::vector<Emitter>& emitters, const std::string& source_file,
                    uint64_t outside_field_of_view);
  // Error unless every frame was written; renames the file to its final name.
  void commit();
  uint64_t frames_written() const { return written_; }

 private:
  h5::File file_;
  RawFileInfo info_;
  uint64_t written_ = 0;
};

// Reading raw.h5: frames as float, pixel size, ground truth by frame.
class RawFileReader {
 public:
  explicit RawFileReader(const std::string& path);  // InputError naming what is missing
  const std::string& path() const { return path_; }
  uint64_t frames() const { return frames_; }
  int height() const { return height_; }
  int width() const { return width_; }
  double pixel_size_nm() const { return pixel_size_nm_; }
  bool has_emitters() const { return file_.has("/emitters"); }

  std::vector<float> read(uint64_t first, uint64_t count) const;  // count x height x width
  // All ground-truth emitters, or empty when the file has none.
  std::vector<Emitter> emitters() const;
  // Dataset mean and std of the raw pixel values (for global normalisation), over all frames.
  std::pair<double, double> mean_std() const;

 private:
  std::string path_;
  h5::File file_;
  uint64_t frames_ = 0;
  int height_ = 0, width_ = 0;
  double pixel_size_nm_ = 0;
};

// Emitters outside [0, width) x [0, height) nm: kept as truth, counted and reported.
uint64_t count_outside(const std::vector<Emitter>& emitters, double width_nm, double height_nm);

}  // namespace dsir
