// Stage `infer`: raw.h5 acquisitions (one, a list, or globs over an archive) ->
// infer/<acquisition>/shard-NNNNN.h5, each holding the sum of its frames' emitter maps and their
// localizations. Shards go to ranks statically (round-robin) or through a rank-0 work queue; a
// shard already complete with the same source, model and settings is skipped, so a killed job
// resumes where it stopped and ends with the same bits as an uninterrupted one.
#include <ATen/Parallel.h>

#include <cmath>
#include <filesystem>
#include <map>

#include "pipeline/context.h"
#include "pipeline/errors.h"
#include "pipeline/folder_lock.h"
#include "pipeline/formats/raw_file.h"
#include "pipeline/inputs.h"
#include "pipeline/log.h"
#include "pipeline/registry.h"
#include "stages/infer/localize.h"
#include "stages/infer/photometry.h"
#include "stages/infer/plan.h"
#include "stages/infer/predictor.h"
#include "stages/train/models/torch_setup.h"

namespace dsir {
namespace {

const ConfigSection section(
    "infer", "Inference: emitter maps and localizations, sharded over ranks, resumable.",
    {
        KeySpec::text("checkpoint", "''", "Model file ('' = {run.dir}/train/model.h5).").cli("--checkpoint"),
        KeySpec::text_list(
            "input", "[]",
            "raw.h5 files or globs ([] = run.input as ingested, else {run.dir}/data/acquisition.h5).")
            .cli("--input"),
        KeySpec::text("output", "''", "Shard folder ('' = {run.dir}/infer).").cli("--output"),
        KeySpec::choice("bn", "checkpoint",
                        "BatchNorm statistics: as stored with the model, running, per-frame.",
                        {"checkpoint", "running", "per-frame"})
            .cli("--bn"),
        KeySpec::integer("shard_frames", "64", "Frames per shard (the unit of work and of restart).")
            .range(1, 1e7),
        KeySpec::choice(
            "schedule", "dynamic",
            "Shards to ranks: static (round-robin) or dynamic (a rank-0 queue; faster ranks take more).",
            {"static", "dynamic"}),
        KeySpec::integer("batch_size", "8",
                         "Most frames per network call (fewer for frames over 128k upscaled pixels, or as "
                         "memory_mb requires).")
            .range(1, 4096),
        KeySpec::real("memory_mb", "768",
                      "Memory per rank for frames (MiB): network calls and frame buffers; LibTorch adds "
                      "~180. Larger frames are tiled (running BatchNorm only).")
            .range(16, 1e7),
        KeySpec::integer("tile_size", "0",
                         "Tile core size in raw pixels (0: whole frames when they fit memory_mb, else the "
                         "largest tile that does).")
            .range(0, 65535),
        KeySpec::integer("tile_overlap", "8", "Context around each tile core, raw pixels per side.")
            .range(0, 4096),
        KeySpec::choice("device", "auto",
                        "Where the network runs: auto (this rank's GPU by local rank when CUDA is "
                        "available), cpu, cuda. memory_mb then budgets GPU memory.",
                        {"auto", "cpu", "cuda"}),
        KeySpec::choice("engine", "auto",
                        "How the network runs on a CPU: auto (the fused kernel for DSIR's net where the CPU "
                        "has AVX2 and FMA, several times LibTorch's speed), fused, libtorch.",
                        {"auto", "fused", "libtorch"}),
        KeySpec::choice("precision", "float32",
                        "Type the network's LibTorch convolutions compute in: float32, or bfloat16 (the "
                        "fused kernel computes in float32; docs/benchmarks.md gives speed and accuracy).",
                        {"float32", "bfloat16"}),
        KeySpec::text("threshold", "auto",
                      "Minimum emitter mass of a localization (emitters): a number, or auto (the model's "
                      "own, chosen at the end of training on validation items with known emitters; 0.3 "
                      "for a model without one)."),
        KeySpec::text("emitter_mass", "auto",
                      "One emitter's mass in a peak's window: a peak of mass M gives round(M / emitter_mass) "
                      "localizations (1 to 4) spread along its long axis; a number (0: one per peak), or "
                      "auto (the model's own, chosen with the threshold; 0 for a model without one)."),
    });

// infer.threshold and infer.emitter_mass: a number >= 0, or auto: the model's own, chosen together
// in training (stages/train/threshold.h; a model has them when its threshold is above 0), or
// `fallback` for a model without (imported weights, trained from upscaled.h5). `what` names it in
// the log (bench/accuracy_levers.sh reads that line).
double localize_setting(const std::string& key, const std::string& what, const std::string& value,
                        const ModelMeta& meta, double own, double fallback, const std::string& checkpoint) {
  if (value == "auto") {
    const bool chosen = meta.localize_threshold > 0;
    const double v = chosen ? own : fallback;
    log::print("infer: localization {} {} ({})", what, v,
               chosen ? "the model's, chosen in training: " + checkpoint
                      : "the default: " + checkpoint + " has none");
    return v;
  }
  double v = 0;
  if (!parse_decimal(value, v) || v < 0 || v > 1e6)
    throw ConfigError(key + ": '" + value + "' is neither auto nor a number in [0, 1e6]");
  return v;
}

// Rank 0: the acquisitions named by infer.input, each checked against the model.
std::vector<Acquisition> scan_inputs(const std::vector<std::string>& entries, const Predictor& predictor,
                                     const std::string& checkpoint) {
  std::vector<std::string> repeated;
  const std::vector<std::string> paths = resolve_inputs(entries, &repeated);
  for (const auto& r : repeated) log::warn("infer.input: '{}' is named more than once; processed once", r);
  const std::vector<std::string> names = acquisition_names(paths);
  const ModelMeta& meta = predictor.meta();
  std::unique_ptr<Progress> progress;
  if (paths.size() > 50) progress = std::make_unique<Progress>("scan inputs", paths.size(), "files");
  std::vector<Acquisition> out;
  for (size_t i = 0; i < paths.size(); ++i) {
    const std::string& p = paths[i];
    RawFileReader raw(p);
    if (std::abs(raw.pixel_size_nm() - meta.raw_pixel_size_nm) > 1e-6 * meta.raw_pixel_size_nm)
      throw InputError(fmt::format("{}: pixel size {} nm, but the model {} was trained on {} nm pixels", p,
                                   raw.pixel_size_nm(), checkpoint, meta.raw_pixel_size_nm));
    if (raw.frames() == 0) throw InputError(p + ": /frames holds no frames");
    try {
      predictor.plan(raw.height(), raw.width());
    } catch (const ConfigError& e) {
      throw ConfigError(p + ": " + e.what());
    }
    Acquisition a;
    a.name = names[i];
    a.path = p;
    a.frames = raw.frames();
    a.height = raw.height();
    a.width = raw.width();
    a.pixel_size_nm = raw.pixel_size_nm();
    const h5::File f = h5::File::open(p);
    if (f.has_attr("/", "camera")) {
      a.camera = f.attr_string("/", "camera");
      CameraCalibration::from_json(a.camera, p);  // fail now, not in a shard on some rank
    }
    a.stat = file_stat(p);
    out.push_back(std::move(a));
    if (progress) progress->add();
  }
  return out;
}

// What, besides the source and the model, decides a shard's bits; hashed into its identity.
std::string shard_settings(const Predictor& predictor, const FramePlan& plan, const LocalizeOptions& lopt) {
  const ModelMeta& m = predictor.meta();
  return fmt::format(
      "arch={}; engine={}; precision={}; factor={}; label_scale={}; normalize={}; bn={}; {}; threshold={}; "
      "emitter_mass={}; localize=smoothed maxima r{} + weighted centroid + long-axis split r{}; "
      "photometry=fixed-centre gaussian fit r3 + flags",
      m.arch, predictor.engine(), predictor.options().precision, m.factor, m.label_scale, m.normalize,
      to_string(predictor.bn_mode()),
      plan.tiled() ? fmt::format("tiles={}+{}", plan.tile, plan.overlap)
                   : fmt::format("frames_per_call={}", plan.frames_per_call),
      lopt.threshold, lopt.emitter_mass, lopt.radius, lopt.spread_radius);
}

// One rank's shard computations; keeps the current acquisition open.
class ShardWorker {
 public:
  ShardWorker(Predictor& predictor, const std::vector<Acquisition>& acquisitions, const LocalizeOptions& lopt,
              const Context& ctx)
      : predictor_(predictor), acquisitions_(acquisitions), lopt_(lopt), ctx_(ctx) {}

