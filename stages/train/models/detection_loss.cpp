#include "stages/train/models/detection_loss.h"

#include <fmt/format.h>

#include <cmath>
#include <vector>

#include "pipeline/errors.h"

namespace dsir {

EmitterTargets emitter_targets(const torch::Tensor& labels, int factor) {
  if (labels.dim() != 4 || labels.size(1) != 1) throw Error("detector: label maps must be (N, 1, H, W)");
  const torch::Tensor maps = labels.to(torch::kCPU, torch::kFloat).contiguous();
  const int64_t n = maps.size(0), h = maps.size(2), w = maps.size(3);
  std::vector<std::vector<float>> xy(static_cast<size_t>(n));
  size_t most = 1;
  for (int64_t f = 0; f < n; ++f) {
    const float* m = maps.data_ptr<float>() + f * h * w;
    auto& frame = xy[static_cast<size_t>(f)];
    for (int64_t i = 0; i < h * w; ++i) {
      if (m[i] == 0) continue;
      const double emitters = std::round(m[i]);
      if (emitters < 1 || std::abs(m[i] - emitters) > 1e-3)
        throw InputError(
            fmt::format("detector: label {} at item {} of the batch, sub-pixel ({}, {}) is not a whole "
                        "number of emitters; "
                        "the detector learns from point labels (upscale.labels: dsir or deepstorm)",
                        m[i], f, i / w, i % w));
      for (int k = 0; k < static_cast<int>(emitters); ++k) {
        frame.push_back(static_cast<float>((static_cast<double>(i % w) + 0.5) / factor));
        frame.push_back(static_cast<float>((static_cast<double>(i / w) + 0.5) / factor));
      }
    }
    most = std::max(most, frame.size() / 2);
  }
  const auto m = static_cast<int64_t>(most);
  EmitterTargets t{at::zeros({n, m, 2}), at::zeros({n, m}), at::zeros({n})};
  for (int64_t f = 0; f < n; ++f) {
    const auto& frame = xy[static_cast<size_t>(f)];
    const auto k = static_cast<int64_t>(frame.size() / 2);
    if (k > 0)
      t.xy[f].narrow(0, 0, k).copy_(at::from_blob(const_cast<float*>(frame.data()), {k, 2}, at::kFloat));
    t.valid[f].narrow(0, 0, k).fill_(1);
    t.count[f] = static_cast<double>(k);
  }
  const torch::Device device = labels.device();
  return {t.xy.to(device), t.valid.to(device), t.count.to(device)};
}

torch::Tensor detection_loss(const Detections& d, const EmitterTargets& t) {
  // A floor under the count's variance: with every probability at 0 or 1 it vanishes, and one
  // emitter too many would cost without bound.
  constexpr double kMinCountVariance = 1e-2;
  const double log_2pi = std::log(2 * M_PI);
  const int64_t n = d.logit.size(0);
  const torch::Tensor logit = d.logit.reshape({n, -1});
  const torch::Tensor p = logit.sigmoid();
  const torch::Tensor mean = p.sum(1), variance = (p * (1 - p)).sum(1).clamp_min(kMinCountVariance);
  const torch::Tensor count_nll =
      0.5 * (t.count - mean).square() / variance + 0.5 * (variance.log() + log_2pi);

  // log of each pixel's share of the mixture, p_k / Σp, without dividing by a vanishing sum.
  const torch::Tensor log_p = at::log_sigmoid(logit);
  const torch::Tensor log_weight = log_p - log_p.logsumexp(1, /*keepdim=*/true);   // (n, K)
  auto component = [n](const torch::Tensor& v) { return v.reshape({n, 1, -1}); };  // (n, 1, K)
  const torch::Tensor sx = component(d.sigma_x), sy = component(d.sigma_y);
  const torch::Tensor zx = (t.xy.select(2, 0).unsqueeze(2) - component(d.x)) / sx;  // (n, M, K)
  const torch::Tensor zy = (t.xy.select(2, 1).unsqueeze(2) - component(d.y)) / sy;
  const torch::Tensor log_density = -0.5 * (zx.square() + zy.square()) - sx.log() - sy.log() - log_2pi;
  const torch::Tensor log_likelihood = (log_density + log_weight.unsqueeze(1)).logsumexp(2);  // (n, M)

  return (count_nll * t.count.clamp_min(1) - (log_likelihood * t.valid).sum(1)).mean();
}

}  // namespace dsir
