#include "stages/train/distributed.h"

#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <ATen/ops/zeros_like.h>
#include <torch/csrc/autograd/grad_mode.h>
#include <torch/cuda.h>

#include "pipeline/errors.h"

namespace dsir {

#ifdef DSIR_WITH_NCCL
std::unique_ptr<BucketTransport> make_nccl_transport(const MpiContext& mpi,
                                                     torch::Device device);  // nccl_transport.cpp
bool nccl_available() { return true; }
#else
bool nccl_available() { return false; }
#endif

namespace {
void broadcast_tensor(const MpiContext& mpi, torch::Tensor t) {
  if (t.scalar_type() != torch::kFloat) return;  // num_batches_tracked: bookkeeping only
  torch::Tensor c = t.to(torch::kCPU).contiguous();
  mpi.broadcast(c.data_ptr<float>(), static_cast<size_t>(c.numel()));
  torch::NoGradGuard no_grad;
  t.copy_(c);
}

class MpiTransport : public BucketTransport {
 public:
  MpiTransport(const MpiContext& mpi, torch::Device device)
      : mpi_(mpi), device_(device), staged_(device.is_cuda() && !mpi.cuda_aware()) {}
  ~MpiTransport() override {
    for (auto& r : requests_) mpi_.wait(r);
  }
  std::string name() const override {
    return !device_.is_cuda() ? "mpi-host" : staged_ ? "mpi-staged" : "mpi-cuda-aware";
  }
  void start(size_t b, torch::Tensor& flat) override {
    grow(b);
    float* data = flat.data_ptr<float>();
    if (staged_) {
      if (!staging_[b].defined())
        staging_[b] =
            at::empty({flat.numel()}, torch::TensorOptions().dtype(torch::kFloat).pinned_memory(true));
      staging_[b].copy_(flat);  // waits for the copy: the host buffer is complete for MPI
      data = staging_[b].data_ptr<float>();
    } else if (device_.is_cuda()) {
      torch::cuda::synchronize(device_.index());  // MPI reads the GPU buffer outside the stream
    }
    requests_[b] = mpi_.iallreduce_sum(data, static_cast<size_t>(flat.numel()));
  }
  void finish(size_t b, torch::Tensor& flat) override {
    mpi_.wait(requests_[b]);
    if (staged_) flat.copy_(staging_[b], /*non_blocking=*/true);  // ordered on the stream
  }

