#include "stages/infer/predictor.h"

#include <ATen/Parallel.h>
#include <ATen/ops/from_blob.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/csrc/autograd/grad_mode.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "pipeline/errors.h"
#include "stages/train/models/batch_upscale.h"
#include "stages/train/models/dsir_net.h"
#include "stages/train/models/torch_setup.h"
#include "stages/upscale/upscale.h"

namespace dsir {

std::string FramePlan::describe() const {
  if (!tiled()) return fmt::format("whole frames, {} per network call", frames_per_call);
  return fmt::format("{} tiles per frame, {} px cores + {} px overlap (upscaled)", tiles, tile, overlap);
}

Predictor::Predictor(const std::string& checkpoint, const PredictorOptions& options) : options_(options) {
  model_ = load_model(checkpoint, &meta_);
  place_model();
}

Predictor::Predictor(std::shared_ptr<EmitterNetImpl> model, const ModelMeta& meta,
                     const PredictorOptions& options)
    : model_(std::move(model)), meta_(meta), options_(options) {
  place_model();
}

void Predictor::place_model() {
  if (options_.bn != "checkpoint") model_->set_bn_mode(parse_bn_mode(options_.bn));
  model_->eval();
  checksum_ = model_checksum(*model_);
  device_ = choose_device(options_.device, options_.local_rank, options_.config_section + ".device");
  model_->to(device_);
  model_->set_conv_precision(parse_precision(options_.precision));
  kernels_.clear();
  if (options_.engine == "libtorch") return;
  if (options_.engine != "auto" && options_.engine != "fused")
    throw ConfigError(fmt::format("{}.engine = '{}': expected auto, fused or libtorch",
                                  options_.config_section, options_.engine));
  const auto* dsir_net = dynamic_cast<const DsirNetImpl*>(model_.get());
  const char* why = !device_.is_cpu()                           ? "the network runs on a GPU"
                    : dsir_net == nullptr                       ? "it implements DSIR's network only"
                    : !DsirCpuKernel::supported()               ? "this CPU lacks AVX2/FMA"
                    : model_->conv_precision() != torch::kFloat ? "it computes in float32"
                                                                : nullptr;
  if (why != nullptr) {
    if (options_.engine == "fused")
      throw ConfigError(
          fmt::format("{}.engine = fused: the fused CPU kernel does not apply ({}); use auto or libtorch",
                      options_.config_section, why));
    return;
  }
  for (int t = 0; t < std::max(1, at::get_num_threads()); ++t)
    kernels_.push_back(std::make_unique<DsirCpuKernel>(dsir_net->cpu_weights()));
  thread_up_.resize(kernels_.size());
}

BnMode Predictor::bn_mode() const { return model_->bn_mode(); }

FramePlan Predictor::plan(int height, int width) const {
  const int64_t f = meta_.factor;
  const int64_t fh = height * f, fw = width * f;
  const double px = static_cast<double>(fh * fw);
  const double mib = 1024.0 * 1024.0;
  const double budget = options_.memory_mb * mib;
  const double whole_frame = px * (kBytesPerPixel + kFrameBytesPerPixel);  // one frame per call
  const int64_t overlap = static_cast<int64_t>(options_.tile_overlap) * f;
  int64_t tile = 0;
  if (options_.tile_size > 0) {
    tile = static_cast<int64_t>(options_.tile_size) * f;
    if (tile % kAlignment != 0)
      throw ConfigError(
          fmt::format("{section}.tile_size = {} raw pixels is {} upscaled pixels (x{}), not a multiple "
                      "of {} (the network pools three times)",
                      options_.tile_size, tile, f, kAlignment, fmt::arg("section", options_.config_section)));
    if (tile >= fh && tile >= fw) tile = 0;  // one tile covers the frame
  } else if (whole_frame > budget) {
    if (bn_mode() != BnMode::Running)
      throw ConfigError(fmt::format(
          "{}x{} frames need about {:.0f} MiB, over {section}.memory_mb = {}; tiles would show seams with "
          "per-frame BatchNorm (it normalises every layer over the whole frame): raise {section}.memory_mb "
          "to "
          "{:.0f}, or use running BatchNorm statistics (--bn running) with a model trained for them",
          height, width, whole_frame / mib, options_.memory_mb, std::ceil(whole_frame / mib),
          fmt::arg("section", options_.config_section)));
    const double frame_buffers = px * kTiledFrameBytesPerPixel;
    if (frame_buffers >= budget)
      throw ConfigError(fmt::format(
          "{}x{} frames need {:.0f} MiB of frame buffers alone, over {section}.memory_mb = {}", height, width,
          frame_buffers / mib, options_.memory_mb, fmt::arg("section", options_.config_section)));
    // The largest square tile, context included, that fits what the frame buffers leave.
    const int64_t side =
        static_cast<int64_t>(std::sqrt((budget - frame_buffers) / kBytesPerPixel)) / kAlignment * kAlignment;
    tile = side - 2 * overlap;
    if (tile < kAlignment)
      throw ConfigError(
          fmt::format("{section}.memory_mb = {} leaves room for tiles of {} upscaled pixels, too small for "
                      "an overlap of {} "
                      "per "
                      "side ({section}.tile_overlap = {} raw pixels): raise {section}.memory_mb or lower "
                      "{section}.tile_overlap",
                      options_.memory_mb, side, overlap, options_.tile_overlap,
                      fmt::arg("section", options_.config_section)));
  }
  FramePlan p;
  if (tile > 0) {
    if (overlap % kAlignment != 0)
      throw ConfigError(fmt::format(
          "{section}.tile_overlap = {} raw pixels is {} upscaled pixels, not a multiple of {}",
          options_.tile_overlap, overlap, kAlignment, fmt::arg("section", options_.config_section)));
    if (bn_mode() != BnMode::Running)
      throw ConfigError(fmt::format(
          "{section}.tile_size: tiles need running BatchNorm statistics (per-frame BatchNorm normalises "
          "every layer over the whole frame, so tiles would show seams); set {section}.tile_size = 0 "
          "and raise {section}.memory_mb, or use --bn running with a model trained for it",
          fmt::arg("section", options_.config_section)));
    p.tile = static_cast<int>(tile);
    p.overlap = static_cast<int>(overlap);
    p.tiles = static_cast<int>(((fh + tile - 1) / tile) * ((fw + tile - 1) / tile));
    return p;
  }
  const double by_budget = std::floor((budget - px * kFrameBytesPerPixel) / (px * kBytesPerPixel));
  // The cache limit is LibTorch's on a CPU; a GPU wants calls as large as the budget allows, and
  // the fused kernel takes a call's frames one at a time (one per thread).
  const double by_cache = device_.is_cpu() && kernels_.empty() ? std::floor(kCallPixels / px) : by_budget;
  p.frames_per_call = static_cast<int>(
      std::clamp<double>(std::min(by_budget, by_cache), 1.0, static_cast<double>(options_.batch_size)));
  return p;
}

void Predictor::forward(float* in, int64_t h, int64_t w, float* out) {
  if (!kernels_.empty() && h % kAlignment == 0 && w % kAlignment == 0)
    return kernels_.front()->forward(in, static_cast<int>(h), static_cast<int>(w), out);
  network(at::from_blob(in, {1, 1, h, w}, torch::kFloat), out);
}

void Predictor::network(const torch::Tensor& input, float* out) {
  const int64_t n = input.size(0), h = input.size(2), w = input.size(3);
  torch::Tensor y = model_->forward(input.to(device_)).to(torch::kCPU).contiguous();
  if (y.dim() != 4 || y.size(0) != n || y.size(1) != 1 || y.size(2) != h || y.size(3) != w)
    throw Error(
        fmt::format("model '{}' maps a {}x{} input to {}: upscaled frames must be multiples of {} pixels",
                    meta_.arch, h, w, fmt::join(y.sizes().vec(), "x"), kAlignment));
  std::memcpy(out, y.data_ptr<float>(), static_cast<size_t>(n * h * w) * sizeof(float));
}

void Predictor::predict(const float* raw, int64_t count, int height, int width, const FramePlan& plan,
                        float* out, double global_mean, double global_std) {
  torch::NoGradGuard no_grad;
  const int f = meta_.factor;
  const int64_t fh = static_cast<int64_t>(height) * f, fw = static_cast<int64_t>(width) * f;
  const size_t in_px = static_cast<size_t>(height) * static_cast<size_t>(width);
  const size_t out_px = static_cast<size_t>(fh * fw);
  const Normalization norm = parse_normalization(meta_.normalize);

  const bool fused = !kernels_.empty() && fh % kAlignment == 0 && fw % kAlignment == 0;
  if (!plan.tiled() && !fused) {
    // Through LibTorch: raw frames go to the network's device and are upscaled there, a call's
    // frames at once (frames off the pooling grid end in network()'s error).
    for (int64_t b0 = 0; b0 < count; b0 += plan.frames_per_call) {
      const int64_t n = std::min<int64_t>(plan.frames_per_call, count - b0);
      const torch::Tensor frames = at::from_blob(const_cast<float*>(raw) + static_cast<size_t>(b0) * in_px,
                                                 {n, height, width}, torch::kFloat)
                                       .to(device_);
      network(upscale_batch(frames, f, norm, global_mean, global_std),
              out + static_cast<size_t>(b0) * out_px);
    }
    return;
  }
  if (!plan.tiled()) {
    // The fused kernel: each thread upscales its frames into a buffer of its own and runs them.
    at::parallel_for(0, count, 1, [&](int64_t begin, int64_t end) {
      const size_t t = static_cast<size_t>(at::get_thread_num());
      std::vector<float>& up = thread_up_.at(t);
      up.resize(out_px);
      for (int64_t i = begin; i < end; ++i) {
        upscale_frame(raw + static_cast<size_t>(i) * in_px, height, width, f, norm, global_mean, global_std,
                      up.data());
        kernels_.at(t)->forward(up.data(), static_cast<int>(fh), static_cast<int>(fw),
                                out + static_cast<size_t>(i) * out_px);
      }
    });
    return;
  }

  // Tiles: the whole frame is upscaled and normalised first (per-frame z-scores need the whole
  // frame), then each core is predicted with `overlap` pixels of real context around it (zero
  // padding only at the frame's own edges, as untiled) and only the core is kept.
  const int64_t t = plan.tile, o = plan.overlap;
  up_.resize(out_px);
  for (int64_t k = 0; k < count; ++k) {
    upscale_frame(raw + static_cast<size_t>(k) * in_px, height, width, f, norm, global_mean, global_std,
                  up_.data());
    float* frame_out = out + static_cast<size_t>(k) * out_px;
    for (int64_t r0 = 0; r0 < fh; r0 += t) {
      for (int64_t c0 = 0; c0 < fw; c0 += t) {
        const int64_t r1 = std::min(r0 + t, fh), c1 = std::min(c0 + t, fw);
        const int64_t er0 = std::max<int64_t>(0, r0 - o), er1 = std::min(fh, r1 + o);
        const int64_t ec0 = std::max<int64_t>(0, c0 - o), ec1 = std::min(fw, c1 + o);
        const int64_t th = er1 - er0, tw = ec1 - ec0;
        tile_in_.resize(static_cast<size_t>(th * tw));
        tile_out_.resize(static_cast<size_t>(th * tw));
        for (int64_t r = 0; r < th; ++r)
          std::memcpy(tile_in_.data() + r * tw, up_.data() + (er0 + r) * fw + ec0,
                      static_cast<size_t>(tw) * sizeof(float));
        forward(tile_in_.data(), th, tw, tile_out_.data());
        for (int64_t r = r0; r < r1; ++r)
          std::memcpy(frame_out + r * fw + c0, tile_out_.data() + (r - er0) * tw + (c0 - ec0),
                      static_cast<size_t>(c1 - c0) * sizeof(float));
      }
    }
  }
}

}  // namespace dsir
