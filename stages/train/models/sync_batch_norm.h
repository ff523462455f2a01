#pragma once
// BatchNorm over the global batch of all MPI ranks, as PyTorch's SyncBatchNorm: the per-channel
// mean and variance (and, in backward, the sums the input gradient needs) are all-reduced, so
// R ranks with B/R frames each compute what one process computes with B frames. Uses the
// parameters and buffers of an ordinary BatchNorm2d (checkpoints do not change).
#include <torch/nn/modules/batchnorm.h>

namespace dsir {

class MpiContext;

// Training-mode forward: normalises with the global batch statistics, updates the running
// statistics with them (unbiased variance, bn's momentum) and counts the batch.
torch::Tensor sync_batch_norm(torch::nn::BatchNorm2d& bn, const torch::Tensor& x, const MpiContext& mpi);

// Training's update of bn's running statistics from a batch's mean and biased variance over count
// values per channel (any device and type): the unbiased variance, bn's momentum (a cumulative
// average where momentum is unset), as torch.nn.BatchNorm2d; counts the batch.
void update_running_statistics(torch::nn::BatchNorm2d& bn, const torch::Tensor& mean,
                               const torch::Tensor& var, double count);

}  // namespace dsir
