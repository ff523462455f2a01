#pragma once
// Data parallelism over MPI, as PyTorch DDP does it: identical start (broadcast from rank 0),
// gradients averaged across ranks after backward, BatchNorm buffers kept equal to rank 0's.
#include <torch/nn/module.h>

#include "pipeline/mpi_context.h"

namespace dsir {

void broadcast_parameters_and_buffers(const MpiContext& mpi, torch::nn::Module& model);
void broadcast_buffers(const MpiContext& mpi, torch::nn::Module& model);
// Sums every parameter's gradient over the ranks in one MPI_Allreduce on a flat buffer.
// (Each rank has scaled its loss by its share of the global batch, so the sum is the mean.)
void allreduce_gradients(const MpiContext& mpi, torch::nn::Module& model);

}  // namespace dsir
