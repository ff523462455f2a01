#include "stages/train/models/emitter_net.h"

#include <ATen/ops/instance_norm.h>

#include "pipeline/errors.h"
#include "stages/train/models/sync_batch_norm.h"

namespace dsir {

BnMode parse_bn_mode(const std::string& name) {
  if (name == "running") return BnMode::Running;
  if (name == "per-frame") return BnMode::PerFrame;
  throw ConfigError("unknown BatchNorm mode '" + name + "' (running, per-frame)");
}

std::string to_string(BnMode mode) { return mode == BnMode::Running ? "running" : "per-frame"; }

torch::Tensor EmitterNetImpl::normalize(torch::nn::BatchNorm2d& bn, const torch::Tensor& x) {
  if (is_training() && sync_bn_) return sync_batch_norm(bn, x, *sync_bn_);
  if (is_training() || bn_mode_ == BnMode::Running) return bn->forward(x);
  return at::instance_norm(x, bn->weight, bn->bias, /*running_mean=*/{}, /*running_var=*/{},
                           /*use_input_stats=*/true, /*momentum=*/0.0, bn->options.eps(),
                           /*cudnn_enabled=*/false);
}

}  // namespace dsir
