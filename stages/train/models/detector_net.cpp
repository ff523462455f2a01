#include "stages/train/models/detector_net.h"

#include <ATen/Parallel.h>
#include <ATen/ops/col2im.h>
#include <torch/csrc/autograd/grad_mode.h>

#include <cmath>

#include "stages/train/models/model_registry.h"
#include "stages/upscale/upscale.h"

namespace dsir {

namespace {
enum HeadChannel : int64_t { kLogit, kOffsetX, kOffsetY, kSpreadX, kSpreadY, kHeadChannels };
// At ~6 emitters/um^2 a 100 nm pixel holds an emitter 6 % of the time: the untrained net starts
// near that rate, not at 1/2 (whose count, ~half the frame's pixels, would swamp the first steps).
constexpr double kInitialLogit = -3;
}  // namespace

DetectorNetImpl::DetectorNetImpl() : SubpixelNetImpl(kHeadChannels) {
  torch::NoGradGuard no_grad;
  named_parameters()["head.bias"][kLogit].fill_(kInitialLogit);
}

Detections DetectorNetImpl::detect(torch::Tensor x) {
  const torch::Tensor out = head(std::move(x));  // (N, channels, h, w)
  const auto opts = out.options().dtype(torch::kFloat);
  const torch::Tensor columns = at::arange(out.size(3), opts).add_(0.5).view({1, 1, -1});
  const torch::Tensor rows = at::arange(out.size(2), opts).add_(0.5).view({1, -1, 1});
  // DECODE's ranges: an offset within one pixel of the centre, a spread of 0.01 to 3 pixels.
  auto spread = [&](HeadChannel c) { return 0.01 + 3 * out.select(1, c).sigmoid(); };
  return {out.select(1, kLogit), columns + out.select(1, kOffsetX).tanh(),
          rows + out.select(1, kOffsetY).tanh(), spread(kSpreadX), spread(kSpreadY)};
}

torch::Tensor DetectorNetImpl::forward(torch::Tensor x) {
  return paint_detections(detect(std::move(x)), kFactor, kPaintSigma);
}

torch::Tensor DetectorNetImpl::own_loss(const torch::Tensor& inputs, const torch::Tensor& labels) {
  return detection_loss(detect(inputs), emitter_targets(labels, kFactor));
}

namespace {

// paint_detections without autograd on a CPU: each pixel adds its Gaussian's outer product over
// the sub-pixels within kReachSigmas of its position (the tensor path's 3x3-pixel patch costs
// 576 products per pixel, a third of inference's time).
torch::Tensor paint_on_cpu(const Detections& d, int factor, double sigma) {
  constexpr double kReachSigmas = 6;  // the mass beyond: 2e-9
  const torch::Tensor logit = d.logit.contiguous(), xs = d.x.contiguous(), ys = d.y.contiguous();
  const int64_t n = logit.size(0), h = logit.size(1), w = logit.size(2), mh = h * factor, mw = w * factor;
  torch::Tensor map = at::zeros({n, 1, mh, mw}, logit.options());
  at::parallel_for(0, n, 1, [&](int64_t f0, int64_t f1) {
    for (int64_t f = f0; f < f1; ++f) {
      float* out = map.data_ptr<float>() + f * mh * mw;
      for (int64_t k = f * h * w; k < (f + 1) * h * w; ++k) {
        const double p = 1 / (1 + std::exp(-static_cast<double>(logit.data_ptr<float>()[k])));
        add_gaussian(xs.data_ptr<float>()[k] * factor, ys.data_ptr<float>()[k] * factor, sigma, p,
                     kReachSigmas, mh, mw, out);
      }
    }
  });
  return map;
}

}  // namespace

torch::Tensor paint_detections(const Detections& d, int factor, double sigma) {
  if (d.logit.device().is_cpu() && d.logit.scalar_type() == torch::kFloat && !torch::GradMode::is_enabled())
    return paint_on_cpu(d, factor, sigma);
  const int64_t n = d.logit.size(0), h = d.logit.size(1), w = d.logit.size(2), reach = 3 * factor;
  // Each pixel paints the 3x3 camera pixels around it (its position is within one pixel of its
  // centre), a patch of reach x reach sub-pixels whose corner is one pixel up and left of its own.
  const auto opts = d.x.options();
  const torch::Tensor corner_x = at::arange(w, opts).sub_(1).view({1, 1, -1});
  const torch::Tensor corner_y = at::arange(h, opts).sub_(1).view({1, -1, 1});
  const torch::Tensor edges = at::arange(reach + 1, opts);  // sub-pixel edges within a patch
  const double to_erf = 1 / (std::sqrt(2.0) * sigma);
  // The mass of a unit 1-D Gaussian in each sub-pixel of the patch: (N, h, w, reach).
  auto masses = [&](const torch::Tensor& position, const torch::Tensor& corner) {
    const torch::Tensor centre = ((position - corner) * factor).unsqueeze(-1);
    const torch::Tensor cdf = ((edges - centre) * to_erf).erf();
    return 0.5 * (cdf.narrow(-1, 1, reach) - cdf.narrow(-1, 0, reach));
  };
  const torch::Tensor patches = d.logit.sigmoid().unsqueeze(-1).unsqueeze(-1) *
                                masses(d.y, corner_y).unsqueeze(-1) * masses(d.x, corner_x).unsqueeze(-2);
  // (N, reach², h w) columns, summed into the map where the patches overlap.
  const torch::Tensor columns = patches.reshape({n, h * w, reach * reach}).transpose(1, 2);
  return at::col2im(columns, {h * factor, w * factor}, {reach, reach}, {1, 1}, {factor, factor},
                    {factor, factor});
}

namespace {
const ModelRegistrar detector_registrar("detector", [] { return std::make_shared<DetectorNetImpl>(); });
}

}  // namespace dsir
