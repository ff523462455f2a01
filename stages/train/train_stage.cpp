// Stage `train`: data-parallel training over MPI ranks. Each global batch is split across the
// ranks; gradients are summed by bucketed MPI_Iallreduce during backward; rank 0 writes
// checkpoints, metrics.jsonl, previews and the loss curve. SIGUSR1/SIGTERM checkpoint at the next
// step boundary and exit with kExitRequeue (75); train.resume continues bit-identically.
#include <ATen/ops/abs.h>
#include <ATen/ops/zeros.h>
#include <torch/csrc/autograd/grad_mode.h>
#include <torch/version.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <numeric>
#include <optional>
#include <random>
#include <vector>

#include "pipeline/context.h"
#include "pipeline/errors.h"
#include "pipeline/formats/run_metrics.h"
#include "pipeline/log.h"
#include "pipeline/picture.h"
#include "pipeline/registry.h"
#include "stages/infer/localize.h"
#include "stages/train/adam.h"
#include "stages/train/distributed.h"
#include "stages/train/loss.h"
#include "stages/train/lr_schedule.h"
#include "stages/train/models/checkpoint.h"
#include "stages/train/models/model_registry.h"
#include "stages/train/models/torch_setup.h"
#include "stages/train/threshold.h"
#include "stages/train/upscaled_set.h"

namespace fs = std::filesystem;

namespace dsir {
namespace {

const ConfigSection section(
    "train", "Training: model, DSIR's loss, Adam, data-parallel over MPI ranks, checkpoints.",
    {
        KeySpec::text(
            "input", "''",
            "A raw.h5 with ground truth, its items upscaled and labelled as read with the upscale.* "
            "keys, or the upscale stage's upscaled.h5 of it (the same bits, read from disk) "
            "('' = {run.dir}/data/train.h5).")
            .cli("--input"),
        KeySpec::text("output", "''", "Output folder ('' = {run.dir}/train).").cli("--output"),
        KeySpec::text("model", "detector",
                      "Network architecture (registered model name: dsir, dsir-resize, deepstorm, subpixel, "
                      "detector).")
            .cli("--model"),
        KeySpec::integer("epochs", "20", "Passes over the training frames.").range(1, 1e6).cli("--epochs"),
        KeySpec::real("time_limit_min", "0",
                      "Training time budget of this run (minutes; 0 = none): at the first step boundary past "
                      "it, the state is saved as a checkpoint (train.resume=true continues from there) and "
                      "model.h5 keeps the best model, the current weights included.")
            .range(0, 1e9),
        KeySpec::integer("batch_size", "16", "Global batch size (split across ranks; DSIR: 32).")
            .range(1, 1e6),
        KeySpec::real("lr", "1e-3", "Adam learning rate (the peak of a schedule; DSIR: 1e-4).").range(0, 10),
        KeySpec::choice("lr_schedule", "cosine",
                        "Learning rate over the train.epochs' steps, or over train.time_limit_min where "
                        "that is further along: constant; cosine (lr to 0); one-cycle (lr/25 up to lr over "
                        "the first 30 %, then down to lr/2.5e5). plateau.patience needs constant.",
                        {"constant", "cosine", "one-cycle"}),
        KeySpec::real_list("betas", "[0.9, 0.999]", "Adam betas.").range(0, 1).size(2),
        KeySpec::real("weight_decay", "1e-5", "Adam L2 weight decay.").range(0, 1),
        KeySpec::integer(
            "plateau.patience", "0",
            "Reduce-on-plateau: epochs without validation improvement before lr *= factor (0: off).")
            .range(0, 1e6),
        KeySpec::real("plateau.factor", "0.1", "Reduce-on-plateau multiplier.").range(1e-6, 1),
        KeySpec::real("plateau.min_lr", "1e-7", "Reduce-on-plateau floor.").range(0, 10),
        KeySpec::integer("loss.kernel_size", "5", "Width W of the loss's Gaussian kernel (pixels, odd).")
            .range(1, 99),
        KeySpec::real("loss.fwhm", "3", "FWHM F of the loss's Gaussian kernel (pixels).").range(0.01, 100),
        KeySpec::real("loss.l1_weight", "0",
                      "Weight of an L1 penalty on the prediction (Deep-STORM's loss; 0: DSIR's).")
            .range(0, 1e6),
        KeySpec::real("label_scale", "100",
                      "Labels are multiplied by this (DSIR: 1, which trains far slower; see docs).")
            .range(1e-6, 1e6),
        KeySpec::real("validation_fraction", "0.02",
                      "Fraction of frames held out (the last ones; DSIR: 0.3).")
            .range(0, 0.9),
        KeySpec::choice(
            "bn_inference", "per-frame",
            "BatchNorm statistics at validation and inference (per-frame: as DSIR; running: eval()).",
            {"running", "per-frame"}),
        KeySpec::real("bucket_mb", "4", "Gradient bucket size for the overlapped all-reduce (MiB).")
            .range(1e-6, 4096),
        KeySpec::choice("allreduce", "auto",
                        "Gradient all-reduce: mpi (GPU buffers staged through pinned host memory unless MPI "
                        "is CUDA-aware), nccl (CUDA builds with NCCL), auto (nccl when built and each rank "
                        "has its own GPU).",
                        {"auto", "mpi", "nccl"}),
        KeySpec::boolean(
            "sync_batchnorm", "false",
            "BatchNorm statistics over the global batch (all ranks), as PyTorch's SyncBatchNorm; false: each "
            "rank's share, buffers then broadcast from rank 0 (DDP's default)."),
        KeySpec::choice("device", "auto", "auto: this rank's GPU (local rank) when CUDA is available.",
                        {"auto", "cpu", "cuda"}),
        KeySpec::integer("keep_checkpoints", "3", "Epoch checkpoints kept (the best is kept as model.h5).")
            .range(1, 1e6),
        KeySpec::boolean("channels_last", "false",
                         "Activations and weights in channels-last layout (measured on a CPU with LibTorch "
                         "1.13: 0.9x; docs/benchmarks.md)."),
        KeySpec::choice("precision", "float32",
                        "Type the network's LibTorch convolutions compute in: float32, or bfloat16 (mixed "
                        "precision: weights, gradients, Adam and BatchNorm stay float32; docs/benchmarks.md "
                        "gives its speed and accuracy).",
                        {"float32", "bfloat16"}),
        KeySpec::boolean("resume", "false", "Continue from the newest checkpoint in the output folder.")
            .cli("--resume"),
    });

const ProvenanceItem libtorch_version("libtorch_version", TORCH_VERSION);

// A stop request from Slurm (--signal=B:USR1@N) or the scheduler (SIGTERM), acted on at the next
// step boundary.
volatile std::sig_atomic_t g_stop_signal = 0;
extern "C" void on_stop_signal(int sig) { g_stop_signal = sig; }

class StopSignals {
 public:
  StopSignals() {
    g_stop_signal = 0;
    old_usr1_ = std::signal(SIGUSR1, on_stop_signal);
    old_term_ = std::signal(SIGTERM, on_stop_signal);
  }
  ~StopSignals() {
    std::signal(SIGUSR1, old_usr1_);
    std::signal(SIGTERM, old_term_);
  }

