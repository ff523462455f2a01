#pragma once
// DSIR's loss: MSE between prediction and label, each convolved with an unnormalised Gaussian
// exp(-4 ln2 r² / FWHM²) of width W (zero padding).
#include <torch/types.h>

namespace dsir {

torch::Tensor gaussian_kernel(int width, double fwhm);  // (1, 1, W, W), float32

class BlurredMseLoss {
 public:
  BlurredMseLoss(int kernel_width, double fwhm);
  torch::Tensor operator()(const torch::Tensor& prediction, const torch::Tensor& label) const;
  torch::Tensor blur(const torch::Tensor& x) const;

 private:
  torch::Tensor kernel_;
  int padding_;
};

}  // namespace dsir
