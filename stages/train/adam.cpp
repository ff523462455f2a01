#include "stages/train/adam.h"

#include <ATen/ops/zeros_like.h>
#include <torch/csrc/autograd/grad_mode.h>

#include <cmath>

namespace dsir {

Adam::Adam(std::vector<torch::Tensor> params, AdamOptions options)
    : params_(std::move(params)), opt_(options) {
  for (const auto& p : params_) {
    m_.push_back(at::zeros_like(p));
    v_.push_back(at::zeros_like(p));
  }
}

void Adam::zero_grad() {
  for (auto& p : params_)
    if (p.grad().defined()) p.mutable_grad().zero_();
}

void Adam::step() {
  torch::NoGradGuard no_grad;
  ++step_;
  const double bc1 = 1 - std::pow(opt_.beta1, static_cast<double>(step_));
  const double bc2 = 1 - std::pow(opt_.beta2, static_cast<double>(step_));
  const double step_size = opt_.lr / bc1;
  for (size_t i = 0; i < params_.size(); ++i) {
    torch::Tensor& p = params_[i];
    if (!p.grad().defined()) continue;
    torch::Tensor g = p.grad();
    if (opt_.weight_decay != 0) g = g.add(p, opt_.weight_decay);
    m_[i].mul_(opt_.beta1).add_(g, 1 - opt_.beta1);
    v_[i].mul_(opt_.beta2).addcmul_(g, g, 1 - opt_.beta2);
    torch::Tensor denom = (v_[i].sqrt() / std::sqrt(bc2)).add_(opt_.eps);
    p.addcdiv_(m_[i], denom, -step_size);
  }
}

}  // namespace dsir