 private:
  void (*old_usr1_)(int);
  void (*old_term_)(int);
};

// The sampler: a permutation of the training frames that depends on (seed, epoch) only.
std::vector<uint64_t> epoch_order(uint64_t n, uint64_t seed, int64_t epoch) {
  std::vector<uint64_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::mt19937_64 rng(seed * 1000003ull + static_cast<uint64_t>(epoch));
  std::shuffle(order.begin(), order.end(), rng);
  return order;
}

std::vector<float> to_vector(const torch::Tensor& t) {
  torch::Tensor c = t.detach().to(torch::kCPU).contiguous().to(torch::kFloat);
  return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
}

std::string checkpoint_name(const std::string& dir, int64_t epoch) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "/checkpoint-epoch-%04lld.h5", static_cast<long long>(epoch));
  return dir + buf;
}

// Epochs of the checkpoint-epoch-NNNN.h5 files in `dir`, newest first; other names are ignored.
std::vector<int64_t> checkpoint_epochs(const std::string& dir) {
  static const std::string prefix = "checkpoint-epoch-", suffix = ".h5";
  std::vector<int64_t> epochs;
  if (!fs::exists(dir)) return epochs;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string n = e.path().filename().string();
    if (n.size() <= prefix.size() + suffix.size() || n.compare(0, prefix.size(), prefix) != 0 ||
        n.compare(n.size() - suffix.size(), suffix.size(), suffix) != 0)
      continue;
    const std::string digits = n.substr(prefix.size(), n.size() - prefix.size() - suffix.size());
    if (digits.size() > 12 ||
        !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; }))
      continue;
    epochs.push_back(std::stoll(digits));
  }
  std::sort(epochs.rbegin(), epochs.rend());
  return epochs;
}

// Every train.* key (and run.seed), read once when the stage starts.
struct TrainOptions {
  std::string input, output;  // resolved paths: upscaled.h5 (or raw.h5), the output folder
  ItemSpec items;             // how a raw.h5 input's items are rendered (upscale.*)
  std::string model, device, bn_inference, allreduce, precision;
  int64_t epochs = 0, batch_size = 0, keep_checkpoints = 0, seed = 0;
  double validation_fraction = 0, label_scale = 1, time_limit_min = 0, bucket_mb = 0;
  double lr = 0, weight_decay = 0;
  LrSchedule lr_schedule = LrSchedule::Constant;
  std::vector<double> betas;
  double loss_fwhm = 0, loss_l1_weight = 0;
  int64_t loss_kernel_size = 0;
  int64_t plateau_patience = 0;
  double plateau_factor = 1, plateau_min_lr = 0;
  bool resume = false, channels_last = false, sync_batchnorm = false;
};

