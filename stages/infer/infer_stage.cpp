// Stage `infer`: raw.h5 acquisitions -> infer/<acquisition>/shard-NNNNN.h5, each holding the sum
// of its frames' emitter maps and their localizations. Shards are spread over the ranks; a shard
// already complete with the same model and settings is skipped, so a killed job resumes.
#include <filesystem>

#include "pipeline/context.h"
#include "pipeline/errors.h"
#include "pipeline/log.h"
#include "pipeline/registry.h"
#include "stages/infer/localize.h"
#include "stages/infer/predictor.h"
#include "stages/train/torch_setup.h"
#include "stages/upscale/raw_stack.h"

namespace fs = std::filesystem;

namespace dsir {
namespace {

const ConfigSection section(
    "infer", "Inference: emitter maps and localizations, sharded over ranks, resumable.",
    {
        {"checkpoint", KeyType::String, "''", "Model file ('' = {run.dir}/train/model.h5).", -1e300, 1e300, {},
         "--checkpoint"},
        {"input", KeyType::StringList, "[]", "raw.h5 files or globs ([] = {run.dir}/data/acquisition.h5).",
         -1e300, 1e300, {}, "--input"},
        {"output", KeyType::String, "''", "Shard folder ('' = {run.dir}/infer).", -1e300, 1e300, {}, "--output"},
        {"bn", KeyType::Choice, "checkpoint", "BatchNorm statistics: as stored with the model, running, per-frame.",
         -1e300, 1e300, {"checkpoint", "running", "per-frame"}, "--bn"},
        {"shard_frames", KeyType::Int, "64", "Frames per shard (the unit of work and of restart).", 1, 1e7},
        {"batch_size", KeyType::Int, "8", "Frames per network call.", 1, 4096},
        {"threshold", KeyType::Float, "0.3", "Minimum emitter mass of a localization (emitters).", 0, 1e6},
    });

struct Shard {
  std::string acquisition;  // name: the input file's stem
  std::string input;
  uint64_t first = 0, count = 0, total = 0;
  size_t index = 0;
};

// The attributes that must match for a finished shard to be reused.
h5::Attributes shard_identity(const Shard& s, const Predictor& p, const Context& ctx) {
  return {{"source_file", fs::absolute(s.input).string()},
          {"model_checksum", p.checksum()},
          {"bn_mode", to_string(p.bn_mode())},
          {"threshold", fmt::format("{}", ctx.config.get_double("infer.threshold"))},
          {"frame_range", fmt::format("{}:{}", s.first, s.first + s.count)}};
}

bool shard_complete(const std::string& path, const h5::Attributes& identity) {
  if (!fs::exists(path)) return false;
  try {
    h5::File f = h5::File::open(path);
    for (const auto& [k, v] : identity)
      if (!f.has_attr("/", k) || f.attr_string("/", k) != v) return false;
    return f.has("/sum") && f.has("/localizations");
  } catch (const InputError&) {
    return false;  // unreadable leftovers are recomputed
  }
}

void run(Context& ctx) {
  const Config& c = ctx.config;
  setup_torch_threads(ctx.threads());
  const std::string checkpoint = ctx.input_path("infer.checkpoint", "train/model.h5");
  std::vector<std::string> inputs = c.get_strings("infer.input");
  if (inputs.empty()) inputs.push_back(ctx.run_dir() + "/data/acquisition.h5");
  const std::string out_dir = ctx.path("infer.output", "infer");
  const uint64_t shard_frames = static_cast<uint64_t>(c.get_int("infer.shard_frames"));
  LocalizeOptions lopt;
  lopt.threshold = c.get_double("infer.threshold");

  Predictor predictor(checkpoint, c.get_string("infer.bn"), static_cast<int>(c.get_int("infer.batch_size")));
  const ModelMeta& meta = predictor.meta();

  // The global list of shards, identical on every rank.
  std::vector<Shard> shards;
  std::vector<std::string> names;
  for (const auto& in : inputs) {
    require_file(in, "infer.input");
    RawStack raw(in);
    if (std::abs(raw.pixel_size_nm() - meta.raw_pixel_size_nm) > 1e-6 * meta.raw_pixel_size_nm)
      throw InputError(in + ": pixel size " + fmt::format("{}", raw.pixel_size_nm()) + " nm, but the model " +
                       checkpoint + " was trained on " + fmt::format("{}", meta.raw_pixel_size_nm) + " nm pixels");
    const std::string name = fs::path(in).stem().string();
    if (std::find(names.begin(), names.end(), name) != names.end())
      throw ConfigError("infer.input: two inputs share the name '" + name + "'");
    names.push_back(name);
    for (uint64_t f = 0, k = 0; f < raw.frames(); f += shard_frames, ++k)
      shards.push_back({name, in, f, std::min(shard_frames, raw.frames() - f), raw.frames(), k});
  }

  uint64_t mine_total = 0, skipped = 0;
  for (size_t i = 0; i < shards.size(); ++i)
    if (static_cast<int>(i % static_cast<size_t>(ctx.mpi.size())) == ctx.mpi.rank()) mine_total += shards[i].count;
  uint64_t all_frames = 0;
  for (const auto& s : shards) all_frames += s.count;
  Progress progress("infer", all_frames);
  progress.set_scale(static_cast<double>(all_frames) / std::max<uint64_t>(1, mine_total));

  std::string open_path;
  std::unique_ptr<RawStack> raw;
  double gmean = 0, gstd = 1;
  uint64_t done = 0;
  for (size_t i = 0; i < shards.size(); ++i) {
    if (static_cast<int>(i % static_cast<size_t>(ctx.mpi.size())) != ctx.mpi.rank()) continue;
    const Shard& s = shards[i];
    const std::string path = fmt::format("{}/{}/shard-{:05d}.h5", out_dir, s.acquisition, s.index);
    const h5::Attributes identity = shard_identity(s, predictor, ctx);
    if (shard_complete(path, identity)) {
      ++skipped;
      done += s.count;
      progress.set(done);
      continue;
    }
    if (open_path != s.input) {
      raw = std::make_unique<RawStack>(s.input);
      open_path = s.input;
      if (meta.normalize == "global") std::tie(gmean, gstd) = raw->mean_std();
    }
    const std::vector<float> frames = raw->read(s.first, s.count);
    const std::vector<float> maps = predictor.predict(frames.data(), static_cast<int64_t>(s.count), raw->height(),
                                                      raw->width(), gmean, gstd);
    const int f = meta.factor;
    const int oh = raw->height() * f, ow = raw->width() * f;
    const size_t out_px = static_cast<size_t>(oh) * static_cast<size_t>(ow);
    const double px = raw->pixel_size_nm() / f;
    // Emitter units (prediction / label_scale): the sum image counts emitters per pixel.
    std::vector<double> sum(out_px, 0.0);
    std::vector<float> map(out_px);
    std::vector<Emitter> locs;
    for (uint64_t k = 0; k < s.count; ++k) {
      const float* m = maps.data() + k * out_px;
      for (size_t p = 0; p < out_px; ++p) {
        map[p] = static_cast<float>(m[p] / meta.label_scale);
        sum[p] += map[p];
      }
      auto found = localize(map.data(), oh, ow, px, static_cast<int64_t>(s.first + k), lopt);
      locs.insert(locs.end(), found.begin(), found.end());
    }
    h5::Attributes attrs = ctx.provenance();
    for (const auto& [k, v] : identity) attrs[k] = v;
    h5::File out = h5::File::create(path, attrs);
    out.write("/sum", sum, {static_cast<uint64_t>(oh), static_cast<uint64_t>(ow)});
    out.write_table("/localizations", emitters_to_table(locs));
    out.set_attr("/", "first_frame", static_cast<double>(s.first));
    out.set_attr("/", "frames", static_cast<double>(s.count));
    out.set_attr("/", "acquisition_frames", static_cast<double>(s.total));
    out.set_attr("/", "pixel_size_nm", px);
    out.set_attr("/", "raw_pixel_size_nm", raw->pixel_size_nm());
    out.set_attr("/", "raw_width", static_cast<double>(raw->width()));
    out.set_attr("/", "raw_height", static_cast<double>(raw->height()));
    out.commit();
    done += s.count;
    progress.set(done);
  }
  progress.finish();
  double skipped_all = static_cast<double>(skipped);
  ctx.mpi.allreduce_sum(&skipped_all, 1);
  if (skipped_all > 0) log::print("infer: {} shard(s) already complete with this model and settings, skipped", skipped_all);
  log::print("infer: {} frames in {} shard(s) of {} acquisition(s) -> {}", all_frames, shards.size(), names.size(),
             out_dir);
}

const CommandRegistrar registrar({"infer", 50,
                                  "Emitter maps and localizations for raw.h5 acquisitions, in resumable shards.",
                                  run});

}  // namespace
}  // namespace dsir
