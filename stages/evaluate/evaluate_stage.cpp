// Stage `evaluate`: localization metrics (JI, lateral RMSE, efficiency; greedy and Hungarian
// matching) at each tolerance, and the image correlation of the reconstruction against the
// ground truth. Prints one JSON object on stdout; writes metrics.json.
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "pipeline/atomic_file.h"
#include "pipeline/context.h"
#include "pipeline/csv.h"
#include "pipeline/errors.h"
#include "pipeline/log.h"
#include "pipeline/registry.h"
#include "stages/evaluate/metrics.h"

namespace fs = std::filesystem;

namespace dsir {
namespace {

const ConfigSection section(
    "evaluate", "Metrics against ground truth (Sage et al. 2019).",
    {
        {"locs", KeyType::String, "''", "Localizations CSV ('' = {run.dir}/localizations.csv).", -1e300, 1e300, {},
         "--locs"},
        {"gt", KeyType::String, "''",
         "Ground truth: a CSV or a raw.h5 with /emitters ('' = {run.dir}/data/acquisition.h5).", -1e300, 1e300, {},
         "--gt"},
        {"reconstruction", KeyType::String, "''",
         "reconstruction.h5 for the image metric ('' = {run.dir}/reconstruction.h5 when evaluating the run).",
         -1e300, 1e300, {}, "--reconstruction"},
        {"tolerance_nm", KeyType::FloatList, "[50, 250]", "Matching tolerances (nm).", 0, 1e6, {}, "--tolerance-nm"},
        {"blur_nm", KeyType::Float, "20", "Gaussian sigma (nm) applied to both images for the image metric.", 0, 1e4},
        {"output", KeyType::String, "''",
         "metrics.json path ('' = {run.dir}/metrics.json when evaluating the run, else stdout only).", -1e300, 1e300,
         {}, "--output"},
    });

std::vector<metrics::Point> to_points(const std::vector<Emitter>& e) {
  std::vector<metrics::Point> p;
  p.reserve(e.size());
  for (const auto& x : e) p.push_back({x.frame, x.x_nm, x.y_nm});
  return p;
}

std::vector<Emitter> read_truth(const std::string& path) {
  if (fs::path(path).extension() == ".h5") {
    h5::File f = h5::File::open(path);
    if (!f.has("/emitters")) throw InputError(path + ": no /emitters (ground truth) in this file");
    return table_to_emitters(f.read_table("/emitters"), path + ":/emitters");
  }
  return read_localizations_csv(path).emitters;
}

nlohmann::json match_json(const metrics::MatchResult& m) {
  return {{"tp", m.tp},
          {"fp", m.fp},
          {"fn", m.fn},
          {"jaccard", m.jaccard},
          {"rmse_lateral_nm", m.rmse_lateral_nm},
          {"efficiency", m.efficiency}};
}

void run(Context& ctx) {
  const Config& c = ctx.config;
  // Evaluating the run's own outputs (no --locs): its reconstruction and metrics.json come too.
  const bool own_run = c.get_string("evaluate.locs").empty();
  const std::string locs_path = ctx.input_path("evaluate.locs", "localizations.csv");
  const std::string gt_path = ctx.input_path("evaluate.gt", "data/acquisition.h5");
  std::string recon_path = c.get_string("evaluate.reconstruction");
  if (recon_path.empty() && own_run) recon_path = ctx.run_dir() + "/reconstruction.h5";
  if (!recon_path.empty()) require_file(recon_path, "evaluate.reconstruction");
  std::string out_path = c.get_string("evaluate.output");
  if (out_path.empty() && own_run) out_path = ctx.run_dir() + "/metrics.json";
  if (!ctx.mpi.is_root()) return;  // small work: rank 0 alone

  const auto predicted = to_points(read_localizations_csv(locs_path).emitters);
  const auto truth = to_points(read_truth(gt_path));
  nlohmann::json j;
  j["localizations"] = predicted.size();
  j["ground_truth"] = truth.size();
  j["locs_file"] = locs_path;
  j["gt_file"] = gt_path;
  nlohmann::json tol = nlohmann::json::array();
  for (double t : c.get_doubles("evaluate.tolerance_nm")) {
    nlohmann::json entry;
    entry["tolerance_nm"] = t;
    entry["greedy"] = match_json(metrics::match(predicted, truth, t, metrics::Matching::Greedy));
    entry["hungarian"] = match_json(metrics::match(predicted, truth, t, metrics::Matching::Hungarian));
    tol.push_back(entry);
  }
  j["matching"] = tol;
  if (!recon_path.empty()) {
    h5::File f = h5::File::open(recon_path);
    if (!f.has("/image")) throw InputError(recon_path + ": missing /image");
    const h5::Dims d = f.shape("/image");
    const double px = f.attr_double("/", "pixel_size_nm");
    const double blur = c.get_double("evaluate.blur_nm");
    const double r = metrics::image_correlation(f.read<float>("/image"), static_cast<int>(d[1]),
                                                static_cast<int>(d[0]), px, truth, blur);
    j["image"] = {{"pearson", r}, {"blur_sigma_nm", blur}, {"pixel_size_nm", px}, {"file", recon_path}};
  }
  const std::string text = j.dump(2);
  std::cout << j.dump() << std::endl;
  if (!out_path.empty()) {
    write_text_file(out_path, text + "\n");
    log::print("evaluate: wrote {}", out_path);
  }
}

const CommandRegistrar registrar({"evaluate", 70, "Localization and image metrics against ground truth (JSON).",
                                  run});

}  // namespace
}  // namespace dsir
