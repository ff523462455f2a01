#include "stages/train/upscaled_set.h"

#include <ATen/ops/from_blob.h>
#include <ATen/ops/stack.h>

#include "pipeline/errors.h"

namespace dsir {

UpscaledSet::UpscaledSet(const std::string& path) : file_(h5::File::open(path)) {
  for (const char* d : {"/inputs", "/labels"})
    if (!file_.has(d)) throw InputError(path + ": missing dataset " + std::string(d) + " (not an upscaled.h5?)");
  const h5::Dims d = file_.shape("/inputs");
  if (d.size() != 3 || file_.shape("/labels") != d)
    throw InputError(path + ": /inputs and /labels must both be frames x height x width");
  frames = d[0];
  height = static_cast<int64_t>(d[1]);
  width = static_cast<int64_t>(d[2]);
  for (const char* a : {"factor", "raw_pixel_size_nm", "normalize"})
    if (!file_.has_attr("/", a)) throw InputError(path + ": missing attribute " + std::string(a));
  factor = static_cast<int>(file_.attr_double("/", "factor"));
  raw_pixel_size_nm = file_.attr_double("/", "raw_pixel_size_nm");
  normalize = file_.attr_string("/", "normalize");
}

std::pair<torch::Tensor, torch::Tensor> UpscaledSet::batch(const std::vector<uint64_t>& idx,
                                                           double label_scale) const {
  std::vector<torch::Tensor> xs, ys;
  for (uint64_t i : idx) {
    auto x = file_.read_rows<float>("/inputs", i, 1);
    auto y = file_.read_rows<float>("/labels", i, 1);
    xs.push_back(at::from_blob(x.data(), {1, height, width}, torch::kFloat).clone());
    ys.push_back(at::from_blob(y.data(), {1, height, width}, torch::kFloat).clone() * label_scale);
  }
  return {at::stack(xs), at::stack(ys)};
}

}  // namespace dsir
