#include "stages/train/loss.h"

#include <ATen/Parallel.h>
#include <ATen/ops/conv2d.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/full.h>
#include <ATen/ops/zeros.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>
#include <cmath>

namespace dsir {

namespace {

double gaussian(double r2, double fwhm) { return std::exp(-4.0 * std::log(2.0) * r2 / (fwhm * fwhm)); }

// The kernel is the outer product of this with itself: exp(-a(i² + j²)) = exp(-a i²)·exp(-a j²).
std::vector<float> gaussian_taps(int width, double fwhm) {
  std::vector<float> taps(static_cast<size_t>(width));
  const double c = (width - 1) / 2.0;
  for (int i = 0; i < width; ++i)
    taps[static_cast<size_t>(i)] = static_cast<float>(gaussian((i - c) * (i - c), fwhm));
  return taps;
}

// out = the zero-padded 2-D blur of one h x w plane, as a row pass then a column pass; row is a
// scratch plane.
void blur_plane(const float* in, int64_t h, int64_t w, const std::vector<float>& taps, float* row,
                float* out) {
  const int64_t r = static_cast<int64_t>(taps.size()) / 2;
  for (int64_t i = 0; i < h; ++i) {
    const float* src = in + i * w;
    float* dst = row + i * w;
    std::fill(dst, dst + w, 0.0f);
    for (int64_t k = 0; k <= 2 * r; ++k) {
      const float t = taps[static_cast<size_t>(k)];
      const int64_t shift = k - r;  // dst[j] += t·src[j + shift] where 0 <= j + shift < w
      for (int64_t j = std::max<int64_t>(0, -shift); j < std::min(w, w - shift); ++j)
        dst[j] += t * src[j + shift];
    }
  }
  for (int64_t i = 0; i < h; ++i) {
    float* dst = out + i * w;
    std::fill(dst, dst + w, 0.0f);
    for (int64_t k = std::max<int64_t>(0, r - i); k <= 2 * r && i + k - r < h; ++k) {
      const float t = taps[static_cast<size_t>(k)];
      const float* src = row + (i + k - r) * w;
      for (int64_t j = 0; j < w; ++j) dst[j] += t * src[j];
    }
  }
}

// mean(blur(prediction - label)²) on a CPU, planes in parallel: blurring the difference once is
// the same loss as blurring each (the blur is linear), and the blur is separable and symmetric
// (its own adjoint), so the gradient is 2·blur(blur(d))/n.
class BlurredMseFunction : public torch::autograd::Function<BlurredMseFunction> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& prediction,
                               const torch::Tensor& label, const std::vector<float>& taps) {
    const torch::Tensor d = (prediction - label).contiguous();
    torch::Tensor blurred = at::empty_like(d);
    const int64_t h = d.size(-2), w = d.size(-1), planes = d.numel() / std::max<int64_t>(1, h * w);
    std::vector<double> plane_sums(static_cast<size_t>(planes), 0.0);
    at::parallel_for(0, planes, 1, [&](int64_t p0, int64_t p1) {
      std::vector<float> row(static_cast<size_t>(h * w));
      for (int64_t p = p0; p < p1; ++p) {
        float* e = blurred.data_ptr<float>() + p * h * w;
        blur_plane(d.data_ptr<float>() + p * h * w, h, w, taps, row.data(), e);
        double s = 0;
        for (int64_t i = 0; i < h * w; ++i) s += static_cast<double>(e[i]) * e[i];
        plane_sums[static_cast<size_t>(p)] = s;
      }
    });
    double sum = 0;
    for (double s : plane_sums) sum += s;  // plane order: the same bits for any thread count
    ctx->save_for_backward({blurred});
    ctx->saved_data["taps"] = std::vector<double>(taps.begin(), taps.end());
    return at::full({}, sum / static_cast<double>(std::max<int64_t>(1, d.numel())), prediction.options());
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const torch::Tensor blurred = ctx->get_saved_variables()[0];
    const auto taps64 = ctx->saved_data["taps"].toDoubleVector();
    const std::vector<float> taps(taps64.begin(), taps64.end());
    const int64_t h = blurred.size(-2), w = blurred.size(-1),
                  planes = blurred.numel() / std::max<int64_t>(1, h * w);
    const float scale = static_cast<float>(2.0 * grads[0].item<double>() /
                                           static_cast<double>(std::max<int64_t>(1, blurred.numel())));
    torch::Tensor grad = at::empty_like(blurred);
    at::parallel_for(0, planes, 1, [&](int64_t p0, int64_t p1) {
      std::vector<float> row(static_cast<size_t>(h * w));
      for (int64_t p = p0; p < p1; ++p) {
        float* g = grad.data_ptr<float>() + p * h * w;
        blur_plane(blurred.data_ptr<float>() + p * h * w, h, w, taps, row.data(), g);
        for (int64_t i = 0; i < h * w; ++i) g[i] *= scale;
      }
    });
    torch::Tensor grad_label = ctx->needs_input_grad(1) ? -grad : torch::Tensor();
    return {grad, grad_label, torch::Tensor()};
  }
};

bool runs_fused(const torch::Tensor& prediction, const torch::Tensor& label) {
  return prediction.device().is_cpu() && prediction.scalar_type() == torch::kFloat && prediction.dim() == 4 &&
         prediction.size(1) == 1 && label.sizes() == prediction.sizes() &&
         label.scalar_type() == torch::kFloat && label.device().is_cpu();
}

}  // namespace

torch::Tensor gaussian_kernel(int width, double fwhm) {
  torch::Tensor k = at::zeros({1, 1, width, width}, at::kFloat);
  auto a = k.accessor<float, 4>();
  const double c = (width - 1) / 2.0;
  for (int i = 0; i < width; ++i)
    for (int j = 0; j < width; ++j)
      a[0][0][i][j] = static_cast<float>(gaussian((i - c) * (i - c) + (j - c) * (j - c), fwhm));
  return k;
}

BlurredMseLoss::BlurredMseLoss(int kernel_width, double fwhm)
    : kernel_(gaussian_kernel(kernel_width, fwhm)),
      taps_(gaussian_taps(kernel_width, fwhm)),
      padding_(kernel_width / 2) {}

torch::Tensor BlurredMseLoss::blur(const torch::Tensor& x) const {
  return at::conv2d(x, kernel_.to(x.device()), /*bias=*/{}, /*stride=*/1, /*padding=*/padding_);
}

torch::Tensor BlurredMseLoss::operator()(const torch::Tensor& prediction, const torch::Tensor& label) const {
  if (runs_fused(prediction, label)) return BlurredMseFunction::apply(prediction, label, taps_);
  return blur(prediction - label).square().mean();
}

}  // namespace dsir