TrainOptions read_train_options(const Context& ctx) {
  const Config& c = ctx.config;
  TrainOptions o;
  o.input = ctx.input_path("train.input", "data/train.h5");
  o.items = item_spec(c);
  o.output = ctx.path("train.output", "train");
  o.model = c.get_string("train.model");
  o.device = c.get_string("train.device");
  o.bn_inference = c.get_string("train.bn_inference");
  o.allreduce = c.get_string("train.allreduce");
  o.precision = c.get_string("train.precision");
  o.epochs = c.get_int("train.epochs");
  o.batch_size = c.get_int("train.batch_size");
  o.keep_checkpoints = c.get_int("train.keep_checkpoints");
  o.seed = c.get_int("run.seed");
  o.validation_fraction = c.get_double("train.validation_fraction");
  o.label_scale = c.get_double("train.label_scale");
  o.time_limit_min = c.get_double("train.time_limit_min");
  o.bucket_mb = c.get_double("train.bucket_mb");
  o.lr = c.get_double("train.lr");
  o.weight_decay = c.get_double("train.weight_decay");
  o.betas = c.get_doubles("train.betas");
  o.loss_fwhm = c.get_double("train.loss.fwhm");
  o.loss_l1_weight = c.get_double("train.loss.l1_weight");
  o.loss_kernel_size = c.get_int("train.loss.kernel_size");
  if (o.loss_kernel_size % 2 == 0) throw ConfigError("train.loss.kernel_size must be odd");
  o.plateau_patience = c.get_int("train.plateau.patience");
  o.plateau_factor = c.get_double("train.plateau.factor");
  o.plateau_min_lr = c.get_double("train.plateau.min_lr");
  o.lr_schedule = parse_lr_schedule(c.get_string("train.lr_schedule"));
  if (o.lr_schedule != LrSchedule::Constant && o.plateau_patience > 0)
    throw ConfigError("train.lr_schedule: '" + c.get_string("train.lr_schedule") +
                      "' sets the rate of every step; it cannot be combined with train.plateau.patience (for "
                      "reduce-on-plateau set train.lr_schedule: constant)");
  o.resume = c.get_bool("train.resume");
  o.channels_last = c.get_bool("train.channels_last");
  o.sync_batchnorm = c.get_bool("train.sync_batchnorm");
  return o;
}

class Trainer {
 public:
  Trainer(Context& ctx, TrainOptions options)
      : ctx_(ctx),
        o_(std::move(options)),
        out_dir_(o_.output),
        data_(o_.input, o_.items),
        device_(choose_device(o_.device, ctx.mpi.local_rank(), "train.device")),
        loss_fn_(static_cast<int>(o_.loss_kernel_size), o_.loss_fwhm) {
    n_val_ = static_cast<uint64_t>(std::llround(static_cast<double>(data_.frames) * o_.validation_fraction));
    n_train_ = data_.frames - n_val_;
    if (n_train_ == 0) throw ConfigError("train.validation_fraction: leaves no training frames");
    batch_ = static_cast<uint64_t>(o_.batch_size);
    seed_ = static_cast<uint64_t>(o_.seed);
    label_scale_ = o_.label_scale;
    l1_weight_ = o_.loss_l1_weight;

    torch::manual_seed(seed_);  // the same initial weights on every rank; broadcast makes sure
    model_ = make_model(o_.model);
    if (const int f = model_->required_factor(); f != 0 && f != data_.factor)
      throw ConfigError(
          fmt::format("train.model = {}: needs frames upscaled x{} (upscale.factor), the data's are x{}",
                      o_.model, f, data_.factor));
    if (model_->has_own_loss()) {
      // The detector asks for emitters as points and counts (detection_loss.h): no map loss.
      if (o_.items.labels == LabelMode::Gaussian)
        throw ConfigError(
            fmt::format("train.model = {}: learns from point labels; set upscale.labels to dsir "
                        "or deepstorm (gaussian heat maps hold no whole emitters)",
                        o_.model));
      if (l1_weight_ > 0)
        throw ConfigError(
            fmt::format("train.loss.l1_weight: applies to a map's loss; train.model = {} has a "
                        "loss of its own",
                        o_.model));
      label_scale_ = 1;  // its maps are in emitters per sub-pixel
    }
    model_->to(device_);
    model_->set_conv_precision(parse_precision(o_.precision));
    channels_last_ = o_.channels_last;
    if (channels_last_)
      for (auto& p : model_->parameters())
        if (p.dim() == 4) p.set_data(p.data().contiguous(at::MemoryFormat::ChannelsLast));
    sync_bn_ = o_.sync_batchnorm;
    if (sync_bn_) model_->set_sync_batchnorm(&ctx_.mpi);
    AdamOptions ao;
    ao.lr = o_.lr;
    ao.beta1 = o_.betas[0];
    ao.beta2 = o_.betas[1];
    ao.weight_decay = o_.weight_decay;
    adam_ = std::make_unique<Adam>(model_->parameters(), ao);

    meta_.arch = o_.model;
    meta_.bn_mode = o_.bn_inference;
    meta_.label_scale = label_scale_;
    meta_.factor = data_.factor;
    meta_.raw_pixel_size_nm = data_.raw_pixel_size_nm;
    meta_.normalize = data_.normalize;
    meta_.best_val_loss = std::numeric_limits<double>::infinity();
  }

