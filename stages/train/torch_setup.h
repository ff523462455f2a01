#pragma once
namespace dsir {
// Intra-op threads for this rank, and flush-to-zero: pretrained weights can produce denormals
// that make CPU convolutions several times slower.
void setup_torch_threads(int threads);
}  // namespace dsir
