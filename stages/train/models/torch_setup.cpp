#include "stages/train/models/torch_setup.h"

#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <malloc.h>
#include <stdlib.h>
#include <torch/cuda.h>

#include <limits>

#include "pipeline/errors.h"

namespace dsir {
void setup_torch_threads(int threads) {
  at::set_num_threads(threads);
  // Freed tensor memory stays in this process's heap: glibc maps every block over 32 MiB (a batch's
  // activations) afresh and unmaps it when freed, so each training step page-faulted and zeroed
  // hundreds of MiB in the kernel (a third of a CPU step; 1.8x faster without, on DSIR's net).
  mallopt(M_MMAP_MAX, 0);
  mallopt(M_TRIM_THRESHOLD, std::numeric_limits<int>::max());
  // Flush-to-zero is a per-thread CPU flag: set it on this thread and on every thread of the
  // OpenMP pool LibTorch computes with (denormals slowed training 5x on 2 threads here).
  at::globalContext().setFlushDenormal(true);
#pragma omp parallel num_threads(threads)
  { at::globalContext().setFlushDenormal(true); }
}

c10::Device choose_device(const std::string& want, int local_rank, const std::string& key) {
  const bool cuda = torch::cuda::is_available();
  if (want == "cuda" && !cuda) throw ConfigError(key + ": cuda requested but no CUDA device is available");
  if (want == "cpu" || !cuda) return c10::Device(c10::kCPU);
  const int n = static_cast<int>(torch::cuda::device_count());
  // IEEE float32 convolutions, not TF32 (cuDNN's default): results then agree with the CPU's to
  // float rounding (parity tests hold at 1e-4), and these small networks barely gain from TF32.
  // LibTorch's switch, and NVIDIA's own (read when the libraries make their handles, which happens
  // at the first convolution, after this) unless the user set it.
  at::globalContext().setAllowTF32CuDNN(false);
  setenv("NVIDIA_TF32_OVERRIDE", "0", /*overwrite=*/0);
  return c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(local_rank % n));
}
}  // namespace dsir
