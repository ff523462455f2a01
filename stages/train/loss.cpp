#include "stages/train/loss.h"

#include <ATen/ops/conv2d.h>
#include <ATen/ops/mse_loss.h>
#include <ATen/ops/zeros.h>

#include <cmath>

namespace dsir {

torch::Tensor gaussian_kernel(int width, double fwhm) {
  torch::Tensor k = at::zeros({1, 1, width, width}, at::kFloat);
  auto a = k.accessor<float, 4>();
  const double c = (width - 1) / 2.0;
  for (int i = 0; i < width; ++i)
    for (int j = 0; j < width; ++j) {
      const double r2 = (i - c) * (i - c) + (j - c) * (j - c);
      a[0][0][i][j] = static_cast<float>(std::exp(-4.0 * std::log(2.0) * r2 / (fwhm * fwhm)));
    }
  return k;
}

BlurredMseLoss::BlurredMseLoss(int kernel_width, double fwhm)
    : kernel_(gaussian_kernel(kernel_width, fwhm)), padding_(kernel_width / 2) {}

torch::Tensor BlurredMseLoss::blur(const torch::Tensor& x) const {
  return at::conv2d(x, kernel_.to(x.device()), /*bias=*/{}, /*stride=*/1, /*padding=*/padding_);
}

torch::Tensor BlurredMseLoss::operator()(const torch::Tensor& prediction, const torch::Tensor& label) const {
  return at::mse_loss(blur(prediction), blur(label));
}

}  // namespace dsir
