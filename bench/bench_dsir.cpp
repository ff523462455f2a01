// Throughput of the hot paths, one thread (compare with bench/peer_dsir.py, DSIR's own Python,
// on the same machine in the same run: bench/run.sh).
#include <ATen/Parallel.h>
#include <ATen/ops/from_blob.h>
#include <ATen/ops/randn.h>
#include <benchmark/benchmark.h>
#include <torch/csrc/autograd/grad_mode.h>

#include <filesystem>
#include <random>

#include "pipeline/h5store.h"
#include "stages/train/adam.h"
#include "stages/train/loss.h"
#include "stages/train/models/checkpoint.h"
#include "stages/train/models/cpu_conv.h"
#include "stages/train/models/model_registry.h"
#include "stages/train/models/torch_setup.h"
#include "stages/upscale/upscale.h"

namespace {

std::vector<float> random_frames(int n, int size) {
  std::mt19937 rng(1);
  std::poisson_distribution<int> p(120);
  std::vector<float> v(static_cast<size_t>(n) * size * size);
  for (auto& x : v) x = float(p(rng));
  return v;
}

// DSIR's preprocessing: bilinear x8 + z-score, per frame.
void BM_Upscale(benchmark::State& state) {
  const int size = int(state.range(0));
  auto frame = random_frames(1, size);
  std::vector<float> out(size_t(size) * size * 64);
  for (auto _ : state) {
    dsir::upscale_frame(frame.data(), size, size, 8, dsir::Normalization::PerFrame, 0, 1, out.data());
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Upscale)->Arg(26)->Arg(64)->Unit(benchmark::kMicrosecond);

std::shared_ptr<dsir::EmitterNetImpl> dsir_model() {
  auto model = dsir::make_model("dsir");
  const std::string ref = std::string(DSIR_SOURCE_DIR) + "/../shared/reference/dsir/reference_26px.h5";
  if (std::filesystem::exists(ref)) dsir::load_state(dsir::h5::File::open(ref), "/state_dict", *model);
  return model;
}

// Inference as `infer` does it: upscale on the fly + network (per-frame BatchNorm), batch of 1.
void BM_InferFrame(benchmark::State& state) {
  dsir::setup_torch_threads(1);
  const int size = int(state.range(0));
  auto model = dsir_model();
  model->eval();
  model->set_bn_mode(dsir::BnMode::PerFrame);
  auto frame = random_frames(1, size);
  std::vector<float> up(size_t(size) * size * 64);
  torch::NoGradGuard no_grad;
  for (auto _ : state) {
    dsir::upscale_frame(frame.data(), size, size, 8, dsir::Normalization::PerFrame, 0, 1, up.data());
    auto y = model->forward(at::from_blob(up.data(), {1, 1, size * 8, size * 8}, torch::kFloat));
    benchmark::DoNotOptimize(y.data_ptr());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_InferFrame)->Arg(26)->Arg(64)->Unit(benchmark::kMillisecond);

// One training step of DSIR's recipe: batch 32 of 208x208, DSIR loss, Adam.
void BM_TrainStep(benchmark::State& state) {
  dsir::setup_torch_threads(1);
  torch::manual_seed(0);
  auto model = dsir::make_model("dsir");
  model->train();
  dsir::Adam adam(model->parameters(), {});
  dsir::BlurredMseLoss loss(5, 3.0);
  torch::Tensor x = at::randn({32, 1, 208, 208}), y = (at::randn({32, 1, 208, 208}) > 2.5).to(torch::kFloat);
  for (auto _ : state) {
    adam.zero_grad();
    loss(model->forward(x), y).backward();
    adam.step();
  }
  state.SetItemsProcessed(state.iterations() * 32);
}
BENCHMARK(BM_TrainStep)->Unit(benchmark::kMillisecond)->MinTime(5.0);

// One 3x3 convolution of DSIR's training step (batch 32), forward and backward: dsir's CPU kernel
// (arg 3 = 1) against LibTorch's Conv2d (0). Args: in channels, out channels, size, kernel.
void BM_Conv3x3Step(benchmark::State& state) {
  dsir::setup_torch_threads(1);
  torch::manual_seed(0);
  const int64_t cin = state.range(0), cout = state.range(1), size = state.range(2);
  torch::nn::Conv2d conv(torch::nn::Conv2dOptions(cin, cout, 3).padding(1));
  torch::Tensor x = at::randn({32, cin, size, size}).requires_grad_(cin > 1);
  for (auto _ : state) {
    torch::Tensor y = state.range(3) ? dsir::cpu_conv3x3(*conv, x) : conv->forward(x);
    y.backward(y);
  }
  state.SetItemsProcessed(state.iterations() * 32);
}
BENCHMARK(BM_Conv3x3Step)
    ->Args({1, 16, 208, 0})
    ->Args({1, 16, 208, 1})
    ->Args({16, 8, 104, 0})
    ->Args({16, 8, 104, 1})
    ->Args({8, 1, 208, 0})
    ->Args({8, 1, 208, 1})
    ->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