  // Computes and writes one shard; `after_batch(frames)` runs after every network call.
  template <class AfterBatch>
  void compute(const ShardTask& s, const std::string& path, const ShardInfo& identity,
               const std::string& settings, AfterBatch&& after_batch) {
    const Acquisition& a = acquisitions_[s.acquisition];
    open(s.acquisition);
    const ModelMeta& meta = predictor_.meta();
    const FramePlan plan = predictor_.plan(a.height, a.width);
    const int f = meta.factor;
    const int oh = a.height * f, ow = a.width * f;
    const size_t in_px = static_cast<size_t>(a.height) * static_cast<size_t>(a.width);
    const size_t out_px = static_cast<size_t>(oh) * static_cast<size_t>(ow);
    const double px = a.pixel_size_nm / f;
    // Frames are read as they are predicted: memory holds one network call, never the shard.
    const uint64_t step = static_cast<uint64_t>(plan.frames_per_call);
    std::vector<float> maps(step * out_px);
    std::vector<double> sum(out_px, 0.0);  // emitter units (prediction / label_scale)
    std::vector<Emitter> locs;
    for (uint64_t k = 0; k < s.count; k += step) {
      const uint64_t n = std::min(step, s.count - k);
      std::vector<float> raw;
      try {
        raw = raw_->read(s.first + k, n);
      } catch (const InputError& e) {
        throw InputError(
            fmt::format("{} (reading frames {}-{}, 0-based)", e.what(), s.first + k, s.first + k + n - 1));
      }
      predictor_.predict(raw.data(), static_cast<int64_t>(n), a.height, a.width, plan, maps.data(), gmean_,
                         gstd_);
      // Frames in order for the sum (its bits); localizations frame by frame on the rank's
      // threads, appended in frame order.
      for (uint64_t i = 0; i < n; ++i) {
        float* map = maps.data() + i * out_px;
        for (size_t p = 0; p < out_px; ++p) {
          map[p] = static_cast<float>(map[p] / meta.label_scale);
          sum[p] += map[p];
        }
      }
      std::vector<std::vector<Emitter>> found(n);
      at::parallel_for(0, static_cast<int64_t>(n), 1, [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) {
          const auto u = static_cast<size_t>(i);
          found[u] =
              localize(maps.data() + u * out_px, oh, ow, px, static_cast<int64_t>(s.first + k) + i, lopt_);
          measure_photometry(raw.data() + u * in_px, a.height, a.width, a.pixel_size_nm, camera_,
                             found[u].begin(), found[u].end());
        }
      });
      for (const auto& f_locs : found) locs.insert(locs.end(), f_locs.begin(), f_locs.end());
      after_batch(n);
    }
    Shard shard;
    shard.info = identity;
    ShardInfo& info = shard.info;
    info.settings = settings;
    info.bn_mode = to_string(predictor_.bn_mode());
    info.threshold = fmt::format("{}", lopt_.threshold);
    info.acquisition = a.name;
    info.camera = a.camera;
    info.first_frame = s.first;
    info.frames = s.count;
    info.acquisition_frames = a.frames;
    info.pixel_size_nm = px;
    info.raw_pixel_size_nm = a.pixel_size_nm;
    info.raw_width = a.width;
    info.raw_height = a.height;
    shard.height = static_cast<uint64_t>(oh);
    shard.width = static_cast<uint64_t>(ow);
    shard.sum = std::move(sum);
    shard.localizations = std::move(locs);
    write_shard(path, ctx_.provenance(), shard);
  }

