#include "stages/train/models/batch_upscale.h"

#include <ATen/ops/from_blob.h>
#include <ATen/ops/matmul.h>
#include <ATen/ops/where.h>

namespace dsir {

namespace {
torch::Tensor resize_weights(int64_t n, int factor, const torch::Device& device) {
  std::vector<float> m = resize_matrix(static_cast<int>(n), factor);
  return at::from_blob(m.data(), {n * factor, n}, torch::kFloat)
      .to(device, /*non_blocking=*/false, /*copy=*/true);
}
}  // namespace

torch::Tensor upscale_batch(const torch::Tensor& raw, int factor, Normalization norm, double global_mean,
                            double global_std) {
  const int64_t h = raw.size(1), w = raw.size(2);
  const torch::Tensor rows = resize_weights(h, factor, raw.device());  // (fH, H)
  const torch::Tensor cols = resize_weights(w, factor, raw.device());  // (fW, W)
  torch::Tensor up = at::matmul(at::matmul(rows, raw.to(torch::kFloat)), cols.t()).unsqueeze(1);
  if (norm == Normalization::PerFrame) {
    // Statistics in double, as zscore(); a constant frame becomes all zeros.
    const torch::Tensor d = up.to(torch::kDouble);
    const torch::Tensor mean = d.mean({1, 2, 3}, /*keepdim=*/true);
    const torch::Tensor sd = (d - mean).pow(2).mean({1, 2, 3}, /*keepdim=*/true).sqrt();
    const torch::Tensor inv = at::where(sd > 0, 1.0 / sd, at::zeros_like(sd));
    return ((d - mean) * inv).to(torch::kFloat);
  }
  if (norm == Normalization::Global) {
    const double inv = global_std > 0 ? 1.0 / global_std : 0.0;
    return ((up.to(torch::kDouble) - global_mean) * inv).to(torch::kFloat);
  }
  return up;
}

}  // namespace dsir
