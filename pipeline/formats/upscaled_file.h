#pragma once
// upscaled.h5 (docs/data-format.md, "upscaled.h5"): its one writer (`upscale`) and its one reader
// (training's UpscaledSet builds on it; tests/fuzz fuzzes it). No LibTorch here.
#include <cstdint>
#include <string>
#include <vector>

#include "pipeline/h5store.h"

namespace dsir {

// The shape and the root attributes a reader needs.
struct UpscaledLayout {
  uint64_t frames = 0;  // items: frames, or patches of frames
  int64_t height = 0, width = 0;
  int factor = 8;
  double raw_pixel_size_nm = 0;
  std::string normalize;
};

// Every root attribute `upscale` records.
struct UpscaledFileInfo {
  int factor = 8;
  double raw_pixel_size_nm = 0;
  std::string normalize, labels, source_file;
  double global_mean = 0, global_std = 1;  // the global normalisation's (0 and 1 when per-frame)
  int patch_size = 0;                      // 0: whole frames
  uint64_t patches_per_frame = 1;
  uint64_t emitters_dropped_outside = 0;  // on /labels
};

class UpscaledFileWriter {
 public:
  // items x height x width of /inputs and /labels (float32, one chunk per item).
  UpscaledFileWriter(const std::string& path, uint64_t items, int height, int width,
                     const h5::Attributes& provenance);
  // Items [first, first + count): count x height x width inputs and as many labels.
  void write(uint64_t first, uint64_t count, const float* inputs, const float* labels);
  // Records the attributes and renames the file to its final name.
  void commit(const UpscaledFileInfo& info);

 private:
  h5::File file_;
};

class UpscaledFileReader {
 public:
  explicit UpscaledFileReader(const std::string& path);  // InputError naming what is missing
  const UpscaledLayout& layout() const { return layout_; }
  // Items [first, first + count) of /inputs and of /labels, count x height x width each.
  std::vector<float> inputs(uint64_t first, uint64_t count) const;
  std::vector<float> labels(uint64_t first, uint64_t count) const;

 private:
  h5::File file_;
  UpscaledLayout layout_;
};

// The layout of an open file: InputError naming the file and what is missing, mismatched or out
// of range.
UpscaledLayout read_upscaled_layout(const h5::File& file);

}  // namespace dsir
