#pragma once
// Data parallelism over MPI, as PyTorch DDP does it: identical start (broadcast from rank 0),
// gradients averaged across ranks during backward, BatchNorm buffers kept equal to rank 0's.
#include <torch/nn/module.h>

#include <vector>

#include "pipeline/mpi_context.h"

namespace dsir {

void broadcast_parameters_and_buffers(const MpiContext& mpi, torch::nn::Module& model);
void broadcast_buffers(const MpiContext& mpi, torch::nn::Module& model);

// Sums gradients over the ranks while backward still runs: parameters are grouped into buckets
// (reverse registration order, where gradients become ready first) of at most `bucket_bytes`;
// an autograd hook copies each gradient into its bucket, and a full bucket starts a non-blocking
// MPI_Iallreduce, so communication overlaps the rest of backward. Buckets start strictly in
// bucket order on every rank (collectives must match). Each rank scales its loss by its share
// of the global batch, so the sum is the global mean.
class GradientReducer {
 public:
  GradientReducer(const MpiContext& mpi, std::vector<torch::Tensor> params, size_t bucket_bytes);
  ~GradientReducer();
  GradientReducer(const GradientReducer&) = delete;
  GradientReducer& operator=(const GradientReducer&) = delete;

  void begin_step();  // before backward (or before skipping it: a rank without data this step)
  void finish_step(); // after backward: start what is left, wait, write the sums into .grad
  size_t bucket_count() const { return buckets_.size(); }

 private:
  struct Bucket {
    std::vector<size_t> params;
    std::vector<float> buffer;
    size_t ready = 0;
    bool started = false;
    MpiContext::Request request;
  };
  void on_gradient(size_t param, const torch::Tensor& grad);
  void start_ready_buckets();

  const MpiContext& mpi_;
  std::vector<torch::Tensor> params_;
  std::vector<size_t> bucket_of_, offset_;
  std::vector<bool> seen_;
  std::vector<Bucket> buckets_;
  size_t next_to_start_ = 0;
  std::vector<unsigned> hooks_;
};

}  // namespace dsir
