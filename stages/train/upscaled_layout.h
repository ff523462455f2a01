#pragma once
// What upscaled.h5 holds (docs/data-format.md): its shape and attributes, read and validated
// without LibTorch (the training reader, UpscaledSet, builds on it; tests/fuzz fuzzes it).
#include <cstdint>
#include <string>

#include "pipeline/h5store.h"

namespace dsir {

struct UpscaledLayout {
  uint64_t frames = 0;
  int64_t height = 0, width = 0;
  int factor = 8;
  double raw_pixel_size_nm = 0;
  std::string normalize;
};

// InputError naming the file and what is missing, mismatched or out of range.
UpscaledLayout read_upscaled_layout(const h5::File& file);

}  // namespace dsir
