// Stage `upscale`: raw.h5 -> upscaled.h5 with /inputs (DSIR's preprocessing) and /labels
// (emitter maps on the upscaled grid), the training data of `train`.
#include <algorithm>
#include <cstring>

#include "pipeline/context.h"
#include "pipeline/errors.h"
#include "pipeline/formats/raw_file.h"
#include "pipeline/formats/upscaled_file.h"
#include "pipeline/log.h"
#include "pipeline/registry.h"
#include "stages/upscale/upscale.h"

namespace dsir {
namespace {

const ConfigSection section(
    "upscale", "DSIR's preprocessing: bilinear upscaling, normalisation, label rendering.",
    {
        KeySpec::text("input", "''", "Input raw.h5 ('' = {run.dir}/data/train.h5).").cli("--input"),
        KeySpec::text("output", "''", "Output upscaled.h5 ('' = {run.dir}/data/train-upscaled.h5).")
            .cli("--output"),
        KeySpec::integer("factor", "8", "Upscaling factor (DSIR: 8, 100 nm -> 12.5 nm).")
            .range(1, 32)
            .cli("--factor"),
        KeySpec::choice("normalize", "per-frame",
                        "per-frame z-score (DSIR), global dataset mean/std (Deep-STORM), or none.",
                        {"per-frame", "global", "none"}),
        KeySpec::choice("labels", "dsir",
                        "dsir: truncated position, binary; deepstorm: nearest pixel, counts; gaussian: a "
                        "unit-mass Gaussian of label_sigma_px at the exact position.",
                        {"dsir", "deepstorm", "gaussian"}),
        KeySpec::real("label_sigma_px", "1", "Sigma of the gaussian labels, in upscaled pixels.")
            .range(0.1, 100),
        KeySpec::integer("patch_size", "0",
                         "Train on random P x P raw patches instead of whole frames (0: whole frames).")
            .range(0, 65535),
        KeySpec::integer("patches_per_frame", "1", "Patches drawn per frame when patch_size > 0.")
            .range(1, 10000),
        KeySpec::integer("chunk_frames", "16", "Frames per work unit (memory is bounded by a few of these).")
            .range(1, 1e6),
    });

// Every upscale.* key (and run.seed), read once when the stage starts.
struct UpscaleOptions {
  std::string input, output;  // resolved paths
  ItemSpec items;
  std::string labels_name;  // as given, recorded in upscaled.h5
  uint64_t chunk_frames = 16;
};

UpscaleOptions read_upscale_options(const Context& ctx) {
  const Config& c = ctx.config;
  UpscaleOptions o;
  o.input = ctx.input_path("upscale.input", "data/train.h5");
  o.output = ctx.path("upscale.output", "data/train-upscaled.h5");
  o.items = item_spec(c);
  o.labels_name = c.get_string("upscale.labels");
  // upscaled.h5 records the labels; the Gaussian's width is part of what they are.
  if (o.items.labels == LabelMode::Gaussian)
    o.labels_name += fmt::format(" sigma_px={}", o.items.label_sigma_px);
  o.chunk_frames = static_cast<uint64_t>(c.get_int("upscale.chunk_frames"));
  return o;
}

void run(Context& ctx) {
  const UpscaleOptions o = read_upscale_options(ctx);
  const std::string& input = o.input;
  const std::string& output = o.output;
  const uint64_t chunk = o.chunk_frames;

  RawFileReader raw(input);
  if (!raw.has_emitters())
    log::warn("upscale: {} has no /emitters; labels will be empty (fine for inference-only data)", input);
  const TrainingItems items(raw, o.items);
  const uint64_t per_frame = items.per_frame();
  const size_t in_px = static_cast<size_t>(raw.height()) * raw.width();
  const size_t out_px = static_cast<size_t>(items.height()) * items.width();

  std::unique_ptr<UpscaledFileWriter> out;
  if (ctx.mpi.is_root())
    out = std::make_unique<UpscaledFileWriter>(output, items.count(), items.height(), items.width(),
                                               ctx.provenance());
  uint64_t dropped = 0;
  const uint64_t n_chunks = (raw.frames() + chunk - 1) / chunk;
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
    uint64_t drop = 0;
    for (uint64_t item = 0; item < n; ++item)
      drop += items.render((first * per_frame) + item, frames.data() + (item / per_frame) * in_px,
                           inputs + item * out_px, lab + item * out_px);
    std::memcpy(bytes.data() + 2 * n * out_px * sizeof(float), &drop, 8);
    progress.add(count);
    return bytes;
  };
  auto consume = [&](uint64_t k, const std::string& bytes) {
    const uint64_t first = k * chunk, n = std::min(chunk, raw.frames() - first) * per_frame;
    const float* inputs = reinterpret_cast<const float*>(bytes.data());
    out->write(first * per_frame, n, inputs, inputs + n * out_px);
    uint64_t drop = 0;
    std::memcpy(&drop, bytes.data() + 2 * n * out_px * sizeof(float), 8);
    dropped += drop;
  };
  ordered_chunks_to_root(ctx.mpi, n_chunks, produce, consume);
  progress.finish();
  if (ctx.mpi.is_root()) {
    UpscaledFileInfo info;
    info.factor = o.items.factor;
    info.raw_pixel_size_nm = raw.pixel_size_nm();
    info.normalize = to_string(o.items.normalize);
    info.global_mean = items.global_mean();
    info.global_std = items.global_std();
    info.labels = o.labels_name;
    info.source_file = input;
    info.patch_size = o.items.patch_size;
    info.patches_per_frame = per_frame;
    info.emitters_dropped_outside = dropped;
    out->commit(info);
    if (dropped)
      log::warn("upscale: {} emitters outside the field (or patch) were left out of the labels", dropped);
    log::print("upscale: {} -> {}: {} frames {}x{} -> {} {}x{} inputs", input, output, raw.frames(),
               raw.height(), raw.width(), items.count(), items.height(), items.width());
  }
  ctx.mpi.barrier();
}

const CommandRegistrar registrar(
    {"upscale", 30, "raw.h5 -> upscaled.h5: DSIR's bilinear x8 + z-score inputs, emitter-map labels.", run});

}  // namespace
}  // namespace dsir