  void run() {
    if (o_.resume) resume();
    broadcast_parameters_and_buffers(ctx_.mpi, *model_);
    GradientReducer reducer(ctx_.mpi, model_->parameters(), static_cast<size_t>(o_.bucket_mb * 1024 * 1024),
                            o_.allreduce);
    const int64_t epochs = o_.epochs;
    const uint64_t steps = (n_train_ + batch_ - 1) / batch_;
    log::print(
        "train: {} training + {} validation frames of {}x{} on {}, global batch {} over {} rank(s), "
        "{} steps/epoch, {} gradient bucket(s) over {}{}{}",
        n_train_, n_val_, data_.height, data_.width, device_.str(), batch_, ctx_.mpi.size(), steps,
        reducer.bucket_count(), reducer.transport(), sync_bn_ ? ", synchronised BatchNorm" : "",
        data_.rendered_on_the_fly() ? "; items upscaled from raw.h5 as read (upscale.* keys)" : "");
    StopSignals signals;
    const double budget_s = o_.time_limit_min * 60.0;
    if (budget_s > 0) {
      budget_start_ = std::chrono::steady_clock::now();
      if (o_.lr_schedule != LrSchedule::Constant)
        log::print(
            "train: train.lr_schedule spans the {} min budget{} (or the epochs' steps where further along)",
            o_.time_limit_min,
            carried_progress_ > 0 ? fmt::format(", from {:.0f} % on", 100 * carried_progress_) : "");
    }
    for (int64_t epoch = meta_.epoch; epoch < epochs; ++epoch) {
      const auto t0 = std::chrono::steady_clock::now();
      const std::optional<double> epoch_loss = train_epoch(epoch, steps, reducer);
      if (!epoch_loss) {
        finish_on_time_limit(epoch);
        break;
      }
      const double train_loss = *epoch_loss / static_cast<double>(n_train_);
      Preview preview;
      const double val_loss = validate(preview);
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      log::print("train: epoch {}/{}: train loss {:.6g}, validation loss {:.6g}, lr {:.3g}, {:.1f} frames/s",
                 epoch + 1, epochs, train_loss, val_loss, adam_->options().lr, n_train_ / seconds);
      // One reading of the clock, agreed, for the checkpoint's schedule progress and the stop.
      budget_spent_ = budget_spent_on_root();
      ctx_.mpi.allreduce_sum(&budget_spent_, 1);
      end_epoch(epoch, train_loss, val_loss, seconds, preview);
      if (epoch + 1 < epochs && budget_spent_ >= 1) {
        log::print(
            "train: time limit of {} min reached after epoch {}/{}; model.h5 holds the best model; "
            "continue with train.resume=true",
            o_.time_limit_min, epoch + 1, epochs);
        break;
      }
    }
    if (ctx_.mpi.is_root() && !fs::exists(out_dir_ + "/model.h5"))
      throw Error("train: no model written to " + out_dir_ + "/model.h5");
    choose_threshold();
  }

 private:
  struct Preview {
    torch::Tensor input, label, prediction;
  };

