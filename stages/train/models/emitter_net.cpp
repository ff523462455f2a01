#include "stages/train/models/emitter_net.h"

#include <ATen/Context.h>
#include <ATen/ops/batch_norm.h>
#include <ATen/ops/instance_norm.h>
#include <ATen/ops/max_pool2d.h>
#include <ATen/ops/relu.h>
#include <torch/nn/functional/conv.h>
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

torch::Dtype parse_precision(const std::string& name) {
  if (name == "float32") return torch::kFloat;
  if (name == "bfloat16") return torch::kBFloat16;
  throw ConfigError("unknown precision '" + name + "' (float32, bfloat16)");
}

torch::Tensor EmitterNetImpl::own_loss(const torch::Tensor&, const torch::Tensor&) {
  throw Error("this model trains on DSIR's loss of its map; it has no loss of its own");
}

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

namespace {

// torch.nn.BatchNorm2d's training forward, with the running statistics updated through a private
// copy. DSIR uses one BatchNorm layer several times in a forward (bn2 four times); LibTorch 1.13's
// channels-last CPU kernel saves the running statistics for backward, so each later use's in-place
// update would invalidate the earlier uses' graph ("modified by an inplace operation").
torch::Tensor batch_norm_training(torch::nn::BatchNorm2dImpl& bn, const torch::Tensor& x) {
  const auto& o = bn.options;
  if (!o.track_running_stats()) return bn.forward(x);
  torch::Tensor mean = bn.running_mean.clone(), var = bn.running_var.clone();
  double momentum = 0;
  {
    torch::NoGradGuard no_grad;
    bn.num_batches_tracked.add_(1);
    momentum = o.momentum() ? *o.momentum() : 1.0 / bn.num_batches_tracked.item<double>();
  }
  torch::Tensor y = at::batch_norm(x, bn.weight, bn.bias, mean, var, /*training=*/true, momentum, o.eps(),
                                   at::globalContext().userEnabledCuDNN());
  torch::NoGradGuard no_grad;
  bn.running_mean.copy_(mean);
  bn.running_var.copy_(var);
  return y;
}

}  // namespace

torch::Tensor EmitterNetImpl::normalize(torch::nn::BatchNorm2d& bn, const torch::Tensor& x) {
  if (is_training() && sync_bn_) return sync_batch_norm(bn, x, *sync_bn_);
  if (is_training()) return batch_norm_training(*bn, x);
  if (bn_mode_ == BnMode::Running) return bn->forward(x);
  return at::instance_norm(x, bn->weight, bn->bias, /*running_mean=*/{}, /*running_var=*/{},
                           /*use_input_stats=*/true, /*momentum=*/0.0, bn->options.eps(),
                           /*cudnn_enabled=*/false);
}

void EmitterNetImpl::set_conv_precision(torch::Dtype dtype) {
  if (dtype != torch::kFloat && dtype != torch::kBFloat16)
    throw Error(std::string("conv precision: expected float32 or bfloat16, got ") + c10::toString(dtype));
  conv_precision_ = dtype;
}

namespace {

namespace F = torch::nn::functional;

torch::Tensor cast_or_none(const torch::Tensor& t, torch::Dtype dtype) {
  return t.defined() ? t.to(dtype) : t;
}

bool zero_padded(const torch::nn::detail::conv_padding_mode_t& mode) {
  return torch::enumtype::get_enum_name(mode) == "kZeros";
}

// conv(x) computed in `dtype`. The casts are autograd ops: the gradients reach x and the float32
// parameters cast back. Zero padding only (every model's); other modes compute in float32.
torch::Tensor convolve_in(torch::Dtype dtype, torch::nn::Conv2dImpl& conv, const torch::Tensor& x) {
  const auto& o = conv.options;
  if (!zero_padded(o.padding_mode())) return conv.forward(x);
  const auto options = F::Conv2dFuncOptions()
                           .bias(cast_or_none(conv.bias, dtype))
                           .stride(o.stride())
                           .padding(o.padding())
                           .dilation(o.dilation())
                           .groups(o.groups());
  return F::conv2d(x.to(dtype), conv.weight.to(dtype), options).to(x.scalar_type());
}

}  // namespace

torch::Tensor EmitterNetImpl::convolve(torch::nn::Conv2d& conv, const torch::Tensor& x) {
  if (cpu_conv3x3_supported(*conv, x)) return cpu_conv3x3(*conv, x);
  if (conv_precision_ != x.scalar_type()) return convolve_in(conv_precision_, *conv, x);
  return conv(x);
}

torch::Tensor EmitterNetImpl::convolve(torch::nn::ConvTranspose2d& conv, const torch::Tensor& x) {
  // Always float32: LibTorch 1.13 sends bfloat16 transposed convolutions on a CPU to its forward
  // convolution kernel (a shape error).
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
