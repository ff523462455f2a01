#pragma once
// A network that convolves at the camera's resolution and paints the emitter map through a
// sub-pixel shuffle (Shi et al., CVPR 2016; DECODE and LiteLoc also work at camera pixels).
// DSIR's and Deep-STORM's convolutions run on the x8 upscaled frame, 64 pixels per camera pixel,
// so their width is bought at 64x the cost. Here the upscaled frame is folded back losslessly into
// 64 channels per camera pixel (pixel_unshuffle), six 3x3 conv-BN-ReLU layers of 48 channels (two
// dilated: a 17-pixel field of view) work at camera pixels, and a 3x3 convolution to 64 channels is
// unfolded into the 8x8 sub-pixels of each camera pixel (pixel_shuffle): the same map as the
// other nets at ~3x DSIR's arithmetic, for frames of any size. The head starts ICNR-initialised
// (each camera pixel's sub-pixels alike), so the shuffle adds no 8x8 grid of its own at the start.
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/conv.h>

#include <vector>

#include "stages/train/models/emitter_net.h"

namespace dsir {

class SubpixelNetImpl : public EmitterNetImpl {
 public:
  static constexpr int kFactor = 8;     // sub-pixels per camera pixel and axis (the upscale factor)
  static constexpr int kChannels = 48;  // width of the layers at camera resolution
  SubpixelNetImpl();
  torch::Tensor forward(torch::Tensor x) override;
  int required_factor() const override { return kFactor; }

 protected:
  // The trunk and a head of `head_channels` outputs per camera pixel, not yet initialised (the
  // shuffle's ICNR is the public constructor's).
  explicit SubpixelNetImpl(int head_channels);
  // The head's output at camera pixels: (N, head channels, H / 8, W / 8) for an upscaled
  // (N, 1, H, W) frame.
  torch::Tensor head(torch::Tensor x);

 private:
  std::vector<torch::nn::Conv2d> convs_;
  std::vector<torch::nn::BatchNorm2d> norms_;
  torch::nn::Conv2d head_{nullptr};
};
TORCH_MODULE(SubpixelNet);

}  // namespace dsir