  // Restores weights, buffers, optimizer, epoch and position within it, curves, best loss.
  // Continues from the newest checkpoint that reads whole. One that does not (a checksum
  // mismatch, a cut file) is passed over with a warning for the one before: training from an
  // earlier epoch ends with the same weights, only later. Every rank reads the same files, so all
  // come to the same checkpoint.
  void resume() {
    const std::vector<int64_t> epochs = checkpoint_epochs(out_dir_);
    if (epochs.empty()) {
      log::print("train: nothing to resume in {}; starting afresh", out_dir_);
      return;
    }
    std::string ck;
    ModelMeta m;
    for (size_t k = 0; k < epochs.size(); ++k) {
      ck = checkpoint_name(out_dir_, epochs[k]);
      try {
        load_model(ck, &m);  // metadata (and a check that the file is a readable model)
        if (m.arch != meta_.arch)
          throw ConfigError("train.model: '" + meta_.arch + "' but " + ck + " holds '" + m.arch + "'");
        load_state(h5::File::open(ck), "/state", *model_);
        load_optimizer(ck, *model_, *adam_);
        adam_->options().lr = h5::File::open(ck).attr_double("/optimizer", "lr");
        break;
      } catch (const InputError& e) {
        if (k + 1 == epochs.size()) throw;
        log::warn("train: not resuming from {}; trying {}", e.what(),
                  checkpoint_name(out_dir_, epochs[k + 1]));
      }
    }
    meta_.epoch = m.epoch;
    meta_.step_in_epoch = m.step_in_epoch;
    meta_.epoch_loss_sum = m.epoch_loss_sum;
    meta_.best_val_loss = m.best_val_loss;
    meta_.epochs_since_best = m.epochs_since_best;
    carried_progress_ = m.schedule_progress < 1 ? m.schedule_progress : 0;
    for (const EpochMetrics& e : read_epoch_metrics(out_dir_ + "/metrics.jsonl")) {
      if (e.epoch > m.epoch) break;
      epoch_metrics_.push_back(e);
    }
    log::print("train: resuming from {} (epoch {}, step {} of the next)", ck, m.epoch, m.step_in_epoch);
  }

  // A batch on the device the network runs on (asynchronously from pinned memory on a GPU), in
  // the network's memory layout.
  torch::Tensor on_device(const torch::Tensor& t) const {
    torch::Tensor d = t.to(device_, /*non_blocking=*/device_.is_cuda());
    return channels_last_ ? d.contiguous(at::MemoryFormat::ChannelsLast) : d;
  }

