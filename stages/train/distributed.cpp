#include "stages/train/distributed.h"

#include <ATen/ops/from_blob.h>
#include <ATen/ops/zeros_like.h>
#include <torch/csrc/autograd/grad_mode.h>

namespace dsir {
namespace {
void broadcast_tensor(const MpiContext& mpi, torch::Tensor t) {
  if (t.scalar_type() != torch::kFloat) return;  // num_batches_tracked: bookkeeping only
  torch::Tensor c = t.to(torch::kCPU).contiguous();
  mpi.broadcast(c.data_ptr<float>(), static_cast<size_t>(c.numel()));
  torch::NoGradGuard no_grad;
  t.copy_(c);
}
}  // namespace

void broadcast_parameters_and_buffers(const MpiContext& mpi, torch::nn::Module& model) {
  if (mpi.size() == 1) return;
  for (auto& p : model.parameters()) broadcast_tensor(mpi, p);
  broadcast_buffers(mpi, model);
}

void broadcast_buffers(const MpiContext& mpi, torch::nn::Module& model) {
  if (mpi.size() == 1) return;
  for (auto& b : model.buffers()) broadcast_tensor(mpi, b);
}

void allreduce_gradients(const MpiContext& mpi, torch::nn::Module& model) {
  if (mpi.size() == 1) return;
  std::vector<torch::Tensor> params = model.parameters();
  int64_t total = 0;
  for (auto& p : params) total += p.numel();
  std::vector<float> flat(static_cast<size_t>(total), 0.0f);
  int64_t off = 0;
  for (auto& p : params) {
    if (p.grad().defined()) {
      torch::Tensor g = p.grad().to(torch::kCPU).contiguous();
      std::copy(g.data_ptr<float>(), g.data_ptr<float>() + g.numel(), flat.begin() + off);
    }
    off += p.numel();
  }
  mpi.allreduce_sum(flat.data(), flat.size());
  off = 0;
  torch::NoGradGuard no_grad;
  for (auto& p : params) {
    if (!p.grad().defined()) p.mutable_grad() = at::zeros_like(p);
    torch::Tensor src = at::from_blob(flat.data() + off, p.sizes(), torch::kFloat);
    p.mutable_grad().copy_(src);
    off += p.numel();
  }
}

}  // namespace dsir
