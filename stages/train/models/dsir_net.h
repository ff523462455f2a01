#pragma once
// DSIR's conv_autoencoder.py, layer for layer, with its BatchNorm sharing kept as written
// (bn2 serves five places, bn1 two): weights from DSIR load by name.
#include <torch/nn/modules/conv.h>

#include "stages/train/models/dsir_cpu_kernel.h"
#include "stages/train/models/emitter_net.h"

namespace dsir {

class DsirNetImpl : public EmitterNetImpl {
 public:
  DsirNetImpl();
  torch::Tensor forward(torch::Tensor x) override;
  // The parameters and BatchNorm buffers as plain arrays, for DsirCpuKernel (inference on a CPU),
  // with the current BatchNorm mode.
  DsirCpuWeights cpu_weights() const;

 private:
  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr}, conv3{nullptr}, conv4{nullptr};
  torch::nn::ConvTranspose2d convt1{nullptr}, convt2{nullptr}, convt3{nullptr};
  torch::nn::BatchNorm2d bn1{nullptr}, bn2{nullptr}, bn4{nullptr};
};
TORCH_MODULE(DsirNet);

}  // namespace dsir
