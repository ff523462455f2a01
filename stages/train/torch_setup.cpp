#include "stages/train/torch_setup.h"

#include <ATen/Context.h>
#include <ATen/Parallel.h>

namespace dsir {
void setup_torch_threads(int threads) {
  at::set_num_threads(threads);
  // Flush-to-zero is a per-thread CPU flag: set it on this thread and on every thread of the
  // OpenMP pool LibTorch computes with (denormals slowed training 5x on 2 threads here).
  at::globalContext().setFlushDenormal(true);
#pragma omp parallel num_threads(threads)
  { at::globalContext().setFlushDenormal(true); }
}
}  // namespace dsir
