#pragma once
// Adam with L2 weight decay, numerically as torch.optim.Adam (weight_decay adds wd·p to the
// gradient). Written out so its state is plain tensors we checkpoint to HDF5 ourselves,
// independent of LibTorch's optimizer internals (which changed between 1.x and 2.x).
#include <torch/types.h>

#include <vector>

namespace dsir {

struct AdamOptions {
  double lr = 1e-4;
  double beta1 = 0.9, beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 1e-5;
};

class Adam {
 public:
  Adam(std::vector<torch::Tensor> params, AdamOptions options);
  void step();  // uses each parameter's .grad()
  void zero_grad();
  int64_t steps() const { return step_; }
  void set_steps(int64_t s) { step_ = s; }
  AdamOptions& options() { return opt_; }
  std::vector<torch::Tensor>& exp_avg() { return m_; }
  std::vector<torch::Tensor>& exp_avg_sq() { return v_; }

 private:
  std::vector<torch::Tensor> params_, m_, v_;
  AdamOptions opt_;
  int64_t step_ = 0;
};

}  // namespace dsir
