#pragma once
// Training-mode BatchNorm + ReLU (+ the encoder's 2x2 max-pool) on a CPU as one autograd
// function in hand-written AVX2 loops. Through LibTorch's ops these are five kernels forward and
// back (batch_norm, relu, max_pool2d_with_indices and their backwards), each streaming the whole
// activation and storing ReLU outputs and int64 pool indices; on DSIR's net they were ~40 % of a
// CPU training step. Fused, forward reads the activation twice (statistics, then
// normalise-ReLU-pool) and backward twice (gradient sums, then the input gradient), recomputing
// the ReLU mask and the pool's choice from the input instead of storing them.
// Same results as the composition to float rounding: statistics in double, the pool's gradient to
// the first maximum of each window in row-major order (as max_pool2d), ReLU's to outputs > 0.
#include <torch/nn/modules/batchnorm.h>

namespace dsir {

class MpiContext;

// Whether fused_bn_relu takes x: a float32 NCHW-contiguous CPU tensor, on an x86-64 CPU with AVX2
// and FMA.
bool fused_bn_relu_supported(const torch::Tensor& x);

// relu(bn(x)) with the batch's statistics — max_pool2d(relu(bn(x)), 2, 2) when pool — updating
// bn's running statistics as torch.nn.BatchNorm2d does in training. With sync, the statistics
// (and the input gradient's sums) are over all ranks' frames, as SyncBatchNorm.
torch::Tensor fused_bn_relu(torch::nn::BatchNorm2d& bn, const torch::Tensor& x, bool pool,
                            const MpiContext* sync);

}  // namespace dsir
