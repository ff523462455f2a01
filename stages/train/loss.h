#pragma once
// DSIR's loss: MSE between prediction and label, each convolved with an unnormalised Gaussian
// exp(-4 ln2 r² / FWHM²) of width W (zero padding). Computed as mean(blur(prediction - label)²)
// (the blur is linear), on a CPU as two 1-D passes (the Gaussian is separable).
#include <torch/types.h>

#include <vector>

namespace dsir {

torch::Tensor gaussian_kernel(int width, double fwhm);  // (1, 1, W, W), float32

class BlurredMseLoss {
 public:
  BlurredMseLoss(int kernel_width, double fwhm);
  torch::Tensor operator()(const torch::Tensor& prediction, const torch::Tensor& label) const;
  torch::Tensor blur(const torch::Tensor& x) const;

 private:
  torch::Tensor kernel_;
  std::vector<float> taps_;  // the 1-D factor: kernel_ = taps_ ⊗ taps_
  int padding_;
};

}  // namespace dsir
