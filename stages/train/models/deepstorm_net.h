#pragma once
// Deep-STORM (Nehme et al., Optica 2018): a fully convolutional encoder-decoder.
// Encoder conv-BN-ReLU 32, 64, 128, 512 with 2x2 max-pooling between; decoder x2 upsampling +
// conv-BN-ReLU 128, 64, 32; a 1x1 convolution to one channel. 3x3 kernels, no biases.
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/upsampling.h>

#include "stages/train/models/emitter_net.h"

namespace dsir {

class DeepStormNetImpl : public EmitterNetImpl {
 public:
  DeepStormNetImpl();
  torch::Tensor forward(torch::Tensor x) override;

 private:
  // One conv-BN-ReLU block, and one followed by 2x2 max-pooling.
  torch::Tensor block(int i, const torch::Tensor& x);
  torch::Tensor pooled_block(int i, const torch::Tensor& x);
  std::vector<torch::nn::Conv2d> convs_;
  std::vector<torch::nn::BatchNorm2d> norms_;
  torch::nn::Conv2d head_{nullptr};
  torch::nn::Upsample up_{nullptr};
};
TORCH_MODULE(DeepStormNet);

}  // namespace dsir