 private:
  void open(size_t index) {
    if (raw_ && open_ == index) return;
    const Acquisition& a = acquisitions_[index];
    raw_ = std::make_unique<RawFileReader>(a.path);
    if (raw_->frames() != a.frames || raw_->height() != a.height || raw_->width() != a.width)
      throw InputError(a.path + ": changed while inference was running (size differs from the plan)");
    open_ = index;
    camera_ = a.camera.empty() ? CameraCalibration{} : CameraCalibration::from_json(a.camera, a.path);
    gmean_ = 0, gstd_ = 1;
    if (predictor_.meta().normalize == "global") {
      // A pass over the stack; cached so a rank does it once per acquisition.
      auto it = mean_std_.find(index);
      if (it == mean_std_.end()) it = mean_std_.emplace(index, raw_->mean_std()).first;
      std::tie(gmean_, gstd_) = it->second;
    }
  }

  Predictor& predictor_;
  const std::vector<Acquisition>& acquisitions_;
  const LocalizeOptions& lopt_;
  const Context& ctx_;
  std::unique_ptr<RawFileReader> raw_;
  size_t open_ = 0;
  CameraCalibration camera_;
  double gmean_ = 0, gstd_ = 1;
  std::map<size_t, std::pair<double, double>> mean_std_;
};

// Two infer jobs writing one folder would replace each other's shards: rank 0 takes the folder's
// lock and tells the other ranks, so that a refusal ends every rank with one message.
std::unique_ptr<FolderLock> lock_output(const Context& ctx, const std::string& out_dir) {
  std::unique_ptr<FolderLock> lock;
  std::string refusal;
  if (ctx.mpi.is_root()) {
    try {
      lock = std::make_unique<FolderLock>(out_dir + "/.dsir-infer.lock", "dsir infer");
    } catch (const Error& e) {
      refusal = e.what();
    }
    if (lock && !lock->took_over().empty())
      log::print("infer: took over the lock of {}/.dsir-infer.lock from a process that has ended ({})",
                 out_dir, lock->took_over());
  }
  ctx.mpi.broadcast(refusal);
  if (!refusal.empty()) throw CollectiveError(refusal, 1);
  return lock;
}

void run(Context& ctx) {
  const Config& c = ctx.config;
  setup_torch_threads(ctx.threads());
  const std::string checkpoint = ctx.input_path("infer.checkpoint", "train/model.h5");
  std::vector<std::string> entries = c.get_strings("infer.input");
  // By default the acquisition of the run: run.input's stacks as ingest wrote them, or the one
  // simulated (or ingested) acquisition.
  if (entries.empty())
    for (const auto& stack : expand_inputs(c.get_strings("run.input")))
      entries.push_back(
          ingested_path(stack, (std::filesystem::path(ctx.run_dir()) / kRunInputFolder).string()));
  if (entries.empty()) entries.push_back(ctx.run_dir() + "/data/acquisition.h5");
  const std::string out_dir = ctx.path("infer.output", "infer");
  const std::unique_ptr<FolderLock> lock = lock_output(ctx, out_dir);
  const uint64_t shard_frames = static_cast<uint64_t>(c.get_int("infer.shard_frames"));
  const bool dynamic = c.get_string("infer.schedule") == "dynamic";
  PredictorOptions popt;
  popt.bn = c.get_string("infer.bn");
  popt.batch_size = static_cast<int>(c.get_int("infer.batch_size"));
  popt.memory_mb = c.get_double("infer.memory_mb");
  popt.tile_size = static_cast<int>(c.get_int("infer.tile_size"));
  popt.tile_overlap = static_cast<int>(c.get_int("infer.tile_overlap"));
  popt.device = c.get_string("infer.device");
  popt.local_rank = ctx.mpi.local_rank();
  popt.engine = c.get_string("infer.engine");
  popt.precision = c.get_string("infer.precision");
  Predictor predictor(checkpoint, popt);
  LocalizeOptions lopt;
  const ModelMeta& meta = predictor.meta();
  lopt.threshold = localize_setting("infer.threshold", "threshold", c.get_string("infer.threshold"), meta,
                                    meta.localize_threshold, kDefaultLocalizeThreshold, checkpoint);
  lopt.emitter_mass =
      localize_setting("infer.emitter_mass", "emitter mass", c.get_string("infer.emitter_mass"), meta,
                       meta.localize_emitter_mass, 0, checkpoint);

  // Rank 0 scans the inputs once (an archive may hold thousands of files) and sends the plan, or
  // the error it met, which every rank then throws: an error of all ranks, reported once.
  std::string packed, scan_error;
  double scan_code = 1;  // exit code of the scan error: 2 for a ConfigError
  if (ctx.mpi.is_root()) {
    try {
      const std::vector<Acquisition> scanned = scan_inputs(entries, predictor, checkpoint);
      size_t removed = 0;
      for (const auto& a : scanned)
        removed += remove_stale_shards(out_dir + "/" + a.name, make_shards({a}, shard_frames).size());
      if (removed > 0)
        log::print("infer: removed {} leftover file(s) of an earlier run (temporaries, surplus shards)",
                   removed);
      packed = pack(scanned);
    } catch (const ConfigError& e) {
      scan_error = e.what();
      scan_code = 2;
    } catch (const Error& e) {
      scan_error = e.what();
    }
  }
  // As the lock refusal above: rank 0 decided, every rank learns it together.
  ctx.mpi.broadcast(scan_error);
  if (!scan_error.empty())
    throw CollectiveError(scan_error, static_cast<int>(ctx.mpi.allreduce_max(scan_code)));
  ctx.mpi.broadcast(packed);
  const std::vector<Acquisition> acquisitions = unpack(packed);
  const std::vector<ShardTask> shards = make_shards(acquisitions, shard_frames);
  std::vector<std::string> settings;
  for (const auto& a : acquisitions)
    settings.push_back(shard_settings(predictor, predictor.plan(a.height, a.width), lopt));
  uint64_t all_frames = 0;
  for (const auto& s : shards) all_frames += s.count;
  if (!acquisitions.empty()) {
    const Acquisition& a = acquisitions.front();
    log::print(
        "infer: {} acquisition(s), {} frames, {} shard(s), {} schedule over {} rank(s); {}x{} frames: {}",
        acquisitions.size(), all_frames, shards.size(), dynamic ? "dynamic" : "static", ctx.mpi.size(),
        a.width, a.height, predictor.plan(a.height, a.width).describe());
  }

  std::unique_ptr<WorkQueue> queue;
  if (dynamic) queue = std::make_unique<WorkQueue>(ctx.mpi, shards.size());
  uint64_t static_next = static_cast<uint64_t>(ctx.mpi.rank()), mine_total = 0;
  for (uint64_t i = static_next; i < shards.size(); i += static_cast<uint64_t>(ctx.mpi.size()))
    mine_total += shards[i].count;
  Progress progress("infer", all_frames);
  if (!dynamic)
    progress.set_scale(static_cast<double>(all_frames) /
                       static_cast<double>(std::max<uint64_t>(1, mine_total)));
  auto next_shard = [&](uint64_t* i, uint64_t frames_done) {
    if (queue) return queue->next(i, frames_done);
    if (static_next >= shards.size()) return false;
    *i = static_next;
    static_next += static_cast<uint64_t>(ctx.mpi.size());
    return true;
  };

  ShardWorker worker(predictor, acquisitions, lopt, ctx);
  uint64_t skipped = 0, done = 0, last = 0, i = 0;
  while (next_shard(&i, last)) {
    const ShardTask& s = shards[i];
    const Acquisition& a = acquisitions[s.acquisition];
    const std::string path = shard_path(out_dir, a.name, s.index);
    const ShardInfo identity = shard_identity(a, s, predictor.checksum(), settings[s.acquisition]);
    const ShardCheck found = check_shard(path, identity);
    if (found.state == ShardState::complete) {
      ++skipped;
    } else {
      // Whichever rank computes the shard says why it replaces the file there.
      if (found.state == ShardState::corrupt || found.state == ShardState::unverifiable)
        log::all_print("infer: {}; recomputing the shard", found.reason);
      uint64_t in_shard = 0;
      worker.compute(s, path, identity, settings[s.acquisition], [&](uint64_t n) {
        in_shard += n;
        if (queue) {
          queue->serve();  // rank 0 hands out shards between its own batches
          progress.set(queue->units_done() + in_shard);
        } else {
          progress.set(done + in_shard);
        }
      });
    }
    done += s.count;
    last = s.count;
    progress.set(queue ? queue->units_done() : done);
  }
  progress.finish();
  double skipped_all = static_cast<double>(skipped);
  ctx.mpi.allreduce_sum(&skipped_all, 1);
  if (skipped_all > 0)
    log::print("infer: {} shard(s) already complete with this model and settings, skipped", skipped_all);
  log::print("infer: {} frames in {} shard(s) of {} acquisition(s) -> {}", all_frames, shards.size(),
             acquisitions.size(), out_dir);
}

const CommandRegistrar registrar(
    {"infer", 50, "Emitter maps and localizations for raw.h5 acquisitions, in resumable shards.", run});

}  // namespace
}  // namespace dsir
