#pragma once
// DECODE's loss (Speiser et al., Nature Methods 2021) for a net that says, for each camera pixel,
// how likely an emitter lies there and where (with the spread of that guess), instead of painting
// a map: a frame's emitters are scored by the Gaussian mixture its pixels make (weights their
// probabilities, means their positions, standard deviations their spreads), and the number of
// emitters by the Gaussian approximation of the probabilities' sum (a Poisson-binomial count).
// No blur and no label scale: the loss asks for positions and a count, which a localizer wants.
#include <torch/types.h>

namespace dsir {

// A detector's output for N frames of h x w camera pixels, each tensor (N, h, w).
struct Detections {
  torch::Tensor logit;             // log-odds that an emitter belongs to this pixel
  torch::Tensor x, y;              // where: camera pixels from the frame's corner (pixel k spans [k, k + 1))
  torch::Tensor sigma_x, sigma_y;  // the spread of that position (camera pixels, > 0)
};

// The emitters that point label maps (N, 1, h f, w f) hold, f sub-pixels per camera pixel, in
// emitters per sub-pixel (upscale.labels dsir or deepstorm, label scale 1): each at its
// sub-pixel's centre, in camera pixels from the corner (a 1/f-pixel grid: 12.5 nm at 100 nm / 8).
struct EmitterTargets {
  torch::Tensor xy;     // (N, M, 2) x, y; M the most emitters a frame holds (at least 1)
  torch::Tensor valid;  // (N, M) 1 for a frame's emitters, 0 for the padding after them
  torch::Tensor count;  // (N) emitters per frame
};
// InputError when a label is not a whole number of emitters (Gaussian heat-map labels).
EmitterTargets emitter_targets(const torch::Tensor& labels, int factor);

// Over the frames, the mean of max(n, 1) · −log N(n; Σp, Σp(1 − p)) − Σ over the n emitters of
// log Σ_k (p_k / Σp) N(emitter; position_k, spread_k), p = sigmoid(logit), k the camera pixels.
// (DECODE weighs the count term by n; the floor keeps frames without emitters asking for none.)
torch::Tensor detection_loss(const Detections& detections, const EmitterTargets& targets);

}  // namespace dsir
