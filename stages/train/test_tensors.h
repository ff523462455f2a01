#pragma once
// Tensor comparisons shared by the training tests (CPU copies, so any devices may be compared).
#include <torch/nn/module.h>

#include <algorithm>

namespace dsir::test {

inline double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.detach().cpu() - b.detach().cpu()).abs().max().item<double>();
}

// max |a - b| relative to max |b|.
inline double max_rel_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return max_abs_diff(a, b) / (b.detach().cpu().abs().max().item<double>() + 1e-12);
}

// The largest gradient entry of a model: the scale to compare its gradients against, since some
// (a convolution's bias before BatchNorm) are zero but for rounding.
inline double max_gradient(torch::nn::Module& model) {
  double m = 0;
  for (const auto& p : model.parameters()) m = std::max(m, p.grad().abs().max().item<double>());
  return m;
}

}  // namespace dsir::test
