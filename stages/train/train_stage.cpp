// Stage `train`: data-parallel training over MPI ranks. Each global batch is split across the
// ranks; gradients are averaged with MPI_Allreduce; rank 0 writes checkpoints, metrics.jsonl,
// previews and the loss curve.
#include <ATen/Context.h>
#include <ATen/ops/from_blob.h>
#include <ATen/ops/stack.h>
#include <nlohmann/json.hpp>
#include <torch/csrc/autograd/grad_mode.h>
#include <torch/version.h>

#include <chrono>
#include <filesystem>
#include <numeric>
#include <random>

#include "pipeline/atomic_file.h"
#include "pipeline/context.h"
#include "pipeline/errors.h"
#include "pipeline/log.h"
#include "pipeline/picture.h"
#include "pipeline/registry.h"
#include "stages/train/adam.h"
#include "stages/train/checkpoint.h"
#include "stages/train/distributed.h"
#include "stages/train/loss.h"
#include "stages/train/models/model_registry.h"
#include "stages/train/torch_setup.h"

namespace fs = std::filesystem;

namespace dsir {
namespace {

const ConfigSection section(
    "train", "Training: model, DSIR's loss, Adam, data-parallel over MPI ranks.",
    {
        {"input", KeyType::String, "''", "upscaled.h5 ('' = {run.dir}/data/train-upscaled.h5).", -1e300, 1e300,
         {}, "--input"},
        {"output", KeyType::String, "''", "Output folder ('' = {run.dir}/train).", -1e300, 1e300, {}, "--output"},
        {"model", KeyType::String, "dsir", "Network architecture (registered model name).", -1e300, 1e300, {},
         "--model"},
        {"epochs", KeyType::Int, "100", "Passes over the training frames.", 1, 1e6, {}, "--epochs"},
        {"batch_size", KeyType::Int, "32", "Global batch size (split across ranks).", 1, 1e6},
        {"lr", KeyType::Float, "1e-4", "Adam learning rate.", 0, 10},
        {"betas", KeyType::FloatList, "[0.9, 0.999]", "Adam betas.", 0, 1, {}, "", 2},
        {"weight_decay", KeyType::Float, "1e-5", "Adam L2 weight decay.", 0, 1},
        {"loss.kernel_size", KeyType::Int, "5", "Width W of the loss's Gaussian kernel (pixels, odd).", 1, 99},
        {"loss.fwhm", KeyType::Float, "3", "FWHM F of the loss's Gaussian kernel (pixels).", 0.01, 100},
        {"label_scale", KeyType::Float, "1",
         "Labels are multiplied by this (DSIR: 1; 100 trains much faster, see docs).", 1e-6, 1e6},
        {"validation_fraction", KeyType::Float, "0.3", "Fraction of frames held out (the last ones).", 0, 0.9},
        {"bn_inference", KeyType::Choice, "per-frame",
         "BatchNorm statistics at validation and inference (per-frame: as DSIR; running: eval()).",
         -1e300, 1e300, {"running", "per-frame"}},
        {"keep_checkpoints", KeyType::Int, "3", "Epoch checkpoints kept (the best is kept as model.h5).", 1,
         1e6},
        {"resume", KeyType::Bool, "false", "Continue from the newest checkpoint in the output folder.", -1e300,
         1e300, {}, "--resume"},
    });

const ProvenanceItem libtorch_version("libtorch_version", TORCH_VERSION);

// Frames of upscaled.h5 read on demand (memory: one batch).
class UpscaledSet {
 public:
  explicit UpscaledSet(const std::string& path) : file_(h5::File::open(path)) {
    for (const char* d : {"/inputs", "/labels"})
      if (!file_.has(d)) throw InputError(path + ": missing dataset " + std::string(d) + " (not an upscaled.h5?)");
    h5::Dims d = file_.shape("/inputs");
    if (d.size() != 3 || file_.shape("/labels") != d)
      throw InputError(path + ": /inputs and /labels must both be frames x height x width");
    frames = d[0];
    height = static_cast<int64_t>(d[1]);
    width = static_cast<int64_t>(d[2]);
    for (const char* a : {"factor", "raw_pixel_size_nm"})
      if (!file_.has_attr("/", a)) throw InputError(path + ": missing attribute " + std::string(a));
    factor = static_cast<int>(file_.attr_double("/", "factor"));
    raw_pixel_size_nm = file_.attr_double("/", "raw_pixel_size_nm");
    normalize = file_.attr_string("/", "normalize");
  }
  // (n, 1, H, W) inputs and labels for the given frame indices.
  std::pair<torch::Tensor, torch::Tensor> batch(const std::vector<uint64_t>& idx, double label_scale) const {
    std::vector<torch::Tensor> xs, ys;
    for (uint64_t i : idx) {
      auto x = file_.read_rows<float>("/inputs", i, 1);
      auto y = file_.read_rows<float>("/labels", i, 1);
      xs.push_back(at::from_blob(x.data(), {1, height, width}, torch::kFloat).clone());
      ys.push_back(at::from_blob(y.data(), {1, height, width}, torch::kFloat).clone() * label_scale);
    }
    return {at::stack(xs), at::stack(ys)};
  }
  uint64_t frames = 0;
  int64_t height = 0, width = 0;
  int factor = 8;
  double raw_pixel_size_nm = 0;
  std::string normalize;

