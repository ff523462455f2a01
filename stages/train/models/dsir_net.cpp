#include "stages/train/models/dsir_net.h"

#include "stages/train/models/model_registry.h"

namespace dsir {

namespace nn = torch::nn;

DsirNetImpl::DsirNetImpl() {
  auto conv = [](int in, int out) { return nn::Conv2dOptions(in, out, 3).padding(1); };
  auto up = [](int in, int out) { return nn::ConvTranspose2dOptions(in, out, 2).stride(2); };
  conv1 = register_module("conv1", nn::Conv2d(conv(1, 16)));
  bn1 = register_module("bn1", nn::BatchNorm2d(16));
  conv2 = register_module("conv2", nn::Conv2d(conv(16, 8)));
  bn2 = register_module("bn2", nn::BatchNorm2d(8));
  conv3 = register_module("conv3", nn::Conv2d(conv(8, 8)));
  convt1 = register_module("convt1", nn::ConvTranspose2d(up(8, 8)));
  convt2 = register_module("convt2", nn::ConvTranspose2d(up(8, 16)));
  convt3 = register_module("convt3", nn::ConvTranspose2d(up(16, 8)));
  conv4 = register_module("conv4", nn::Conv2d(conv(8, 1)));
  bn4 = register_module("bn4", nn::BatchNorm2d(1));

  init_like_dsir();
}

torch::Tensor DsirNetImpl::forward(torch::Tensor x) {
  // Encoder: 3 x (conv, BN, ReLU, 2x2 max-pool).
  x = normalize_relu_pool(bn1, convolve(conv1, x));
  x = normalize_relu_pool(bn2, convolve(conv2, x));
  x = normalize_relu_pool(bn2, convolve(conv3, x));
  // Decoder: 3 x (transposed conv x2, BN, ReLU), then conv, BN, ReLU to one channel.
  x = normalize_relu(bn2, convolve(convt1, x));
  x = normalize_relu(bn1, convolve(convt2, x));
  x = normalize_relu(bn2, convolve(convt3, x));
  return normalize_relu(bn4, convolve(conv4, x));
}

namespace {

std::vector<float> to_vector(const torch::Tensor& t) {
  const torch::Tensor c = t.detach().to(torch::kCPU, torch::kFloat).contiguous();
  return {c.data_ptr<float>(), c.data_ptr<float>() + c.numel()};
}

DsirCpuWeights::Conv conv_weights(const torch::nn::Conv2d& c) {
  return {to_vector(c->weight), to_vector(c->bias)};
}
DsirCpuWeights::Conv conv_weights(const torch::nn::ConvTranspose2d& c) {
  return {to_vector(c->weight), to_vector(c->bias)};
}
DsirCpuWeights::BatchNorm bn_weights(const torch::nn::BatchNorm2d& b) {
  return {to_vector(b->weight), to_vector(b->bias), to_vector(b->running_mean), to_vector(b->running_var),
          b->options.eps()};
}

}  // namespace

DsirCpuWeights DsirNetImpl::cpu_weights() const {
  DsirCpuWeights w;
  w.conv1 = conv_weights(conv1);
  w.conv2 = conv_weights(conv2);
  w.conv3 = conv_weights(conv3);
  w.conv4 = conv_weights(conv4);
  w.convt1 = conv_weights(convt1);
  w.convt2 = conv_weights(convt2);
  w.convt3 = conv_weights(convt3);
  w.bn1 = bn_weights(bn1);
  w.bn2 = bn_weights(bn2);
  w.bn4 = bn_weights(bn4);
  w.per_frame_bn = bn_mode() == BnMode::PerFrame;
  return w;
}

namespace {
const ModelRegistrar dsir_registrar("dsir", [] { return std::make_shared<DsirNetImpl>(); });
}

}  // namespace dsir
