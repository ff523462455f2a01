#pragma once
// Raw frames -> emitter maps: DSIR's preprocessing (the upscale stage's function) on the fly,
// then the network without gradients, in batches of whole frames or, for frames too large for
// the memory budget, in overlapping tiles whose seams do not show (running BatchNorm only).
#include <c10/core/Device.h>
#include <torch/types.h>

#include <memory>
#include <string>
#include <vector>

#include "stages/train/models/checkpoint.h"
#include "stages/train/models/dsir_cpu_kernel.h"

namespace dsir {

struct PredictorOptions {
  std::string bn = "checkpoint";  // "checkpoint" (the mode stored with the model), "running", "per-frame"
  int batch_size = 8;             // most whole frames per network call
  double memory_mb = 768;         // budget for frames: network calls and frame-sized buffers
  int tile_size = 0;              // raw pixels of a tile's core; 0: whole frames when they fit the budget
  int tile_overlap = 8;           // raw pixels of context around a tile's core, per side
  std::string device = "cpu";     // "cpu", "cuda" or "auto" (choose_device, torch_setup.h)
  int local_rank = 0;             // picks the GPU among the node's
  // How the network runs on a CPU: "auto" (the fused kernel where it applies: DSIR's net on a CPU
  // with AVX2 and FMA; else LibTorch), "fused" (that kernel, or a ConfigError), "libtorch".
  std::string engine = "auto";
  // What LibTorch's convolutions compute in: "float32" or "bfloat16" (EmitterNetImpl::
  // set_conv_precision; the fused kernel computes in float32 and does not apply to bfloat16).
  std::string precision = "float32";
  // The config section whose keys the errors name: "infer", or "predict" for `dsir predict`.
  std::string config_section = "infer";
};

// How frames of one size go through the network.
struct FramePlan {
  int frames_per_call = 1;  // whole frames per network call (1 when tiled)
  int tile = 0;             // upscaled pixels of a tile's core (0: whole frames)
  int overlap = 0;          // upscaled pixels of context per side
  int tiles = 1;            // tiles per frame
  bool tiled() const { return tile > 0; }
  std::string describe() const;
};

class Predictor {
 public:
  // The network's output depends on a pixel's neighbourhood only up to its receptive field, and
  // its three 2x2 poolings fix an 8-pixel grid: tiles start on that grid.
  static constexpr int kAlignment = 8;
  // Peak bytes per upscaled pixel of one frame in a network call: DSIR's net holds 240 (60 floats:
  // its activations and the temporaries of each statement; `infer_tools memory` measures the
  // peak-RSS growth, the same at any batch, size or BatchNorm mode) plus the input and output
  // buffers, rounded up.
  static constexpr double kBytesPerPixel = 256;
  // Frame-sized buffers besides the network call, bytes per upscaled pixel: the shard's sum
  // (double) and the localization scratch (2 floats); tiled, also the whole upscaled frame and
  // its output map.
  static constexpr double kFrameBytesPerPixel = 16, kTiledFrameBytesPerPixel = 24;
  // Upscaled pixels per network call beyond which batching frames stopped paying on a 2-core
  // CPU: 64x64 frames (262k pixels each) ran at 8.1 frames/s one per call and 5.3 eight per
  // call (the activations fall out of the caches); smaller frames gained little from batches.
  static constexpr double kCallPixels = 131072;

  Predictor(const std::string& checkpoint, const PredictorOptions& options);
  Predictor(std::shared_ptr<EmitterNetImpl> model, const ModelMeta& meta, const PredictorOptions& options);

  const ModelMeta& meta() const { return meta_; }
  const std::string& checksum() const { return checksum_; }
  BnMode bn_mode() const;
  const PredictorOptions& options() const { return options_; }
  // What runs the network: "fused-cpu" (DsirCpuKernel) or "libtorch"; part of a shard's settings,
  // since the two agree only to float rounding.
  std::string engine() const { return kernels_.empty() ? "libtorch" : "fused-cpu"; }

  // Batching and tiling for raw frames of height x width under the options. ConfigError naming
  // the key when they cannot be honoured (tiles with per-frame BatchNorm, a budget too small).
  FramePlan plan(int height, int width) const;

  // `count` raw frames (height x width each) -> count x (f·height) x (f·width) network outputs
  // written to `out`, following `plan`. The dataset statistics are used only by models trained
  // with global normalisation.
  void predict(const float* raw, int64_t count, int height, int width, const FramePlan& plan, float* out,
               double global_mean = 0, double global_std = 1);

 private:
  // One upscaled h x w frame (a tile) in host memory through the network into `out`.
  void forward(float* in, int64_t h, int64_t w, float* out);
  // Upscaled frames (n x 1 x h x w) on any device through LibTorch into `out`.
  void network(const torch::Tensor& input, float* out);
  void place_model();
  std::shared_ptr<EmitterNetImpl> model_;
  ModelMeta meta_;
  std::string checksum_;
  PredictorOptions options_;
  c10::Device device_{c10::kCPU};                        // where the network runs
  std::vector<float> up_, tile_in_, tile_out_;           // tiles: reused between calls
  std::vector<std::unique_ptr<DsirCpuKernel>> kernels_;  // the fused path: one per thread, or none
  std::vector<std::vector<float>> thread_up_;            // its upscaled frame, one per thread
};

}  // namespace dsir
