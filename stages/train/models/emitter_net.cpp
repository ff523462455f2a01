#include "stages/train/models/emitter_net.h"

#include <ATen/ops/instance_norm.h>
#include <ATen/ops/max_pool2d.h>
#include <ATen/ops/relu.h>
#include <torch/nn/init.h>

#include "pipeline/errors.h"
#include "stages/train/models/cpu_conv.h"
#include "stages/train/models/fused_batch_norm.h"
#include "stages/train/models/sync_batch_norm.h"

namespace dsir {

BnMode parse_bn_mode(const std::string& name) {
  if (name == "running") return BnMode::Running;
  if (name == "per-frame") return BnMode::PerFrame;
  throw ConfigError("unknown BatchNorm mode '" + name + "' (running, per-frame)");
}

std::string to_string(BnMode mode) { return mode == BnMode::Running ? "running" : "per-frame"; }

void EmitterNetImpl::init_like_dsir() {
  torch::NoGradGuard no_grad;
  for (auto& p : named_parameters()) {
    if (p.key().find("conv") == std::string::npos) continue;  // BatchNorm keeps its own init
    if (p.key().find("weight") != std::string::npos)
      torch::nn::init::xavier_normal_(p.value());
    else
      torch::nn::init::normal_(p.value());
  }
}

torch::Tensor EmitterNetImpl::normalize(torch::nn::BatchNorm2d& bn, const torch::Tensor& x) {
  if (is_training() && sync_bn_) return sync_batch_norm(bn, x, *sync_bn_);
  if (is_training() || bn_mode_ == BnMode::Running) return bn->forward(x);
  return at::instance_norm(x, bn->weight, bn->bias, /*running_mean=*/{}, /*running_var=*/{},
                           /*use_input_stats=*/true, /*momentum=*/0.0, bn->options.eps(),
                           /*cudnn_enabled=*/false);
}

torch::Tensor EmitterNetImpl::convolve(torch::nn::Conv2d& conv, const torch::Tensor& x) {
  if (cpu_conv3x3_supported(*conv, x)) return cpu_conv3x3(*conv, x);
  return conv(x);
}

torch::Tensor EmitterNetImpl::convolve(torch::nn::ConvTranspose2d& conv, const torch::Tensor& x) {
  if (cpu_conv_transpose2x2_supported(*conv, x)) return cpu_conv_transpose2x2(*conv, x);
  return conv(x);
}

torch::Tensor EmitterNetImpl::normalize_relu(torch::nn::BatchNorm2d& bn, const torch::Tensor& x) {
  if (is_training() && fused_bn_relu_supported(x)) return fused_bn_relu(bn, x, /*pool=*/false, sync_bn_);
  return at::relu(normalize(bn, x));
}

torch::Tensor EmitterNetImpl::normalize_relu_pool(torch::nn::BatchNorm2d& bn, const torch::Tensor& x) {
  if (is_training() && fused_bn_relu_supported(x)) return fused_bn_relu(bn, x, /*pool=*/true, sync_bn_);
  return at::max_pool2d(at::relu(normalize(bn, x)), /*kernel_size=*/2, /*stride=*/2);
}

}  // namespace dsir
