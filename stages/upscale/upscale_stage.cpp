// Stage `upscale`: raw.h5 -> upscaled.h5 with /inputs (DSIR's preprocessing) and /labels
// (emitter maps on the upscaled grid), the training data of `train`.
#include <algorithm>
#include <cstring>

#include "pipeline/context.h"
#include "pipeline/errors.h"
#include "pipeline/log.h"
#include "pipeline/registry.h"
#include "stages/upscale/raw_stack.h"
#include "stages/upscale/upscale.h"

namespace dsir {
namespace {

const ConfigSection section(
    "upscale", "DSIR's preprocessing: bilinear upscaling, normalisation, label rendering.",
    {
        {"input",
         KeyType::String,
         "''",
         "Input raw.h5 ('' = {run.dir}/data/train.h5).",
         -1e300,
         1e300,
         {},
         "--input"},
        {"output",
         KeyType::String,
         "''",
         "Output upscaled.h5 ('' = {run.dir}/data/train-upscaled.h5).",
         -1e300,
         1e300,
         {},
         "--output"},
        {"factor",
         KeyType::Int,
         "8",
         "Upscaling factor (DSIR: 8, 100 nm -> 12.5 nm).",
         1,
         32,
         {},
         "--factor"},
        {"normalize",
         KeyType::Choice,
         "per-frame",
         "per-frame z-score (DSIR), global dataset mean/std (Deep-STORM), or none.",
         -1e300,
         1e300,
         {"per-frame", "global", "none"}},
        {"labels",
         KeyType::Choice,
         "dsir",
         "dsir: truncated position, binary; deepstorm: nearest pixel, counts.",
         -1e300,
         1e300,
         {"dsir", "deepstorm"}},
        {"patch_size", KeyType::Int, "0",
         "Train on random P x P raw patches instead of whole frames (0: whole frames).", 0, 65535},
        {"patches_per_frame", KeyType::Int, "1", "Patches drawn per frame when patch_size > 0.", 1, 10000},
        {"chunk_frames", KeyType::Int, "16", "Frames per work unit (memory is bounded by a few of these).", 1,
         1e6},
    });

void run(Context& ctx) {
  const Config& c = ctx.config;
  const std::string input = ctx.input_path("upscale.input", "data/train.h5");
  const std::string output = ctx.path("upscale.output", "data/train-upscaled.h5");
  const int factor = static_cast<int>(c.get_int("upscale.factor"));
  const Normalization norm = parse_normalization(c.get_string("upscale.normalize"));
  const LabelMode labels = parse_label_mode(c.get_string("upscale.labels"));
  const uint64_t chunk = static_cast<uint64_t>(c.get_int("upscale.chunk_frames"));

  RawStack raw(input);
  if (!raw.has_emitters())
    log::warn("upscale: {} has no /emitters; labels will be empty (fine for inference-only data)", input);
  // Items are whole frames, or patches_per_frame patches of each frame.
  const int patch = static_cast<int>(c.get_int("upscale.patch_size"));
  if (patch > std::min(raw.height(), raw.width()))
    throw ConfigError("upscale.patch_size: " + std::to_string(patch) + " exceeds the " +
                      std::to_string(raw.height()) + "x" + std::to_string(raw.width()) + " frames of " +
                      input);
  const uint64_t per_frame = patch > 0 ? static_cast<uint64_t>(c.get_int("upscale.patches_per_frame")) : 1;
  const int th = patch > 0 ? patch : raw.height(), tw = patch > 0 ? patch : raw.width();
  const uint64_t items = raw.frames() * per_frame;
  const uint64_t seed = static_cast<uint64_t>(c.get_int("run.seed"));
  const int oh = th * factor, ow = tw * factor;
  const size_t in_px = static_cast<size_t>(raw.height()) * raw.width();
  const size_t out_px = static_cast<size_t>(oh) * ow;
  double gmean = 0, gstd = 1;
  if (norm == Normalization::Global) std::tie(gmean, gstd) = raw.mean_std();

  // Ground truth sorted by frame (memory by emitters, not by frames: a stack may declare billions
  // of frames); RawStack checked every frame is inside the stack.
  std::vector<Emitter> truth = raw.emitters();
  std::stable_sort(truth.begin(), truth.end(),
                   [](const Emitter& a, const Emitter& b) { return a.frame < b.frame; });
  const auto emitters_of = [&truth](uint64_t frame) {
    const auto at = [](const Emitter& e, int64_t f) { return e.frame < f; };
    const auto first = std::lower_bound(truth.begin(), truth.end(), static_cast<int64_t>(frame), at);
    const auto last = std::lower_bound(first, truth.end(), static_cast<int64_t>(frame) + 1, at);
    return std::vector<Emitter>(first, last);
  };

  std::unique_ptr<h5::File> out;
  if (ctx.mpi.is_root()) {
    out = std::make_unique<h5::File>(h5::File::create(output, ctx.provenance()));
    const h5::Dims dims{items, static_cast<uint64_t>(oh), static_cast<uint64_t>(ow)};
    const h5::Dims ch{1, static_cast<uint64_t>(oh), static_cast<uint64_t>(ow)};
    out->create_dataset("/inputs", h5::DType::f32, dims, ch, 4);
    out->create_dataset("/labels", h5::DType::f32, dims, ch, 4);
  }
  uint64_t dropped = 0;
  const uint64_t n_chunks = (raw.frames() + chunk - 1) / chunk;
  const double px = raw.pixel_size_nm();
  Progress progress("upscale", raw.frames());
  progress.set_scale(ctx.mpi.size());
  // Chunk wire format: inputs then labels, float32, n x oh x ow each (n = frames x per_frame);
  // then the dropped-emitter count.
  auto produce = [&](uint64_t k) {
    const uint64_t first = k * chunk, count = std::min(chunk, raw.frames() - first);
    const std::vector<float> frames = raw.read(first, count);
    const uint64_t n = count * per_frame;
    std::string bytes(2 * n * out_px * sizeof(float) + 8, '\0');
    float* inputs = reinterpret_cast<float*>(bytes.data());
    float* lab = inputs + n * out_px;
    std::vector<float> window(static_cast<size_t>(th) * tw);
    std::vector<Emitter> shifted;
    uint64_t drop = 0, item = 0;
    for (uint64_t i = 0; i < count; ++i) {
      const float* frame = frames.data() + i * in_px;
      const auto origins = patch > 0 ? patch_origins(seed, first + i, raw.height(), raw.width(), patch,
                                                     static_cast<int>(per_frame))
                                     : std::vector<std::pair<int, int>>{{0, 0}};
      for (const auto& [r0, c0] : origins) {
        crop(frame, raw.width(), r0, c0, th, tw, window.data());
        shifted = emitters_of(first + i);
        for (auto& e : shifted) {
          e.x_nm -= c0 * px;
          e.y_nm -= r0 * px;
        }
        upscale_frame(window.data(), th, tw, factor, norm, gmean, gstd, inputs + item * out_px);
        drop += render_labels(shifted, th, tw, factor, px, labels, lab + item * out_px);
        ++item;
      }
    }
    std::memcpy(bytes.data() + 2 * n * out_px * sizeof(float), &drop, 8);
    progress.add(count);
    return bytes;
  };
  auto consume = [&](uint64_t k, const std::string& bytes) {
    const uint64_t first = k * chunk, n = std::min(chunk, raw.frames() - first) * per_frame;
    const float* inputs = reinterpret_cast<const float*>(bytes.data());
    out->write_rows("/inputs", first * per_frame, n, inputs);
    out->write_rows("/labels", first * per_frame, n, inputs + n * out_px);
    uint64_t drop = 0;
    std::memcpy(&drop, bytes.data() + 2 * n * out_px * sizeof(float), 8);
    dropped += drop;
  };
  ordered_chunks_to_root(ctx.mpi, n_chunks, produce, consume);
  progress.finish();
  if (ctx.mpi.is_root()) {
    out->set_attr("/", "factor", static_cast<double>(factor));
    out->set_attr("/", "raw_pixel_size_nm", raw.pixel_size_nm());
    out->set_attr("/", "pixel_size_nm", raw.pixel_size_nm() / factor);
    out->set_attr("/", "normalize", c.get_string("upscale.normalize"));
    out->set_attr("/", "global_mean_std", std::vector<double>{gmean, gstd});
    out->set_attr("/", "labels", c.get_string("upscale.labels"));
    out->set_attr("/", "source_file", input);
    out->set_attr("/", "patch_size", static_cast<double>(patch));
    out->set_attr("/", "patches_per_frame", static_cast<double>(per_frame));
    out->set_attr("/labels", "emitters_dropped_outside", static_cast<double>(dropped));
    out->commit();
    if (dropped)
      log::warn("upscale: {} emitters outside the field (or patch) were left out of the labels", dropped);
    log::print("upscale: {} -> {}: {} frames {}x{} -> {} {}x{} inputs", input, output, raw.frames(),
               raw.height(), raw.width(), items, oh, ow);
  }
  ctx.mpi.barrier();
}

const CommandRegistrar registrar(
    {"upscale", 30, "raw.h5 -> upscaled.h5: DSIR's bilinear x8 + z-score inputs, emitter-map labels.", run});

}  // namespace
}  // namespace dsir
