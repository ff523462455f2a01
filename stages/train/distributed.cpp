#include "stages/train/distributed.h"

#include <ATen/ops/from_blob.h>
#include <ATen/ops/zeros_like.h>
#include <torch/csrc/autograd/grad_mode.h>

#include <cstring>

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

GradientReducer::GradientReducer(const MpiContext& mpi, std::vector<torch::Tensor> params, size_t bucket_bytes)
    : mpi_(mpi), params_(std::move(params)) {
  bucket_of_.resize(params_.size());
  offset_.resize(params_.size());
  seen_.assign(params_.size(), false);
  // Reverse order: the last layers' gradients are ready first in backward.
  for (size_t k = params_.size(); k-- > 0;) {
    const size_t bytes = static_cast<size_t>(params_[k].numel()) * sizeof(float);
    if (buckets_.empty() || (!buckets_.back().params.empty() &&
                             (buckets_.back().buffer.size() * sizeof(float) + bytes > bucket_bytes)))
      buckets_.emplace_back();
    Bucket& b = buckets_.back();
    bucket_of_[k] = buckets_.size() - 1;
    offset_[k] = b.buffer.size();
    b.params.push_back(k);
    b.buffer.resize(b.buffer.size() + static_cast<size_t>(params_[k].numel()));
  }
  if (mpi_.size() > 1)
    for (size_t k = 0; k < params_.size(); ++k)
      hooks_.push_back(params_[k].register_hook([this, k](torch::Tensor g) { on_gradient(k, g); }));
}

GradientReducer::~GradientReducer() {
  for (size_t k = 0; k < hooks_.size(); ++k) params_[k].remove_hook(hooks_[k]);
  for (auto& b : buckets_) mpi_.wait(b.request);
}

void GradientReducer::begin_step() {
  for (auto& b : buckets_) {
    b.ready = 0;
    b.started = false;
  }
  seen_.assign(params_.size(), false);
  next_to_start_ = 0;
}

void GradientReducer::on_gradient(size_t k, const torch::Tensor& grad) {
  // The hook of a leaf sees its whole gradient once per backward (shared modules included).
  torch::Tensor g = grad.detach().to(torch::kCPU, torch::kFloat).contiguous();
  Bucket& b = buckets_[bucket_of_[k]];
  std::memcpy(b.buffer.data() + offset_[k], g.data_ptr<float>(), static_cast<size_t>(g.numel()) * sizeof(float));
  if (!seen_[k]) {
    seen_[k] = true;
    ++b.ready;
  }
  start_ready_buckets();
}

void GradientReducer::start_ready_buckets() {
  while (next_to_start_ < buckets_.size() && buckets_[next_to_start_].ready == buckets_[next_to_start_].params.size()) {
    Bucket& b = buckets_[next_to_start_++];
    b.request = mpi_.iallreduce_sum(b.buffer.data(), b.buffer.size());
    b.started = true;
  }
}

void GradientReducer::finish_step() {
  if (mpi_.size() == 1) return;
  // Parameters without a gradient this step (no data on this rank, or unused) contribute zeros.
  for (size_t k = 0; k < params_.size(); ++k) {
    if (seen_[k]) continue;
    Bucket& b = buckets_[bucket_of_[k]];
    std::fill(b.buffer.begin() + static_cast<std::ptrdiff_t>(offset_[k]),
              b.buffer.begin() + static_cast<std::ptrdiff_t>(offset_[k] + static_cast<size_t>(params_[k].numel())), 0.0f);
    seen_[k] = true;
    ++b.ready;
  }
  start_ready_buckets();
  torch::NoGradGuard no_grad;
  for (auto& b : buckets_) {
    mpi_.wait(b.request);
    for (size_t k : b.params) {
      torch::Tensor& p = params_[k];
      torch::Tensor sum = at::from_blob(b.buffer.data() + offset_[k], p.sizes(), torch::kFloat);
      if (!p.grad().defined()) p.mutable_grad() = at::zeros_like(p);
      p.mutable_grad().copy_(sum);
    }
  }
}

}  // namespace dsir