 private:
  void grow(size_t b) {
    if (requests_.size() <= b) {
      requests_.resize(b + 1);
      staging_.resize(b + 1);
    }
  }
  const MpiContext& mpi_;
  torch::Device device_;
  bool staged_;
  std::vector<MpiContext::Request> requests_;
  std::vector<torch::Tensor> staging_;
};
}  // namespace

std::unique_ptr<BucketTransport> make_bucket_transport(const MpiContext& mpi, const std::string& backend,
                                                       torch::Device device) {
  if (backend != "auto" && backend != "mpi" && backend != "nccl")
    throw ConfigError("train.allreduce: unknown backend '" + backend + "' (auto, mpi, nccl)");
  bool nccl = backend == "nccl";
  if (nccl && !device.is_cuda()) throw ConfigError("train.allreduce: nccl needs training on CUDA devices");
  if (nccl && !nccl_available())
    throw ConfigError("train.allreduce: this build has no NCCL (none was found at configure time)");
  if (backend == "auto" && device.is_cuda() && nccl_available()) {
    // NCCL refuses two ranks on one GPU; then the ranks share it through MPI.
    const double shared_gpu =
        static_cast<int64_t>(mpi.local_rank()) >= static_cast<int64_t>(torch::cuda::device_count()) ? 1 : 0;
    nccl = mpi.allreduce_max(shared_gpu) == 0;
  }
#ifdef DSIR_WITH_NCCL
  if (nccl) return make_nccl_transport(mpi, device);
#endif
  return std::make_unique<MpiTransport>(mpi, device);
}

void broadcast_parameters_and_buffers(const MpiContext& mpi, torch::nn::Module& model) {
  if (mpi.size() == 1) return;
  for (auto& p : model.parameters()) broadcast_tensor(mpi, p);
  broadcast_buffers(mpi, model);
}

void broadcast_buffers(const MpiContext& mpi, torch::nn::Module& model) {
  if (mpi.size() == 1) return;
  for (auto& b : model.buffers()) broadcast_tensor(mpi, b);
}

GradientReducer::GradientReducer(const MpiContext& mpi, std::vector<torch::Tensor> params,
                                 size_t bucket_bytes, const std::string& backend)
    : params_(std::move(params)) {
  if (params_.empty()) throw Error("internal: GradientReducer without parameters");
  const torch::Device device = params_.front().device();
  transport_ = make_bucket_transport(mpi, backend, device);
  bucket_of_.resize(params_.size());
  offset_.resize(params_.size());
  seen_.assign(params_.size(), false);
  // Reverse order: the last layers' gradients are ready first in backward.
  for (size_t k = params_.size(); k-- > 0;) {
    if (params_[k].device() != device || params_[k].scalar_type() != torch::kFloat)
      throw Error("internal: GradientReducer needs float parameters on one device");
    const size_t bytes = static_cast<size_t>(params_[k].numel()) * sizeof(float);
    if (buckets_.empty() ||
        (!buckets_.back().params.empty() &&
         static_cast<size_t>(buckets_.back().numel) * sizeof(float) + bytes > bucket_bytes))
      buckets_.emplace_back();
    Bucket& b = buckets_.back();
    bucket_of_[k] = buckets_.size() - 1;
    offset_[k] = b.numel;
    b.params.push_back(k);
    b.numel += params_[k].numel();
  }
  for (auto& b : buckets_) b.flat = at::zeros({b.numel}, params_.front().options().requires_grad(false));
  // Also with one rank: the same path (and its tests) whatever the job size; the copies are small
  // next to the convolutions.
  for (size_t k = 0; k < params_.size(); ++k)
    hooks_.push_back(params_[k].register_hook([this, k](torch::Tensor g) { on_gradient(k, g); }));
}

GradientReducer::~GradientReducer() {
  for (size_t k = 0; k < hooks_.size(); ++k) params_[k].remove_hook(hooks_[k]);
}

torch::Tensor GradientReducer::slot(size_t k) {
  return buckets_[bucket_of_[k]].flat.narrow(0, offset_[k], params_[k].numel());
}

void GradientReducer::begin_step() {
  for (auto& b : buckets_) b.ready = 0;
  seen_.assign(params_.size(), false);
  next_to_start_ = 0;
}

void GradientReducer::on_gradient(size_t k, const torch::Tensor& grad) {
  // The hook of a leaf sees its whole gradient once per backward (shared modules included).
  torch::NoGradGuard no_grad;
  slot(k).copy_(grad.detach().reshape({-1}));
  if (!seen_[k]) {
    seen_[k] = true;
    ++buckets_[bucket_of_[k]].ready;
  }
  start_ready_buckets();
}

void GradientReducer::start_ready_buckets() {
  while (next_to_start_ < buckets_.size() &&
         buckets_[next_to_start_].ready == buckets_[next_to_start_].params.size()) {
    const size_t i = next_to_start_++;
    transport_->start(i, buckets_[i].flat);
  }
}

void GradientReducer::finish_step() {
  torch::NoGradGuard no_grad;
  // Parameters without a gradient this step (no data on this rank, or unused) contribute zeros.
  for (size_t k = 0; k < params_.size(); ++k) {
    if (seen_[k]) continue;
    slot(k).zero_();
    seen_[k] = true;
    ++buckets_[bucket_of_[k]].ready;
  }
  start_ready_buckets();
  for (size_t i = 0; i < buckets_.size(); ++i) {
    transport_->finish(i, buckets_[i].flat);
    for (size_t k : buckets_[i].params) {
      torch::Tensor& p = params_[k];
      if (!p.grad().defined()) p.mutable_grad() = at::zeros_like(p);
      p.mutable_grad().copy_(slot(k).view_as(p));
    }
  }
}

}  // namespace dsir
