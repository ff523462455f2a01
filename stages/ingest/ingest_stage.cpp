// Stage `ingest`: TIFF stacks + ground-truth CSV -> raw.h5. Without ingest.frames it ingests what
// `simulate` wrote in the run folder: the training set and, when present, the acquisition.
#include <filesystem>
#include <nlohmann/json.hpp>

#include "pipeline/context.h"
#include "pipeline/errors.h"
#include "pipeline/log.h"
#include "pipeline/registry.h"
#include "stages/ingest/ingest.h"

namespace dsir {
namespace {

const ConfigSection section(
    "ingest", "TIFF stacks and localization CSVs into raw.h5.",
    {
        {"frames", KeyType::StringList, "[]",
         "TIFF files or globs forming one stack ([] = the simulated sets in {run.dir}/sim).", -1e300, 1e300,
         {}, "--frames"},
        {"locs", KeyType::String, "''", "Ground-truth CSV (ThunderSTORM, SMLM challenge or DSIR format).",
         -1e300, 1e300, {}, "--locs"},
        {"pixel_size_nm", KeyType::Float, "0", "Pixel size (nm); 0 = from the TIFF resolution tags.", 0, 1e5,
         {}, "--pixel-size"},
        {"output", KeyType::String, "''", "Output raw.h5 ('' = {run.dir}/data/acquisition.h5).", -1e300,
         1e300, {}, "--output"},
    });

std::string camera_json(const Config& c) {
  nlohmann::json j;
  for (const auto& e : schema())
    if (e.section == "camera") j[e.key.substr(7)] = c.get_double(e.key);
  return j.dump();
}

void run(Context& ctx) {
  const Config& c = ctx.config;
  std::vector<IngestRequest> jobs;
  auto job = [&](std::vector<std::string> frames, std::string locs, std::string output) {
    IngestRequest r;
    r.frames = std::move(frames);
    r.locs = std::move(locs);
    r.output = std::move(output);
    r.pixel_size_nm = c.get_double("ingest.pixel_size_nm");
    r.camera_json = camera_json(c);
    jobs.push_back(std::move(r));
  };
  const std::string acquisition = ctx.path("ingest.output", "data/acquisition.h5");
  if (!c.get_strings("ingest.frames").empty()) {
    std::vector<std::string> files = expand_inputs(c.get_strings("ingest.frames"));
    for (const auto& f : files) require_file(f, "ingest.frames");
    if (!c.get_string("ingest.locs").empty()) require_file(c.get_string("ingest.locs"), "ingest.locs");
    job(files, c.get_string("ingest.locs"), acquisition);
  } else {
    const std::string sim = ctx.path("simulate.output", "sim");
    const std::string train_tif = sim + "/train.tif", acq_tif = sim + "/acquisition.tif";
    if (std::filesystem::exists(train_tif))
      job({train_tif}, sim + "/train.csv", ctx.run_dir() + "/data/train.h5");
    if (std::filesystem::exists(acq_tif)) job({acq_tif}, sim + "/acquisition.csv", acquisition);
    if (jobs.empty())
      throw ConfigError("ingest.frames: no TIFF given and no simulated stack in '" + sim + "'");
  }
  // One stack per rank at a time; each writes its own file; rank 0 reports them all.
  std::string report;
  for (size_t i = 0; i < jobs.size(); ++i) {
    if (static_cast<int>(i % static_cast<size_t>(ctx.mpi.size())) != ctx.mpi.rank()) continue;
    IngestSummary s = ingest_stack(jobs[i], ctx.provenance());
    report += fmt::format("ingest: {} <- {}{}: {} frames {}x{}, {} nm pixels, {} emitters\n", jobs[i].output,
                          jobs[i].frames.front(), jobs[i].frames.size() > 1 ? " (+ more)" : "", s.frames, s.width,
                          s.height, s.pixel_size_nm, s.emitters);
  }
  for (const auto& text : ctx.mpi.gather_to_root(report)) log::print_lines(text);
}

const CommandRegistrar registrar({"ingest", 20, "TIFF stacks (+ ground-truth CSV) into raw.h5.", run});

}  // namespace
}  // namespace dsir
