// `dsir predict`: a model's raw output for every frame of a raw.h5, the simplest way to look at
// what a model does (and to compare with DSIR's PyTorch output). Rank 0 alone; memory: a batch.
#include <cmath>

#include "pipeline/context.h"
#include "pipeline/errors.h"
#include "pipeline/formats/raw_file.h"
#include "pipeline/log.h"
#include "pipeline/registry.h"
#include "stages/infer/predictor.h"
#include "stages/train/models/torch_setup.h"

namespace dsir {
namespace {

const ConfigSection predict_section(
    "predict", "A model's raw output for every frame (N x fH x fW), without summing or localizing.",
    {
        KeySpec::text("checkpoint", "''", "Model file.").cli("--checkpoint"),
        KeySpec::text("input", "''", "raw.h5 to run the model on.").cli("--input"),
        KeySpec::text("output", "''", "HDF5 file to write (/predictions).").cli("--output"),
        KeySpec::choice("bn", "checkpoint",
                        "BatchNorm statistics: as stored with the model, running, per-frame.",
                        {"checkpoint", "running", "per-frame"})
            .cli("--bn"),
        KeySpec::integer("batch_size", "8", "Frames per network call.").range(1, 4096),
        KeySpec::real("memory_mb", "768",
                      "Memory budget for frames (MiB); larger frames are cut into tiles (running BatchNorm).")
            .range(16, 1e7),
        KeySpec::choice("device", "auto", "Where the network runs: auto (a GPU when available), cpu, cuda.",
                        {"auto", "cpu", "cuda"})
            .cli("--device"),
        KeySpec::choice("engine", "auto",
                        "How the network runs on a CPU: auto (the fused kernel for DSIR's net where the CPU "
                        "has AVX2), fused, libtorch.",
                        {"auto", "fused", "libtorch"})
            .cli("--engine"),
        KeySpec::choice("precision", "float32",
                        "Type the network's LibTorch convolutions compute in: float32, bfloat16.",
                        {"float32", "bfloat16"})
            .cli("--precision"),
    });

void run_predict(Context& ctx) {
  const Config& c = ctx.config;
  const std::string checkpoint = c.get_string("predict.checkpoint");
  const std::string input = c.get_string("predict.input");
  const std::string output = c.get_string("predict.output");
  require_file(checkpoint, "predict.checkpoint");
  require_file(input, "predict.input");
  if (output.empty()) throw ConfigError("predict.output: no output file given (--output)");
  if (!ctx.mpi.is_root()) return;
  setup_torch_threads(ctx.threads());

  PredictorOptions opt;
  opt.bn = c.get_string("predict.bn");
  opt.batch_size = static_cast<int>(c.get_int("predict.batch_size"));
  opt.device = c.get_string("predict.device");
  opt.local_rank = ctx.mpi.local_rank();
  opt.memory_mb = c.get_double("predict.memory_mb");
  opt.engine = c.get_string("predict.engine");
  opt.precision = c.get_string("predict.precision");
  opt.config_section = "predict";
  Predictor predictor(checkpoint, opt);
  RawFileReader raw(input);
  const int f = predictor.meta().factor;
  const uint64_t oh = static_cast<uint64_t>(raw.height()) * f, ow = static_cast<uint64_t>(raw.width()) * f;
  double gmean = 0, gstd = 1;
  if (predictor.meta().normalize == "global") std::tie(gmean, gstd) = raw.mean_std();

  h5::File out = h5::File::create(output, ctx.provenance());
  out.create_dataset("/predictions", h5::DType::f32, {raw.frames(), oh, ow}, {1, oh, ow}, 4);
  Progress progress("predict", raw.frames());
  const uint64_t batch = static_cast<uint64_t>(opt.batch_size);
  const FramePlan plan = predictor.plan(raw.height(), raw.width());
  std::vector<float> maps;
  for (uint64_t first = 0; first < raw.frames(); first += batch) {
    const uint64_t n = std::min(batch, raw.frames() - first);
    const std::vector<float> frames = raw.read(first, n);
    maps.resize(n * oh * ow);
    predictor.predict(frames.data(), static_cast<int64_t>(n), raw.height(), raw.width(), plan, maps.data(),
                      gmean, gstd);
    out.write_rows("/predictions", first, n, maps.data());
    progress.add(n);
  }
  progress.finish();
  out.set_attr("/predictions", "pixel_size_nm", raw.pixel_size_nm() / f);
  out.set_attr("/", "checkpoint", checkpoint);
  out.set_attr("/", "bn_mode", to_string(predictor.bn_mode()));
  out.set_attr("/", "label_scale", predictor.meta().label_scale);
  out.commit();
  log::print("predict: {} frames of {} -> {} (/predictions {}x{}x{}, BatchNorm {})", raw.frames(), input,
             output, raw.frames(), oh, ow, to_string(predictor.bn_mode()));
}

const CommandRegistrar predict_registrar({"predict", -1,
                                          "A model's raw output for every frame of a raw.h5 (/predictions).",
                                          run_predict});

}  // namespace
}  // namespace dsir