  // The fraction of train.time_limit_min spent, 1 once it is up, by rank 0's clock: 0 on the
  // other ranks, so that the ranks, summing this, agree.
  double budget_spent_on_root() const {
    if (!ctx_.mpi.is_root() || !budget_start_) return 0;
    const double spent =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - *budget_start_).count();
    return std::min(1.0, spent / (o_.time_limit_min * 60.0));
  }
  // How far the time budget has moved the schedule: a run resumed from a checkpoint part way
  // along (stopped by a signal) spreads the rest over its own budget; one resumed after its
  // budget was spent starts a new span (a warm restart).
  double time_progress() const {
    return budget_spent_ >= 1 ? 1.0 : carried_progress_ + (1 - carried_progress_) * budget_spent_;
  }

  // The time limit fell within epoch `epoch` (its state is saved in that epoch's checkpoint): the
  // current weights are validated and become model.h5 if they are the best so far, or if no epoch
  // has finished. The checkpoint's best loss stays as it was, so that a resumed run goes on
  // exactly as an uninterrupted one.
  void finish_on_time_limit(int64_t epoch) {
    Preview preview;
    const double val_loss = validate(preview);
    const double frames_done = static_cast<double>(
        std::min<uint64_t>(n_train_, static_cast<uint64_t>(meta_.step_in_epoch) * batch_));
    const double score = std::isnan(val_loss) ? meta_.epoch_loss_sum / frames_done : val_loss;
    const bool none_yet = !fs::exists(out_dir_ + "/model.h5");
    log::print(
        "train: time limit of {} min reached at epoch {}, step {}; validation loss {:.6g}; state saved "
        "in {}; continue with train.resume=true",
        o_.time_limit_min, epoch + 1, meta_.step_in_epoch, val_loss, checkpoint_name(out_dir_, epoch));
    if (ctx_.mpi.is_root() && (none_yet || score < meta_.best_val_loss)) {
      ModelMeta saved = meta_;
      meta_.val_loss = score;
      save(out_dir_ + "/model.h5", false);
      meta_ = saved;
      log::print("train: model.h5 <- the weights at the time limit ({})",
                 none_yet ? "no epoch had finished" : "better than every finished epoch");
    }
  }

  // Returns the sum over the epoch's frames of the training loss; nothing when the time limit
  // stopped the epoch (its state then saved in the epoch's checkpoint).
  std::optional<double> train_epoch(int64_t epoch, uint64_t steps, GradientReducer& reducer) {
    const std::vector<uint64_t> order = epoch_order(n_train_, seed_, epoch);
    const uint64_t first_step = static_cast<uint64_t>(meta_.step_in_epoch);
    double loss_sum = meta_.epoch_loss_sum;
    meta_.step_in_epoch = 0;
    meta_.epoch_loss_sum = 0;
    Progress progress(fmt::format("epoch {}/{}", epoch + 1, o_.epochs), n_train_);
    model_->train();
    // This rank's frames of step s.
    auto frames_of = [&](uint64_t s) {
      const uint64_t b0 = s * batch_, b1 = std::min(n_train_, b0 + batch_);
      const Range mine = block_range(b1 - b0, ctx_.mpi.rank(), ctx_.mpi.size());
      return std::vector<uint64_t>(order.begin() + static_cast<std::ptrdiff_t>(b0 + mine.begin),
                                   order.begin() + static_cast<std::ptrdiff_t>(b0 + mine.end));
    };
    // Step s + 1's frames are read while step s computes.
    BatchPrefetcher prefetch(data_, label_scale_, device_, data_.upscales_on(device_));
    std::vector<uint64_t> next = first_step < steps ? frames_of(first_step) : std::vector<uint64_t>{};
    if (!next.empty()) prefetch.request(next);
    for (uint64_t s = first_step; s < steps; ++s) {
      const uint64_t b0 = s * batch_, b1 = std::min(n_train_, b0 + batch_);
      const std::vector<uint64_t> idx = std::move(next);
      std::pair<torch::Tensor, torch::Tensor> batch;
      if (!idx.empty()) batch = prefetch.take();
      next = s + 1 < steps ? frames_of(s + 1) : std::vector<uint64_t>{};
      if (!next.empty()) prefetch.request(next);
      adam_->zero_grad();
      reducer.begin_step();
      double local_loss = 0;
      if (idx.empty() && sync_bn_) {
        // No frames here this step, but synchronised BatchNorm needs every rank in its
        // collectives: an empty batch through forward and backward contributes zeros.
        torch::Tensor none =
            at::zeros({0, 1, static_cast<int64_t>(data_.height), static_cast<int64_t>(data_.width)},
                      torch::TensorOptions().device(device_));
        model_->forward(none).sum().backward();
      } else if (!idx.empty()) {
        torch::Tensor loss = training_loss(on_device(batch.first), on_device(batch.second));
        // This rank's share of the global mean: the summed gradients are the global mean's.
        loss = loss * (static_cast<double>(idx.size()) / static_cast<double>(b1 - b0));
        loss.backward();
        local_loss = loss.item<double>();
      }
      reducer.finish_step();
      // Steps or the time budget, whichever is further along (the budget as of the last step).
      if (o_.lr_schedule != LrSchedule::Constant)
        adam_->options().lr =
            scheduled_lr_at(o_.lr_schedule, o_.lr,
                            std::max(schedule_progress(static_cast<uint64_t>(epoch) * steps + s,
                                                       static_cast<uint64_t>(o_.epochs) * steps),
                                     time_progress()));
      adam_->step();
      broadcast_buffers(ctx_.mpi, *model_);
      // Agree on the step's loss, on whether a stop signal arrived (on any rank), on whether
      // the time limit is spent and how much of it (rank 0's clock).
      double agreed[3] = {local_loss, static_cast<double>(g_stop_signal), budget_spent_on_root()};
      ctx_.mpi.allreduce_sum(agreed, 3);
      budget_spent_ = agreed[2];
      loss_sum += agreed[0] * static_cast<double>(b1 - b0);
      progress.set(b1);
      if ((agreed[1] > 0 || budget_spent_ >= 1) && s + 1 < steps) {
        prefetch.drain();  // the checkpoint is written with no read outstanding
        save_mid_epoch(epoch, s + 1, loss_sum);
        if (agreed[1] > 0)
          throw Interrupted(
              fmt::format("train: stopped by a signal at epoch {}, step {}; state saved in {}; "
                          "continue with train.resume=true (exit code {})",
                          epoch + 1, s + 1, checkpoint_name(out_dir_, epoch), kExitRequeue));
        progress.finish();
        return std::nullopt;
      }
    }
    progress.finish();
    return loss_sum;
  }

  // A training step's loss: the model's own, or DSIR's blurred MSE of its map (+ Deep-STORM's L1).
  torch::Tensor training_loss(const torch::Tensor& inputs, const torch::Tensor& labels) {
    if (model_->has_own_loss()) return model_->own_loss(inputs, labels);
    torch::Tensor pred = model_->forward(inputs);
    torch::Tensor loss = loss_fn_(pred, labels);
    if (l1_weight_ > 0) loss = loss + l1_weight_ * at::abs(pred).mean();
    return loss;
  }

  // Saves the state before step `next_step` of `epoch` as the checkpoint of the epochs finished.
  void save_mid_epoch(int64_t epoch, uint64_t next_step, double loss_sum) {
    meta_.epoch = epoch;
    meta_.step_in_epoch = static_cast<int64_t>(next_step);
    meta_.epoch_loss_sum = loss_sum;
    meta_.step = adam_->steps();
    meta_.schedule_progress = time_progress();
    if (ctx_.mpi.is_root()) {
      fs::create_directories(out_dir_);
      save(checkpoint_name(out_dir_, epoch), true);
    }
    ctx_.mpi.barrier();
  }

  // model.h5's localization threshold and emitter mass (stages/train/threshold.h) from its maps of
  // the first kThresholdItems validation items, split across ranks as validation is; the counts
  // are summed (integers), so the choice does not depend on the number of ranks.
  void choose_threshold() {
    constexpr uint64_t kThresholdItems = 256;  // ~10^4 emitters at DSIR's density: JI to ~0.005
    const uint64_t n = std::min(n_val_, kThresholdItems);
    if (n == 0 || !data_.rendered_on_the_fly()) {
      log::print("train: localization threshold not chosen ({}); infer.threshold auto takes {}",
                 n == 0 ? "no validation frames" : "upscaled.h5 keeps no emitter lists: train from raw.h5",
                 kDefaultLocalizeThreshold);
      return;
    }
    ctx_.mpi.barrier();  // rank 0 wrote model.h5
    const std::string path = out_dir_ + "/model.h5";
    ModelMeta meta;
    const std::shared_ptr<EmitterNetImpl> model = load_model(path, &meta);
    model->to(device_);
    torch::NoGradGuard no_grad;
    model->eval();
    model->set_bn_mode(parse_bn_mode(meta.bn_mode));
    const LocalizeOptions lopt;
    const double map_pixel_nm = data_.raw_pixel_size_nm / data_.factor;
    LocalizationScores scores;
    const Range mine = block_range(n, ctx_.mpi.rank(), ctx_.mpi.size());
    for (uint64_t f = mine.begin; f < mine.end; f += batch_) {
      std::vector<uint64_t> idx;
      for (uint64_t i = f; i < std::min(mine.end, f + batch_); ++i) idx.push_back(n_train_ + i);
      const torch::Tensor maps =
          (model->forward(on_device(data_.batch_for(idx, 1.0, device_).first)) / meta.label_scale)
              .to(torch::kCPU)
              .contiguous();
      for (size_t i = 0; i < idx.size(); ++i) {
        const torch::Tensor m = maps[static_cast<int64_t>(i)][0];
        scores.add(find_peaks(m.data_ptr<float>(), data_.height, data_.width, map_pixel_nm,
                              LocalizationScores::thresholds().front(), lopt.radius, lopt.spread_radius),
                   *data_.emitters(idx[i]), data_.width * map_pixel_nm, data_.height * map_pixel_nm);
      }
    }
    ctx_.mpi.allreduce_sum(scores.counts().data(), scores.counts().size());
    const auto& thresholds = LocalizationScores::thresholds();
    const auto& masses = LocalizationScores::emitter_masses();
    const auto [t, m] = scores.best();
    std::string by_threshold, by_mass;
    for (size_t k = 0; k < thresholds.size(); ++k)
      by_threshold += fmt::format("{}{} {:.3f}", k == 0 ? "" : ", ", thresholds[k], scores.jaccard(k, m));
    for (size_t k = 0; k < masses.size(); ++k)
      by_mass += fmt::format("{}{} {:.3f}", k == 0 ? "" : ", ", masses[k], scores.jaccard(t, k));
    log::print(
        "train: localization threshold {}, emitter mass {} (JI@{:g}nm {:.3f} over {} validation item(s), {} "
        "emitters; threshold: JI {}; emitter mass (0: one localization per peak): JI {})",
        thresholds[t], masses[m], LocalizationScores::kToleranceNm, scores.jaccard(t, m), n,
        scores.emitters(), by_threshold, by_mass);
    if (ctx_.mpi.is_root()) {
      meta.localize_threshold = thresholds[t];
      meta.localize_emitter_mass = masses[m];
      save_checkpoint(path, *model, nullptr, meta, ctx_.provenance());
    }
    ctx_.mpi.barrier();  // the stages after this one read model.h5
  }

  // Validation loss with the inference BatchNorm mode, frames split across ranks.
  double validate(Preview& preview) {
    torch::NoGradGuard no_grad;
    model_->eval();
    model_->set_bn_mode(parse_bn_mode(meta_.bn_mode));
    double sums[2] = {0, 0};  // loss x frames, frames
    const Range mine = block_range(n_val_, ctx_.mpi.rank(), ctx_.mpi.size());
    for (uint64_t f = mine.begin; f < mine.end; f += batch_) {
      std::vector<uint64_t> idx;
      for (uint64_t i = f; i < std::min(mine.end, f + batch_); ++i) idx.push_back(n_train_ + i);
      auto [x, y] = data_.batch_for(idx, label_scale_, device_);
      x = on_device(x);
      y = on_device(y);
      if (model_->has_own_loss()) {
        sums[0] += model_->own_loss(x, y).item<double>() * static_cast<double>(idx.size());
        if (!preview.input.defined()) preview = {x[0][0], y[0][0], model_->forward(x.narrow(0, 0, 1))[0][0]};
      } else {
        torch::Tensor p = model_->forward(x);
        sums[0] += loss_fn_(p, y).item<double>() * static_cast<double>(idx.size());
        if (!preview.input.defined()) preview = {x[0][0], y[0][0], p[0][0]};
      }
      sums[1] += static_cast<double>(idx.size());
    }
    ctx_.mpi.allreduce_sum(sums, 2);
    return sums[1] > 0 ? sums[0] / sums[1] : std::nan("");
  }

  void end_epoch(int64_t epoch, double train_loss, double val_loss, double seconds, const Preview& preview) {
    const double score = std::isnan(val_loss) ? train_loss : val_loss;
    const bool best = score <= meta_.best_val_loss;
    if (best) {
      meta_.best_val_loss = score;
      meta_.epochs_since_best = 0;
    } else {
      ++meta_.epochs_since_best;
    }
    const int64_t patience = o_.plateau_patience;
    if (patience > 0 && meta_.epochs_since_best >= patience) {
      const double lr = std::max(o_.plateau_min_lr, adam_->options().lr * o_.plateau_factor);
      if (lr < adam_->options().lr)
        log::print("train: validation loss has not improved for {} epochs; lr -> {:.3g}", patience, lr);
      adam_->options().lr = lr;
      meta_.epochs_since_best = 0;
    }
    meta_.epoch = epoch + 1;
    meta_.step = adam_->steps();
    meta_.val_loss = score;
    meta_.schedule_progress = time_progress();
    if (!ctx_.mpi.is_root()) return;
    fs::create_directories(out_dir_);
    save(checkpoint_name(out_dir_, epoch + 1), true);
    const int64_t stale = epoch + 1 - o_.keep_checkpoints;
    if (stale >= 1) fs::remove(checkpoint_name(out_dir_, stale));
    if (best) save(out_dir_ + "/model.h5", false);

    EpochMetrics record;
    record.epoch = epoch + 1;
    record.step = adam_->steps();
    record.train_loss = train_loss;
    record.val_loss = val_loss;
    record.lr = adam_->options().lr;
    record.frames_per_s = static_cast<double>(n_train_) / seconds;
    record.seconds = seconds;
    epoch_metrics_.push_back(record);
    write_epoch_metrics(out_dir_ + "/metrics.jsonl", epoch_metrics_);
    std::vector<double> curve_epoch, curve_train, curve_val;
    for (const EpochMetrics& e : epoch_metrics_) {
      curve_epoch.push_back(static_cast<double>(e.epoch));
      curve_train.push_back(e.train_loss);
      curve_val.push_back(e.val_loss);
    }
    // DSIR's loss is positive, best seen on a log scale; the detector's log-likelihood is not.
    const bool log_y = !model_->has_own_loss();
    picture::save_line_plot(out_dir_ + "/loss.png", "training loss", "epoch", log_y ? "loss (log10)" : "loss",
                            {{"train", curve_epoch, curve_train}, {"validation", curve_epoch, curve_val}},
                            log_y);
    if (preview.input.defined()) {
      const int h = static_cast<int>(preview.input.size(0)), w = static_cast<int>(preview.input.size(1));
      picture::save_panels_png(
          fmt::format("{}/previews/epoch-{:04d}.png", out_dir_, epoch + 1),
          {{"input", to_vector(preview.input), w, h},
           {"label (blurred)", to_vector(loss_fn_.blur(preview.label.unsqueeze(0).unsqueeze(0))), w, h},
           {"prediction", to_vector(preview.prediction), w, h}});
    }
  }

  void save(const std::string& path, bool with_optimizer) {
    save_checkpoint(path, *model_, with_optimizer ? adam_.get() : nullptr, meta_, ctx_.provenance());
  }

  Context& ctx_;
  const TrainOptions o_;
  std::string out_dir_;
  UpscaledSet data_;
  torch::Device device_;
  bool channels_last_ = false;
  BlurredMseLoss loss_fn_;
  std::shared_ptr<EmitterNetImpl> model_;
  std::unique_ptr<Adam> adam_;
  ModelMeta meta_;
  uint64_t n_train_ = 0, n_val_ = 0, batch_ = 0, seed_ = 0;
  double label_scale_ = 1, l1_weight_ = 0;
  bool sync_bn_ = false;
  std::vector<EpochMetrics> epoch_metrics_;  // metrics.jsonl's records, this run's and resumed
  std::optional<std::chrono::steady_clock::time_point> budget_start_;  // train.time_limit_min
  double budget_spent_ = 0;      // of this run's time budget, as the ranks agreed at the last step
  double carried_progress_ = 0;  // the schedule's time progress resumed from a checkpoint
};

void run(Context& ctx) {
  setup_torch_threads(ctx.threads());
  Trainer(ctx, read_train_options(ctx)).run();
}

const CommandRegistrar registrar({"train", 40,
                                  "Train the network on raw.h5 frames with ground truth (MPI data-parallel).",
                                  run});

}  // namespace
}  // namespace dsir
