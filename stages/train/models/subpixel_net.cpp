#include "stages/train/models/subpixel_net.h"

#include <ATen/ops/pixel_shuffle.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "pipeline/errors.h"
#include "stages/train/models/model_registry.h"

namespace dsir {

namespace nn = torch::nn;

SubpixelNetImpl::SubpixelNetImpl(int head_channels) {
  constexpr int kSubpixels = kFactor * kFactor;
  // in channels, dilation: the dilated middle layers widen the field of view to 17 camera pixels.
  const int layers[][2] = {{kSubpixels, 1}, {kChannels, 1}, {kChannels, 2},
                           {kChannels, 2},  {kChannels, 1}, {kChannels, 1}};
  for (size_t i = 0; i < std::size(layers); ++i) {
    const auto [in, dilation] = layers[i];
    convs_.push_back(register_module(
        "conv" + std::to_string(i + 1),
        nn::Conv2d(nn::Conv2dOptions(in, kChannels, 3).padding(dilation).dilation(dilation).bias(false))));
    norms_.push_back(register_module("bn" + std::to_string(i + 1), nn::BatchNorm2d(kChannels)));
  }
  head_ = register_module("head", nn::Conv2d(nn::Conv2dOptions(kChannels, head_channels, 3).padding(1)));
}

SubpixelNetImpl::SubpixelNetImpl() : SubpixelNetImpl(kFactor * kFactor) {
  // ICNR (Aitken et al. 2017): every sub-pixel starts with the same kernel, so the untrained net
  // paints each camera pixel's 8x8 block flat (nearest-neighbour upsampling) instead of a grid.
  torch::NoGradGuard no_grad;
  head_->weight.copy_(head_->weight.narrow(0, 0, 1).expand_as(head_->weight));
  head_->bias.fill_(0);
}

torch::Tensor SubpixelNetImpl::head(torch::Tensor x) {
  if (x.dim() != 4 || x.size(2) % kFactor != 0 || x.size(3) % kFactor != 0)
    throw Error(fmt::format("subpixel net: expected an upscaled frame of whole camera pixels (x{}), got {}",
                            kFactor, fmt::join(x.sizes().vec(), "x")));
  // Each camera pixel's 8x8 upscaled values become its 64 channels: pixel_unshuffle, written out
  // because LibTorch 1.13's returns an empty batch unfolded (a rank without frames in a step of
  // synchronised BatchNorm).
  const int64_t n = x.size(0), h = x.size(2) / kFactor, w = x.size(3) / kFactor;
  x = x.reshape({n, 1, h, kFactor, w, kFactor})
          .permute({0, 1, 3, 5, 2, 4})
          .reshape({n, kFactor * kFactor, h, w});
  for (size_t i = 0; i < convs_.size(); ++i) x = normalize_relu(norms_[i], convolve(convs_[i], x));
  return convolve(head_, x);
}

torch::Tensor SubpixelNetImpl::forward(torch::Tensor x) {
  // Each camera pixel's 64 output channels become its 8x8 sub-pixels of the emitter map.
  return at::pixel_shuffle(head(std::move(x)), kFactor);
}

namespace {
const ModelRegistrar subpixel_registrar("subpixel", [] { return std::make_shared<SubpixelNetImpl>(); });
}

}  // namespace dsir
