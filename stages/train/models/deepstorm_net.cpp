#include "stages/train/models/deepstorm_net.h"

#include "stages/train/models/model_registry.h"

namespace dsir {

namespace nn = torch::nn;

DeepStormNetImpl::DeepStormNetImpl() {
  const int channels[][2] = {{1, 32}, {32, 64}, {64, 128}, {128, 512}, {512, 128}, {128, 64}, {64, 32}};
  for (int i = 0; i < 7; ++i) {
    const auto [in, out] = channels[i];
    convs_.push_back(register_module("conv" + std::to_string(i + 1),
                                     nn::Conv2d(nn::Conv2dOptions(in, out, 3).padding(1).bias(false))));
    norms_.push_back(register_module("bn" + std::to_string(i + 1), nn::BatchNorm2d(out)));
  }
  head_ = register_module("head", nn::Conv2d(nn::Conv2dOptions(32, 1, 1).bias(false)));
  up_ = register_module(
      "up",
      nn::Upsample(nn::UpsampleOptions().scale_factor(std::vector<double>{2, 2}).mode(torch::kNearest)));
}

torch::Tensor DeepStormNetImpl::block(int i, const torch::Tensor& x) {
  return normalize_relu(norms_[static_cast<size_t>(i)], convolve(convs_[static_cast<size_t>(i)], x));
}

torch::Tensor DeepStormNetImpl::pooled_block(int i, const torch::Tensor& x) {
  return normalize_relu_pool(norms_[static_cast<size_t>(i)], convolve(convs_[static_cast<size_t>(i)], x));
}

torch::Tensor DeepStormNetImpl::forward(torch::Tensor x) {
  // Encoder.
  x = pooled_block(0, x);
  x = pooled_block(1, x);
  x = pooled_block(2, x);
  x = block(3, x);
  // Decoder.
  x = block(4, up_(x));
  x = block(5, up_(x));
  x = block(6, up_(x));
  return convolve(head_, x);
}

namespace {
const ModelRegistrar deepstorm_registrar("deepstorm", [] { return std::make_shared<DeepStormNetImpl>(); });
}

}  // namespace dsir
