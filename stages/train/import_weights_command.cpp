// `dsir import-weights`: a PyTorch state dict stored as one HDF5 dataset per key (written by
// scripts/export_state_dict.py, or the layout of DSIR's reference file) -> a dsir model file.
#include "pipeline/context.h"
#include "pipeline/errors.h"
#include "pipeline/log.h"
#include "pipeline/registry.h"
#include "stages/train/models/checkpoint.h"
#include "stages/train/models/model_registry.h"

namespace dsir {
namespace {

const ConfigSection import_weights_section(
    "import-weights", "Import PyTorch weights (one HDF5 dataset per state-dict key) as a dsir model.",
    {
        KeySpec::text("state_dict", "''",
                      "FILE.h5[:/group] holding the state dict (group default /state_dict).")
            .cli("--state-dict"),
        KeySpec::text("arch", "dsir", "Registered model the weights belong to.").cli("--arch"),
        KeySpec::text("output", "''", "Model file to write.").cli("--output"),
        KeySpec::choice("bn", "per-frame",
                        "BatchNorm statistics at inference (DSIR's weights need per-frame).",
                        {"per-frame", "running"})
            .cli("--bn"),
        KeySpec::real("raw_pixel_size_nm", "100", "Camera pixel size the weights were trained for (nm).")
            .range(1, 1e5),
        KeySpec::integer("factor", "8", "Upscaling factor the weights expect.").range(1, 32),
        KeySpec::real("label_scale", "1", "Label scale used in training (DSIR: 1).").range(1e-6, 1e6),
        KeySpec::choice("normalize", "per-frame", "Input normalisation the weights expect.",
                        {"per-frame", "global", "none"}),
    });

void run_import_weights(Context& ctx) {
  const Config& c = ctx.config;
  std::string spec = c.get_string("import-weights.state_dict"), group = "/state_dict";
  // FILE.h5:/group — split at the last ':' that is followed by '/'.
  if (auto colon = spec.rfind(":/"); colon != std::string::npos) {
    group = spec.substr(colon + 1);
    spec = spec.substr(0, colon);
  }
  require_file(spec, "import-weights.state_dict");
  const std::string output = c.get_string("import-weights.output");
  if (output.empty()) throw ConfigError("import-weights.output: no output file given (--output)");
  if (!ctx.mpi.is_root()) return;

  auto model = make_model(c.get_string("import-weights.arch"));
  const h5::File f = h5::File::open(spec);
  if (!f.has(group)) throw InputError(spec + ": no group " + group + " (give FILE.h5:/group)");
  load_state(f, group, *model);
  ModelMeta meta;
  meta.arch = c.get_string("import-weights.arch");
  meta.bn_mode = c.get_string("import-weights.bn");
  meta.raw_pixel_size_nm = c.get_double("import-weights.raw_pixel_size_nm");
  meta.factor = static_cast<int>(c.get_int("import-weights.factor"));
  meta.label_scale = c.get_double("import-weights.label_scale");
  meta.normalize = c.get_string("import-weights.normalize");
  h5::Attributes prov = ctx.provenance();
  prov["imported_from"] = spec + ":" + group;
  save_checkpoint(output, *model, nullptr, meta, prov);
  log::print("import-weights: {}:{} -> {} ({}, model checksum {})", spec, group, output, meta.arch,
             model_checksum(*model));
}

const CommandRegistrar import_weights_registrar(
    {"import-weights", -1, "Import PyTorch weights (HDF5, one dataset per state-dict key) as a model file.",
     run_import_weights});

}  // namespace
}  // namespace dsir
