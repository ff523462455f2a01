#include "stages/train/models/dsir_resize_net.h"

#include <torch/nn/functional/upsampling.h>

#include "stages/train/models/model_registry.h"

namespace dsir {

namespace nn = torch::nn;

namespace {

torch::Tensor upsample2(const torch::Tensor& x) {
  return nn::functional::interpolate(
      x,
      nn::functional::InterpolateFuncOptions().scale_factor(std::vector<double>{2, 2}).mode(torch::kNearest));
}

}  // namespace

DsirResizeNetImpl::DsirResizeNetImpl() {
  auto conv = [](int in, int out) { return nn::Conv2dOptions(in, out, 3).padding(1); };
  conv1 = register_module("conv1", nn::Conv2d(conv(1, 16)));
  bn1 = register_module("bn1", nn::BatchNorm2d(16));
  conv2 = register_module("conv2", nn::Conv2d(conv(16, 8)));
  bn2 = register_module("bn2", nn::BatchNorm2d(8));
  conv3 = register_module("conv3", nn::Conv2d(conv(8, 8)));
  upconv1 = register_module("upconv1", nn::Conv2d(conv(8, 8)));
  upconv2 = register_module("upconv2", nn::Conv2d(conv(8, 16)));
  upconv3 = register_module("upconv3", nn::Conv2d(conv(16, 8)));
  conv4 = register_module("conv4", nn::Conv2d(conv(8, 1)));
  bn4 = register_module("bn4", nn::BatchNorm2d(1));

  init_like_dsir();
}

torch::Tensor DsirResizeNetImpl::forward(torch::Tensor x) {
  // Encoder: 3 x (conv, BN, ReLU, 2x2 max-pool), as DSIR.
  x = normalize_relu_pool(bn1, convolve(conv1, x));
  x = normalize_relu_pool(bn2, convolve(conv2, x));
  x = normalize_relu_pool(bn2, convolve(conv3, x));
  // Decoder: 3 x (x2 nearest upsampling, 3x3 conv, BN, ReLU), then conv, BN, ReLU to one channel.
  x = normalize_relu(bn2, convolve(upconv1, upsample2(x)));
  x = normalize_relu(bn1, convolve(upconv2, upsample2(x)));
  x = normalize_relu(bn2, convolve(upconv3, upsample2(x)));
  return normalize_relu(bn4, convolve(conv4, x));
}

namespace {
const ModelRegistrar dsir_resize_registrar("dsir-resize",
                                           [] { return std::make_shared<DsirResizeNetImpl>(); });
}

}  // namespace dsir
