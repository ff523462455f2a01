#pragma once
// upscaled.h5 (docs/data-format.md) read a batch at a time: memory is one batch, not the set.
#include <torch/types.h>

#include <string>
#include <vector>

#include "pipeline/h5store.h"

namespace dsir {

class UpscaledSet {
 public:
  explicit UpscaledSet(const std::string& path);  // InputError naming what is missing
  // (n, 1, H, W) inputs and labels (× label_scale) for the given frame indices.
  std::pair<torch::Tensor, torch::Tensor> batch(const std::vector<uint64_t>& frames, double label_scale) const;

  uint64_t frames = 0;
  int64_t height = 0, width = 0;
  int factor = 8;
  double raw_pixel_size_nm = 0;
  std::string normalize;

 private:
  h5::File file_;
};

}  // namespace dsir
