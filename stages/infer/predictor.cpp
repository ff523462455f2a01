#include "stages/infer/predictor.h"

#include <ATen/ops/from_blob.h>
#include <torch/csrc/autograd/grad_mode.h>

#include <cstring>

#include "stages/upscale/upscale.h"

namespace dsir {

Predictor::Predictor(const std::string& checkpoint, const std::string& bn, int batch_size)
    : batch_size_(batch_size) {
  model_ = load_model(checkpoint, &meta_);
  if (bn != "checkpoint") model_->set_bn_mode(parse_bn_mode(bn));
  model_->eval();
  checksum_ = model_checksum(*model_);
}

BnMode Predictor::bn_mode() const { return model_->bn_mode(); }

std::vector<float> Predictor::predict(const float* raw, int64_t count, int height, int width,
                                      double global_mean, double global_std) {
  torch::NoGradGuard no_grad;
  const int f = meta_.factor;
  const int64_t oh = static_cast<int64_t>(height) * f, ow = static_cast<int64_t>(width) * f;
  const size_t in_px = static_cast<size_t>(height) * static_cast<size_t>(width);
  const size_t out_px = static_cast<size_t>(oh * ow);
  const Normalization norm = parse_normalization(meta_.normalize);
  std::vector<float> out(static_cast<size_t>(count) * out_px);
  std::vector<float> up;
  for (int64_t b0 = 0; b0 < count; b0 += batch_size_) {
    const int64_t n = std::min<int64_t>(batch_size_, count - b0);
    up.resize(static_cast<size_t>(n) * out_px);
    for (int64_t i = 0; i < n; ++i) {
      const float* frame = raw + static_cast<size_t>(b0 + i) * in_px;
      upscale_frame(frame, height, width, f, norm, global_mean, global_std, up.data() + static_cast<size_t>(i) * out_px);
    }
    torch::Tensor x = at::from_blob(up.data(), {n, 1, oh, ow}, torch::kFloat);
    torch::Tensor y = model_->forward(x).contiguous();
    std::memcpy(out.data() + static_cast<size_t>(b0) * out_px, y.data_ptr<float>(),
                static_cast<size_t>(n) * out_px * sizeof(float));
  }
  return out;
}

}  // namespace dsir
