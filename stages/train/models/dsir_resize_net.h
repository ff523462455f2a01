#pragma once
// DSIR's auto-encoder with its one known artefact removed: each ConvTranspose k2 s2 of the
// decoder becomes a x2 nearest-neighbour upsampling and a 3x3 convolution (Odena, Dumoulin & Olah,
// "Deconvolution and Checkerboard Artifacts", Distill 2016). A stride-2 transposed convolution
// paints each output pixel of a 2x2 block with a different kernel tap, so even a constant input
// comes out with a period-2 pattern (the checkerboard in summed maps, issue 14); a convolution
// after upsampling applies the same taps everywhere. All else is DSIR's, BatchNorm sharing
// included, so that the two differ only in that (docs/accuracy.md).
#include <torch/nn/modules/conv.h>

#include "stages/train/models/emitter_net.h"

namespace dsir {

class DsirResizeNetImpl : public EmitterNetImpl {
 public:
  DsirResizeNetImpl();
  torch::Tensor forward(torch::Tensor x) override;

 private:
  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr}, conv3{nullptr}, conv4{nullptr};
  torch::nn::Conv2d upconv1{nullptr}, upconv2{nullptr}, upconv3{nullptr};
  torch::nn::BatchNorm2d bn1{nullptr}, bn2{nullptr}, bn4{nullptr};
};
TORCH_MODULE(DsirResizeNet);

}  // namespace dsir