 private:
  h5::File file_;
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

int64_t newest_checkpoint_epoch(const std::string& dir) {
  int64_t best = -1;
  if (!fs::exists(dir)) return best;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string n = e.path().filename().string();
    if (n.rfind("checkpoint-epoch-", 0) == 0 && e.path().extension() == ".h5")
      best = std::max<int64_t>(best, std::stoll(n.substr(17, n.size() - 20)));
  }
  return best;
}

std::string checkpoint_name(const std::string& dir, int64_t epoch) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "/checkpoint-epoch-%04lld.h5", static_cast<long long>(epoch));
  return dir + buf;
}

void run(Context& ctx) {
  const Config& c = ctx.config;
  const std::string input = ctx.input_path("train.input", "data/train-upscaled.h5");
  const std::string out_dir = ctx.path("train.output", "train");
  setup_torch_threads(ctx.threads());

  UpscaledSet data(input);
  const uint64_t n_val = static_cast<uint64_t>(std::llround(data.frames * c.get_double("train.validation_fraction")));
  const uint64_t n_train = data.frames - n_val;
  const uint64_t batch = static_cast<uint64_t>(c.get_int("train.batch_size"));
  if (n_train == 0) throw ConfigError("train.validation_fraction: leaves no training frames in " + input);
  const double label_scale = c.get_double("train.label_scale");
  const int kernel = static_cast<int>(c.get_int("train.loss.kernel_size"));
  if (kernel % 2 == 0) throw ConfigError("train.loss.kernel_size must be odd, got " + std::to_string(kernel));
  const BlurredMseLoss loss_fn(kernel, c.get_double("train.loss.fwhm"));
  const uint64_t seed = static_cast<uint64_t>(c.get_int("run.seed"));

  torch::manual_seed(seed);  // same initial weights on every rank, then broadcast to be sure
  auto model = make_model(c.get_string("train.model"));
  AdamOptions ao;
  ao.lr = c.get_double("train.lr");
  ao.beta1 = c.get_doubles("train.betas")[0];
  ao.beta2 = c.get_doubles("train.betas")[1];
  ao.weight_decay = c.get_double("train.weight_decay");
  Adam adam(model->parameters(), ao);

  ModelMeta meta;
  meta.arch = c.get_string("train.model");
  meta.bn_mode = c.get_string("train.bn_inference");
  meta.label_scale = label_scale;
  meta.factor = data.factor;
  meta.raw_pixel_size_nm = data.raw_pixel_size_nm;
  meta.normalize = data.normalize;

  int64_t start_epoch = 0;
  std::vector<std::string> metrics_lines;
  std::vector<double> curve_epoch, curve_train, curve_val;
  double best_val = std::numeric_limits<double>::infinity();
  if (c.get_bool("train.resume")) {
    const int64_t last = newest_checkpoint_epoch(out_dir);
    if (last >= 0) {
      const std::string ck = checkpoint_name(out_dir, last);
      h5::File f = h5::File::open(ck);
      load_state(f, "/state", *model);
      load_optimizer(ck, *model, adam);
      start_epoch = last;
      if (fs::exists(out_dir + "/model.h5")) best_val = h5::File::open(out_dir + "/model.h5").attr_double("/", "val_loss");
      std::stringstream ss(fs::exists(out_dir + "/metrics.jsonl") ? read_text_file(out_dir + "/metrics.jsonl") : "");
      for (std::string line; std::getline(ss, line);) {
        auto j = nlohmann::json::parse(line);
        if (j["epoch"].get<int64_t>() > last) break;
        metrics_lines.push_back(line);
        curve_epoch.push_back(j["epoch"].get<double>());
        curve_train.push_back(j["train_loss"].get<double>());
        curve_val.push_back(j["val_loss"].is_null() ? std::nan("") : j["val_loss"].get<double>());
      }
      log::print("train: resuming from {} (epoch {})", ck, last);
    } else {
      log::print("train: nothing to resume in {}; starting afresh", out_dir);
    }
  }
  broadcast_parameters_and_buffers(ctx.mpi, *model);

  const int64_t epochs = c.get_int("train.epochs");
  const uint64_t steps_per_epoch = (n_train + batch - 1) / batch;
  log::print("train: {} training + {} validation frames of {}x{}, global batch {} over {} rank(s), {} steps/epoch",
             n_train, n_val, data.height, data.width, batch, ctx.mpi.size(), steps_per_epoch);

  for (int64_t epoch = start_epoch; epoch < epochs; ++epoch) {
    const auto t0 = std::chrono::steady_clock::now();
    const std::vector<uint64_t> order = epoch_order(n_train, seed, epoch);
    double loss_sum = 0;
    Progress progress(fmt::format("epoch {}/{}", epoch + 1, epochs), n_train);
    model->train();
    for (uint64_t s = 0; s < steps_per_epoch; ++s) {
      const uint64_t b0 = s * batch, b1 = std::min(n_train, b0 + batch);
      const Range mine = block_range(b1 - b0, ctx.mpi.rank(), ctx.mpi.size());
      std::vector<uint64_t> idx(order.begin() + static_cast<std::ptrdiff_t>(b0 + mine.begin),
                                order.begin() + static_cast<std::ptrdiff_t>(b0 + mine.end));
      adam.zero_grad();
      double local_loss = 0;
      if (!idx.empty()) {
        auto [x, y] = data.batch(idx, label_scale);
        // This rank's share of the global mean: the allreduced sum of gradients is the mean.
        torch::Tensor loss = loss_fn(model->forward(x), y) * (static_cast<double>(idx.size()) / (b1 - b0));
        loss.backward();
        local_loss = loss.item<double>();
      }
      allreduce_gradients(ctx.mpi, *model);
      adam.step();
      broadcast_buffers(ctx.mpi, *model);
      double step_loss = local_loss;
      ctx.mpi.allreduce_sum(&step_loss, 1);
      loss_sum += step_loss * static_cast<double>(b1 - b0);
      progress.set(b1);
    }
    progress.finish();
    const double train_loss = loss_sum / static_cast<double>(n_train);

    // Validation with the inference BatchNorm mode, frames split across ranks.
    double val_loss = std::nan("");
    torch::Tensor preview_x, preview_y, preview_p;
    {
      torch::NoGradGuard no_grad;
      model->eval();
      model->set_bn_mode(parse_bn_mode(meta.bn_mode));
      double sums[2] = {0, 0};  // loss x frames, frames
      const Range mine = block_range(n_val, ctx.mpi.rank(), ctx.mpi.size());
      for (uint64_t f = mine.begin; f < mine.end; f += batch) {
        std::vector<uint64_t> idx;
        for (uint64_t i = f; i < std::min(mine.end, f + batch); ++i) idx.push_back(n_train + i);
        auto [x, y] = data.batch(idx, label_scale);
        torch::Tensor p = model->forward(x);
        sums[0] += loss_fn(p, y).item<double>() * static_cast<double>(idx.size());
        sums[1] += static_cast<double>(idx.size());
        if (!preview_x.defined()) {
          preview_x = x[0][0];
          preview_y = y[0][0];
          preview_p = p[0][0];
        }
      }
      ctx.mpi.allreduce_sum(sums, 2);
      if (sums[1] > 0) val_loss = sums[0] / sums[1];
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const int64_t steps = adam.steps();
    log::print("train: epoch {}/{}: train loss {:.6g}, validation loss {:.6g}, {:.1f} frames/s", epoch + 1,
               epochs, train_loss, val_loss, n_train / seconds);

    if (ctx.mpi.is_root()) {
      meta.epoch = epoch + 1;
      meta.step = steps;
      meta.val_loss = std::isnan(val_loss) ? train_loss : val_loss;
      fs::create_directories(out_dir);
      save_checkpoint(checkpoint_name(out_dir, epoch + 1), *model, &adam, meta, ctx.provenance());
      const int64_t keep = c.get_int("train.keep_checkpoints");
      if (epoch + 1 - keep >= 1) fs::remove(checkpoint_name(out_dir, epoch + 1 - keep));
      if (meta.val_loss <= best_val) {
        best_val = meta.val_loss;
        save_checkpoint(out_dir + "/model.h5", *model, nullptr, meta, ctx.provenance());
      }
      nlohmann::json j{{"epoch", epoch + 1},          {"step", steps},
                       {"train_loss", train_loss},    {"lr", adam.options().lr},
                       {"frames_per_s", n_train / seconds}, {"seconds", seconds}};
      j["val_loss"] = std::isnan(val_loss) ? nlohmann::json() : nlohmann::json(val_loss);
      metrics_lines.push_back(j.dump());
      std::string text;
      for (const auto& l : metrics_lines) text += l + "\n";
      write_text_file(out_dir + "/metrics.jsonl", text);
      curve_epoch.push_back(static_cast<double>(epoch + 1));
      curve_train.push_back(train_loss);
      curve_val.push_back(val_loss);
      picture::save_line_plot(out_dir + "/loss.png", "DSIR training loss", "epoch", "loss (log10)",
                              {{"train", curve_epoch, curve_train}, {"validation", curve_epoch, curve_val}}, true);
      if (preview_x.defined()) {
        const int h = static_cast<int>(preview_x.size(0)), w = static_cast<int>(preview_x.size(1));
        picture::save_panels_png(fmt::format("{}/previews/epoch-{:04d}.png", out_dir, epoch + 1),
                                 {{"input", to_vector(preview_x), w, h},
                                  {"label (blurred)", to_vector(loss_fn.blur(preview_y.unsqueeze(0).unsqueeze(0))), w, h},
                                  {"prediction", to_vector(preview_p), w, h}});
      }
    }
  }
  ctx.mpi.barrier();
  if (ctx.mpi.is_root() && !fs::exists(out_dir + "/model.h5"))
    throw Error("train: no model written to " + out_dir + "/model.h5");
}

const CommandRegistrar registrar({"train", 40, "Train the network on upscaled.h5 (MPI data-parallel).", run});

}  // namespace
}  // namespace dsir
