#pragma once
#include <c10/core/Device.h>

#include <string>

namespace dsir {
// Intra-op threads for this rank, and flush-to-zero: pretrained weights can produce denormals
// that make CPU convolutions several times slower.
void setup_torch_threads(int threads);

// Where a rank computes: want = "cpu", "cuda" (ConfigError naming `key` when there is no GPU) or
// "auto" (a GPU when CUDA is available). Ranks on one node share its GPUs by local rank. On a GPU,
// convolutions run in IEEE float32 (TF32 off).
c10::Device choose_device(const std::string& want, int local_rank, const std::string& key);
}  // namespace dsir
