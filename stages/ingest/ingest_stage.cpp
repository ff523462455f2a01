// Stage `ingest`: TIFF stacks + ground-truth CSV -> raw.h5. Without ingest.frames it ingests what
// `simulate` wrote in the run folder: the training set and, when present, the acquisition.
#include <filesystem>
#include <map>
#include <sstream>

#include "pipeline/context.h"
#include "pipeline/errors.h"
#include "pipeline/inputs.h"
#include "pipeline/log.h"
#include "pipeline/registry.h"
#include "stages/ingest/ingest.h"

namespace dsir {
namespace {

const ConfigSection section(
    "ingest", "TIFF stacks and localization CSVs into raw.h5.",
    {
        KeySpec::text_list(
            "frames", "[]",
            "TIFF files or globs forming one stack ([] = the simulated sets in {run.dir}/sim).")
            .cli("--frames"),
        KeySpec::text("locs", "''", "Ground-truth CSV (ThunderSTORM, SMLM challenge or DSIR format).")
            .cli("--locs"),
        KeySpec::real("pixel_size_nm", "0", "Pixel size (nm); 0 = from the TIFF resolution tags.")
            .range(0, 1e5)
            .cli("--pixel-size"),
        KeySpec::text("output", "''",
                      "Output raw.h5 ('' = {run.dir}/data/acquisition.h5); with ingest.archive, the output "
                      "folder ('' = {run.dir}/data).")
            .cli("--output"),
        KeySpec::boolean("archive", "false",
                         "Each file of ingest.frames becomes its own raw.h5 in the ingest.output folder, "
                         "named after the file (files spread over ranks).")
            .cli("--archive"),
    });

// Every ingest.* key (and the simulate.* ones its pipeline default needs), read once when the
// stage starts.
struct IngestOptions {
  std::vector<std::string> frames;     // the TIFFs, globs expanded; empty: simulate's stacks
  std::vector<std::string> run_input;  // run.input, globs expanded: each to data/input/<stem>.h5
  double run_input_pixel_size_nm = 0;  // for them: ingest.pixel_size_nm, else a set camera.pixel_size_nm
  std::string run_input_folder;
  std::string locs;
  bool archive = false;
  double pixel_size_nm = 0;  // 0: from the TIFF resolution tags
  std::string camera_json;
  std::string output_folder, output_file;  // ingest.output resolved for archive and single-stack mode
  bool simulated_h5 = false;               // simulate.format: h5 (simulate wrote raw.h5 itself)
  std::string simulate_output;
};

IngestOptions read_ingest_options(const Context& ctx) {
  const Config& c = ctx.config;
  IngestOptions o;
  if (!c.get_strings("ingest.frames").empty()) o.frames = expand_inputs(c.get_strings("ingest.frames"));
  for (const auto& f : o.frames) require_file(f, "ingest.frames");
  o.locs = c.get_string("ingest.locs");
  o.archive = c.get_bool("ingest.archive");
  o.pixel_size_nm = c.get_double("ingest.pixel_size_nm");
  if (o.frames.empty() && !c.get_strings("run.input").empty()) {
    o.run_input = expand_inputs(c.get_strings("run.input"));
    for (const auto& f : o.run_input) require_file(f, "run.input");
    o.run_input_folder = (std::filesystem::path(ctx.run_dir()) / kRunInputFolder).string();
    // calibrate, before ingest in a run, sets camera.pixel_size_nm from the same stacks.
    o.run_input_pixel_size_nm = o.pixel_size_nm > 0                     ? o.pixel_size_nm
                                : !c.is_default("camera.pixel_size_nm") ? c.get_double("camera.pixel_size_nm")
                                                                        : 0;
  }
  o.camera_json = camera_json(c);
  o.output_folder = ctx.path("ingest.output", "data");
  o.output_file = ctx.path("ingest.output", "data/acquisition.h5");
  o.simulated_h5 = c.get_string("simulate.format") == "h5";
  o.simulate_output = ctx.path("simulate.output", "sim");
  return o;
}

void run(Context& ctx) {
  const IngestOptions o = read_ingest_options(ctx);
  std::vector<IngestRequest> jobs;
  auto job = [&](std::vector<std::string> frames, std::string locs, std::string output) {
    IngestRequest r;
    r.frames = std::move(frames);
    r.locs = std::move(locs);
    r.output = std::move(output);
    r.pixel_size_nm = o.pixel_size_nm;
    r.camera_json = o.camera_json;
    jobs.push_back(std::move(r));
  };
  if (!o.frames.empty()) {
    if (o.archive) {
      if (!o.locs.empty())
        throw ConfigError(
            "ingest.locs: one ground-truth CSV cannot belong to every file of an archive "
            "(ingest.archive); ingest stacks with ground truth one at a time");
      jobs = archive_requests(o.frames, o.output_folder, o.pixel_size_nm, o.camera_json);
    } else {
      if (!o.locs.empty()) require_file(o.locs, "ingest.locs");
      job(o.frames, o.locs, o.output_file);
    }
  } else if (o.archive) {
    throw ConfigError("ingest.archive: needs the files to ingest in ingest.frames");
  } else if (o.simulated_h5) {
    // simulate wrote raw.h5 itself; running the pipeline's ingest after it is then a no-op.
    log::print("ingest: nothing to ingest: simulate.format is h5, so simulate wrote raw.h5 directly");
    return;
  } else {
    const std::string& sim = o.simulate_output;
    const std::string train_tif = sim + "/train.tif", acq_tif = sim + "/acquisition.tif";
    if (std::filesystem::exists(train_tif))
      job({train_tif}, sim + "/train.csv", ctx.run_dir() + "/data/train.h5");
    if (std::filesystem::exists(acq_tif)) job({acq_tif}, sim + "/acquisition.csv", o.output_file);
    // A lab's acquisitions (run.input): each its own raw.h5, without ground truth.
    for (IngestRequest& r : archive_requests(o.run_input, o.run_input_folder, o.run_input_pixel_size_nm,
                                             o.camera_json, "run.input"))
      jobs.push_back(std::move(r));
    if (jobs.empty())
      throw ConfigError("ingest.frames: no TIFF given and no simulated stack in '" + sim + "'");
  }
  // Whole stacks spread over ranks (rank r takes r, r + size, ...); each writes its own files and
  // rank 0 reports them all, in input order.
  std::string report;
  uint64_t frames = 0, bytes_in = 0;
  for (size_t i = 0; i < jobs.size(); ++i) {
    if (static_cast<int>(i % static_cast<size_t>(ctx.mpi.size())) != ctx.mpi.rank()) continue;
    IngestSummary s = ingest_stack(jobs[i], ctx.provenance());
    frames += s.frames;
    for (const auto& f : jobs[i].frames) bytes_in += std::filesystem::file_size(f);
    report +=
        fmt::format("{}\tingest: {} <- {}{}: {} frames {}x{}, {} nm pixels{}{}\n", i, jobs[i].output,
                    jobs[i].frames.front(),
                    jobs[i].frames.size() > 1 ? fmt::format(" (+ {} more)", jobs[i].frames.size() - 1) : "",
                    s.frames, s.width, s.height, s.pixel_size_nm,
                    jobs[i].locs.empty() ? "" : fmt::format(", {} emitters", s.emitters),
                    s.emitters_outside ? fmt::format(" ({} outside the field)", s.emitters_outside) : "");
  }
  std::map<size_t, std::string> lines;
  for (const auto& text : ctx.mpi.gather_to_root(report)) {
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) {
      const size_t tab = line.find('\t');
      lines[std::stoul(line.substr(0, tab))] = line.substr(tab + 1);
    }
  }
  for (const auto& [i, line] : lines) log::print("{}", line);
  if (jobs.size() > 1) {
    double totals[2] = {static_cast<double>(frames), static_cast<double>(bytes_in)};
    ctx.mpi.allreduce_sum(totals, 2);
    log::print("ingest: {} files, {:.0f} frames, {:.1f} MB of TIFF", jobs.size(), totals[0], totals[1] / 1e6);
  }
}

const CommandRegistrar registrar({"ingest", 20, "TIFF stacks (+ ground-truth CSV) into raw.h5.", run});

}  // namespace
}  // namespace dsir
