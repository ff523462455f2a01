#include "stages/train/models/sync_batch_norm.h"

#include <ATen/ops/cat.h>
#include <ATen/ops/full.h>
#include <ATen/ops/rsqrt.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/csrc/autograd/grad_mode.h>

#include "pipeline/errors.h"
#include "pipeline/mpi_context.h"

namespace dsir {
namespace {

// Per-channel sums of an NCHW tensor, summed over all ranks (in double: the order of a float sum
// differs between a split and a whole batch).
torch::Tensor global_channel_sums(const MpiContext& mpi, const torch::Tensor& t) {
  torch::Tensor s = t.sum({0, 2, 3}, /*keepdim=*/false, torch::kDouble).to(torch::kCPU).contiguous();
  mpi.allreduce_sum_aside(s.data_ptr<double>(), static_cast<size_t>(s.numel()));
  return s;
}

// One C-vector viewed for broadcasting against NCHW.
torch::Tensor per_channel(const torch::Tensor& v, const torch::Tensor& like) {
  return v.to(like.device(), like.scalar_type()).view({1, -1, 1, 1});
}

class SyncBatchNormFunction : public torch::autograd::Function<SyncBatchNormFunction> {
 public:
  // mean and invstd come in as computed (global); the function carries the gradient through them.
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& weight, const torch::Tensor& bias,
                               const torch::Tensor& mean, const torch::Tensor& invstd, double count) {
    ctx->save_for_backward({x, weight, mean, invstd});
    ctx->saved_data["count"] = count;
    return (x - per_channel(mean, x)) * per_channel(invstd * weight, x) + per_channel(bias, x);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor &x = saved[0], &weight = saved[1], &mean = saved[2], &invstd = saved[3];
    const double count = ctx->saved_data["count"].toDouble();
    const torch::Tensor g = grads[0];
    const torch::Tensor xmu = x - per_channel(mean, x);
    // The local sums give this rank's weight and bias gradients (the gradient reducer adds the
    // ranks); their global sums give the input gradient, which depends on every rank's frames.
    const torch::Tensor sum_dy = g.sum({0, 2, 3}, false, torch::kDouble).to(torch::kCPU);
    const torch::Tensor sum_dy_xmu = (g * xmu).sum({0, 2, 3}, false, torch::kDouble).to(torch::kCPU);
    const MpiContext& mpi = MpiContext::get();
    torch::Tensor both = at::cat({sum_dy, sum_dy_xmu}).contiguous();
    mpi.allreduce_sum_aside(both.data_ptr<double>(), static_cast<size_t>(both.numel()));
    const int64_t c = sum_dy.numel();
    const torch::Tensor mean_dy = both.slice(0, 0, c) / count;
    const torch::Tensor mean_dy_xmu = both.slice(0, c, 2 * c) / count;
    const torch::Tensor inv = invstd.to(torch::kCPU, torch::kDouble);
    const torch::Tensor grad_x =
        (g - per_channel(mean_dy, x) - xmu * per_channel(inv * inv * mean_dy_xmu, x)) *
        per_channel(inv * weight.to(torch::kCPU, torch::kDouble), x);
    const torch::Tensor grad_weight = (sum_dy_xmu * inv).to(weight.device(), weight.scalar_type());
    const torch::Tensor grad_bias = sum_dy.to(weight.device(), weight.scalar_type());
    return {grad_x, grad_weight, grad_bias, torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

void update_running_statistics(torch::nn::BatchNorm2d& bn, const torch::Tensor& mean,
                               const torch::Tensor& var, double count) {
  torch::NoGradGuard no_grad;
  const auto& o = bn->options;
  bn->num_batches_tracked.add_(1);
  // momentum unset means a cumulative average, as in torch.nn.BatchNorm2d.
  const double m = o.momentum() ? *o.momentum() : 1.0 / bn->num_batches_tracked.item<double>();
  bn->running_mean.mul_(1 - m).add_(mean.to(bn->running_mean.options()), m);
  bn->running_var.mul_(1 - m).add_((var * (count / (count - 1))).to(bn->running_var.options()), m);
}

torch::Tensor sync_batch_norm(torch::nn::BatchNorm2d& bn, const torch::Tensor& x, const MpiContext& mpi) {
  if (x.dim() != 4) throw Error("internal: sync_batch_norm expects NCHW input");
  const auto& o = bn->options;
  if (!o.affine() || !o.track_running_stats())
    throw Error("internal: sync_batch_norm needs an affine BatchNorm with running statistics");
  torch::Tensor mean, invstd;
  double count = 0;
  {
    torch::NoGradGuard no_grad;
    // Two passes (mean, then the centred sum of squares): as exact as the single-process BN.
    double n_local = static_cast<double>(x.numel() / std::max<int64_t>(1, x.size(1)));
    const int64_t channels = x.size(1);
    torch::Tensor sums = at::cat({x.sum({0, 2, 3}, false, torch::kDouble).to(torch::kCPU),
                                  at::full({1}, n_local, torch::kDouble)})
                             .contiguous();
    mpi.allreduce_sum_aside(sums.data_ptr<double>(), static_cast<size_t>(sums.numel()));
    count = sums[channels].item<double>();
    if (count < 2) throw Error("SyncBatchNorm: fewer than 2 values per channel over all ranks");
    const torch::Tensor mean64 = sums.slice(0, 0, channels) / count;
    const torch::Tensor var64 = global_channel_sums(mpi, (x - per_channel(mean64, x)).square()) / count;
    mean = mean64.to(x.device(), x.scalar_type());
    invstd = at::rsqrt(var64 + o.eps()).to(x.device(), x.scalar_type());
    update_running_statistics(bn, mean64, var64, count);
  }
  return SyncBatchNormFunction::apply(x, bn->weight, bn->bias, mean, invstd, count);
}

}  // namespace dsir
