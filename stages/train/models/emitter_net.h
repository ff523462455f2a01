#pragma once
// The common face of the networks that map an upscaled frame to an emitter map:
// (N, 1, H, W) -> (N, 1, H, W). Models register by name (see model_registry.h).
#include <torch/nn/module.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/conv.h>

namespace dsir {

class MpiContext;

// How BatchNorm normalises at inference: with the running statistics collected in training, or
// with each frame's own statistics (DSIR never calls eval(); its weights need this).
enum class BnMode { Running, PerFrame };
BnMode parse_bn_mode(const std::string& name);  // "running" | "per-frame"
std::string to_string(BnMode mode);

// The conv precision named in train.precision / infer.precision: "float32" | "bfloat16".
torch::Dtype parse_precision(const std::string& name);

class EmitterNetImpl : public torch::nn::Module {
 public:
  virtual torch::Tensor forward(torch::Tensor x) = 0;
  // The upscale factor the architecture is built for (0: any).
  virtual int required_factor() const { return 0; }
  // Most nets train on DSIR's blurred MSE of forward()'s map against the label map; a net with a
  // loss of its own (the detector) says so and computes it from the upscaled inputs and the label
  // maps in emitters per upscaled pixel (label scale 1): a scalar, the mean over the frames.
  virtual bool has_own_loss() const { return false; }
  virtual torch::Tensor own_loss(const torch::Tensor& inputs, const torch::Tensor& labels);
  void set_bn_mode(BnMode mode) { bn_mode_ = mode; }
  BnMode bn_mode() const { return bn_mode_; }
  // Training with BatchNorm statistics over all ranks' frames (SyncBatchNorm); nullptr: each
  // rank's own frames, as DDP without SyncBatchNorm.
  void set_sync_batchnorm(const MpiContext* mpi) { sync_bn_ = mpi; }
  // The type LibTorch's convolutions compute in: float32, or bfloat16 (mixed precision: each
  // convolution's input, weight and bias are cast for the call and its output cast back, so the
  // parameters, their gradients, Adam and the BatchNorm layers stay float32). cpu_conv.h's
  // kernels (DSIR's one-channel convolutions on a CPU) and transposed convolutions always
  // compute in float32.
  void set_conv_precision(torch::Dtype dtype);
  torch::Dtype conv_precision() const { return conv_precision_; }

 protected:
  // DSIR's init for every convolution and transposed convolution (parameters named conv*/upconv*):
  // Xavier-normal weights, standard-normal biases. Call at the end of a constructor.
  void init_like_dsir();
  // Training: batch statistics (and running-statistics updates), as torch.nn.BatchNorm2d,
  // synchronised over the ranks when set_sync_batchnorm was given a context.
  // Inference: running statistics, or per-frame statistics (instance norm with the BN affine).
  torch::Tensor normalize(torch::nn::BatchNorm2d& bn, const torch::Tensor& x);
  // relu(normalize(bn, x)), and max_pool2d of it (2x2, stride 2): in training on a CPU, one fused
  // pass each way (fused_batch_norm.h); elsewhere LibTorch's ops.
  torch::Tensor normalize_relu(torch::nn::BatchNorm2d& bn, const torch::Tensor& x);
  // conv(x): on a CPU through cpu_conv.h's kernels where they take the layer and input; else
  // LibTorch's, in the conv precision.
  torch::Tensor convolve(torch::nn::Conv2d& conv, const torch::Tensor& x);
  torch::Tensor convolve(torch::nn::ConvTranspose2d& conv, const torch::Tensor& x);
  torch::Tensor normalize_relu_pool(torch::nn::BatchNorm2d& bn, const torch::Tensor& x);

 private:
  BnMode bn_mode_ = BnMode::Running;
  const MpiContext* sync_bn_ = nullptr;
  torch::Dtype conv_precision_ = torch::kFloat;
};

}  // namespace dsir
