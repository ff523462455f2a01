#pragma once
// DSIR's network for inference on a CPU, one frame at a time, in hand-fused AVX2 loops: the same
// arithmetic as DsirNet's forward (to float rounding), at several times LibTorch's speed on small
// channel counts. Why it is faster:
//  - each encoder layer (conv 3x3, BatchNorm, ReLU, 2x2 max-pool) makes one pass: BatchNorm is a
//    per-channel affine map, so pool(relu(a·x + c)) = relu(a·max + c) for a ≥ 0 and relu(a·min + c)
//    for a < 0; the convolution's full-size output is never stored, only its pooled max and min
//    and its per-channel sums for the (per-frame) statistics;
//  - convolutions keep 8 output channels in registers per loaded input vector;
//  - every buffer is reused between frames (no allocation per call).
// Torch-free on purpose: the weights come in as plain arrays (DsirNetImpl::cpu_weights).
#include <cstddef>
#include <cstdint>
#include <vector>

namespace dsir {

// DsirNet's parameters and BatchNorm buffers, in PyTorch's layouts.
struct DsirCpuWeights {
  struct Conv {
    std::vector<float> weight, bias;  // Conv2d: [out][in][3][3]; ConvTranspose2d: [in][out][2][2]
  };
  struct BatchNorm {
    std::vector<float> weight, bias, running_mean, running_var;
    double eps = 1e-5;
  };
  Conv conv1, conv2, conv3, conv4, convt1, convt2, convt3;
  BatchNorm bn1, bn2, bn4;
  bool per_frame_bn = true;  // normalise with each frame's own statistics (else the running ones)
};

class DsirCpuKernel {
 public:
  // std::invalid_argument on weights of the wrong shapes, std::runtime_error where !supported().
  explicit DsirCpuKernel(DsirCpuWeights weights);

  // Whether this CPU runs the kernel (x86-64 with AVX2 and FMA).
  static bool supported();

  // One upscaled, normalised frame (height x width, both multiples of 8) -> the network's output
  // map (height x width). Not thread-safe: one kernel per thread.
  void forward(const float* frame, int height, int width, float* out);

 private:
  DsirCpuWeights w_;
  std::vector<float> buf_a_, buf_b_, scratch_;  // activations, reused between frames
  std::vector<float> wide_;                     // conv weights broadcast to 8 lanes, once
  std::vector<size_t> wide_offsets_;            // where conv1..conv4 start in wide_
};

}  // namespace dsir
