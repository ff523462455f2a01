#pragma once
// DSIR's preprocessing (the upscale stage's arithmetic: bilinear x factor, mirrored edges, then
// the normalisation) for a batch of raw frames on the device that runs the network: frames
// travel as raw pixels (factor² times smaller than upscaled ones) and are upscaled there with two
// matrix products. Agrees with upscale_frame to float rounding (1e-5).
#include <torch/types.h>

#include "stages/upscale/upscale.h"

namespace dsir {

// raw: (N, H, W) float on any device -> (N, 1, H·factor, W·factor) on the same device.
torch::Tensor upscale_batch(const torch::Tensor& raw, int factor, Normalization norm, double global_mean = 0,
                            double global_std = 1);

}  // namespace dsir
