#pragma once
// Data parallelism over MPI, as PyTorch DDP does it: identical start (broadcast from rank 0),
// gradients summed across ranks during backward, BatchNorm buffers kept equal to rank 0's (or
// BatchNorm synchronised over the ranks, models/sync_batch_norm.h).
#include <torch/nn/module.h>

#include <memory>
#include <string>
#include <vector>

#include "pipeline/mpi_context.h"

namespace dsir {

void broadcast_parameters_and_buffers(const MpiContext& mpi, torch::nn::Module& model);
void broadcast_buffers(const MpiContext& mpi, torch::nn::Module& model);

// How a gradient bucket (one flat float tensor on the parameters' device) is summed over ranks.
//  mpi-host:       CPU tensors, MPI_Iallreduce in place.
//  mpi-staged:     CUDA tensors through a pinned host copy (MPI that cannot read GPU memory).
//  mpi-cuda-aware: CUDA tensors handed to MPI directly (Open MPI built with CUDA support).
//  nccl:           ncclAllReduce on the current CUDA stream (builds that found NCCL).
class BucketTransport {
 public:
  virtual ~BucketTransport() = default;
  virtual std::string name() const = 0;
  virtual void start(size_t bucket, torch::Tensor& flat) = 0;   // begins the sum; returns at once
  virtual void finish(size_t bucket, torch::Tensor& flat) = 0;  // afterwards flat holds the sum
};

// backend: "auto" (nccl on CUDA when built with it and every rank has a GPU of its own, else
// mpi), "mpi" or "nccl". Throws ConfigError when the choice cannot work here.
std::unique_ptr<BucketTransport> make_bucket_transport(const MpiContext& mpi, const std::string& backend,
                                                       torch::Device device);
bool nccl_available();  // this build has the NCCL backend

// Sums gradients over the ranks while backward still runs: parameters are grouped into buckets
// (reverse registration order, where gradients become ready first) of at most `bucket_bytes`;
// an autograd hook copies each gradient into its bucket, and a full bucket starts a non-blocking
// all-reduce, so communication overlaps the rest of backward. Buckets start strictly in bucket
// order on every rank (collectives must match). Each rank scales its loss by its share of the
// global batch, so the sum is the global mean.
class GradientReducer {
 public:
  GradientReducer(const MpiContext& mpi, std::vector<torch::Tensor> params, size_t bucket_bytes,
                  const std::string& backend = "auto");
  ~GradientReducer();
  GradientReducer(const GradientReducer&) = delete;
  GradientReducer& operator=(const GradientReducer&) = delete;

  void begin_step();   // before backward (or before skipping it: a rank without data this step)
  void finish_step();  // after backward: start what is left, wait, write the sums into .grad
  size_t bucket_count() const { return buckets_.size(); }
  std::string transport() const { return transport_->name(); }

 private:
  struct Bucket {
    std::vector<size_t> params;
    int64_t numel = 0;
    torch::Tensor flat;
    size_t ready = 0;
  };
  void on_gradient(size_t param, const torch::Tensor& grad);
  void start_ready_buckets();
  torch::Tensor slot(size_t param);  // the parameter's place in its bucket

  std::vector<torch::Tensor> params_;
  std::vector<size_t> bucket_of_;
  std::vector<int64_t> offset_;
  std::vector<bool> seen_;
  std::vector<Bucket> buckets_;
  std::unique_ptr<BucketTransport> transport_;
  size_t next_to_start_ = 0;
  std::vector<unsigned> hooks_;
};

}  // namespace dsir
