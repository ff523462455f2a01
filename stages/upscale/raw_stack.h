#pragma once
// Reading raw.h5 (docs/data-format.md): frames as float, pixel size, ground truth by frame.
#include <string>
#include <vector>

#include "pipeline/csv.h"
#include "pipeline/h5store.h"

namespace dsir {

class RawStack {
 public:
  explicit RawStack(const std::string& path);  // InputError naming what is missing
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

}  // namespace dsir
