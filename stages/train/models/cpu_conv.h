#pragma once
// 3x3 convolutions (stride 1, zero padding 1) with few channels, and 2x2 stride-2 transposed ones,
// on a CPU, forward and backward, in
// AVX2 loops. DSIR's convolutions have 1 to 16 channels, where LibTorch 1.13's CPU convolutions
// (oneDNN, or im2col + GEMM) run at a few GFLOP/s: conv4 (8 -> 1) and conv1's weight gradient
// (1 -> 16) alone were a third of a training step. Here each output vector keeps up to four
// output channels in registers per loaded input vector, reading the input through a window of
// three padded rows per channel that stays in the L1 cache; the input gradient is the same
// convolution with the kernel flipped and transposed; the weight gradient keeps each (output,
// input) pair's nine taps in float vectors, emptied into double every 16 rows, per frame, and the
// frames are added in order (the same bits for any thread count).
#include <torch/nn/modules/conv.h>

namespace dsir {

// Whether cpu_conv3x3 takes this layer and input: kernel 3, stride 1, padding 1, dilation 1, one
// group, zero padding mode, in x out channels at most 16 (where it is faster than LibTorch); x a
// float32 NCHW-contiguous CPU tensor; an x86-64 CPU with AVX2/FMA.
bool cpu_conv3x3_supported(const torch::nn::Conv2dImpl& conv, const torch::Tensor& x);

// conv(x), differentiable in x, the weight and the bias; the same values as conv->forward(x) to
// float rounding.
torch::Tensor cpu_conv3x3(torch::nn::Conv2dImpl& conv, const torch::Tensor& x);

// The decoder's transposed convolutions (kernel 2, stride 2, no padding, one group): the output is
// four interleaved 1x1 convolutions of the input, computed per input row with the interleaving
// done in registers; the input gradient reads the output gradient split into even and odd
// columns on the fly. Through LibTorch (im2col/col2im + GEMM) DSIR's convt3 was a fifth of a step.
// Takes inputs whose width is a multiple of 8 (float32 NCHW-contiguous, CPU, AVX2).
bool cpu_conv_transpose2x2_supported(const torch::nn::ConvTranspose2dImpl& conv, const torch::Tensor& x);
torch::Tensor cpu_conv_transpose2x2(torch::nn::ConvTranspose2dImpl& conv, const torch::Tensor& x);

}  // namespace dsir
