// Stage `evaluate`: localization metrics (JI, lateral RMSE, efficiency; greedy and Hungarian
// matching) at each tolerance, and the image correlation of the reconstruction against the
// ground truth; FRC resolution and NeNA precision, which need none. Prints one JSON object on
// stdout; writes metrics.json (+ frc.png, nena.png).
#include <algorithm>
#include <cmath>
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
#include "stages/evaluate/quality.h"

namespace fs = std::filesystem;

namespace dsir {
namespace {

const ConfigSection section(
    "evaluate", "Metrics against ground truth (Sage et al. 2019); FRC and NeNA without it.",
    {
        {"locs", KeyType::String, "''", "Localizations CSV ('' = {run.dir}/localizations.csv).", -1e300, 1e300, {},
         "--locs"},
        {"gt", KeyType::String, "''",
         "Ground truth: a CSV or a raw.h5 with /emitters ('' = {run.dir}/data/acquisition.h5 if it has /emitters, "
         "else none: FRC and NeNA only).", -1e300, 1e300, {},
         "--gt"},
        {"reconstruction", KeyType::String, "''",
         "reconstruction.h5 for the image metric ('' = {run.dir}/reconstruction.h5 when evaluating the run).",
         -1e300, 1e300, {}, "--reconstruction"},
        {"tolerance_nm", KeyType::FloatList, "[50, 250]", "Matching tolerances (nm).", 0, 1e6, {}, "--tolerance-nm"},
        {"blur_nm", KeyType::Float, "20", "Gaussian sigma (nm) applied to both images for the image metric.", 0, 1e4},
        {"output", KeyType::String, "''",
         "metrics.json path ('' = {run.dir}/metrics.json when evaluating the run, else stdout only).", -1e300, 1e300,
         {}, "--output"},
        {"frc_pixel_nm", KeyType::Float, "5", "FRC: histogram pixel (nm; coarsened for fields over 4096 pixels).", 0.1,
         1e4},
        {"frc_block_frames", KeyType::Int, "1",
         "FRC: the halves are odd/even blocks of this many frames (1 = odd/even frames).", 1, 1e9},
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

// null where a metric is undefined: no RMSE (nor efficiency) without a true positive, no JI
// when both sets are empty.
nlohmann::json match_json(const metrics::MatchResult& m) {
  const nlohmann::json undefined;
  const bool matched = m.tp > 0, any = m.tp + m.fp + m.fn > 0;
  return {{"tp", m.tp},
          {"fp", m.fp},
          {"fn", m.fn},
          {"jaccard", any ? nlohmann::json(m.jaccard) : undefined},
          {"rmse_lateral_nm", matched ? nlohmann::json(m.rmse_lateral_nm) : undefined},
          {"efficiency", matched ? nlohmann::json(m.efficiency) : undefined}};
}

nlohmann::json extent_json(const metrics::Extent& e) {
  if (e.empty()) return nullptr;
  return {{"frames", {e.first_frame, e.last_frame}}, {"x_nm", {e.x_min, e.x_max}}, {"y_nm", {e.y_min, e.y_max}}};
}
nlohmann::json fraction_json(double f) { return std::isfinite(f) ? nlohmann::json(f) : nlohmann::json(); }

// Whether localizations and ground truth cover the same frames and field; each shortfall is
// logged as a warning and listed in metrics.json.
nlohmann::json overlap_json(const metrics::Overlap& o) {
  for (const std::string& w : o.warnings) log::warn("evaluate: {}", w);
  return {{"localizations", extent_json(o.locs)},
          {"ground_truth", extent_json(o.truth)},
          {"localizations_in_truth_frames", fraction_json(o.locs_in_truth_frames)},
          {"truth_in_localization_frames", fraction_json(o.truth_in_locs_frames)},
          {"localizations_in_truth_field", fraction_json(o.locs_in_truth_field)},
          {"truth_in_localization_field", fraction_json(o.truth_in_locs_field)},
          {"warnings", o.warnings}};
}

bool has_truth(const std::string& h5_path) {
  return fs::exists(h5_path) && h5::File::open(h5_path).has("/emitters");
}

// One JSON line on stdout; metrics.json when there is an output path.
void emit(const nlohmann::json& j, const std::string& out_path) {
  std::cout << j.dump() << std::endl;
  if (!out_path.empty()) {
    write_text_file(out_path, j.dump(2) + "\n");
    log::print("evaluate: wrote {}", out_path);
  }
}

// FRC resolution and NeNA precision (null, with the reason logged, where undefined); with an
// output path, frc.png and nena.png beside it.
void add_quality(nlohmann::json& j, const std::vector<metrics::Point>& locs,
                 const quality::FrcOptions& options, const std::string& out_path) {
  const quality::FrcResult frc = quality::frc(locs, options);
  const quality::NenaResult nena = quality::nena(locs);
  if (!frc.defined) log::warn("evaluate: FRC resolution undefined: {}", frc.why);
  if (!nena.defined) log::warn("evaluate: NeNA precision undefined: {}", nena.why);
  j["frc_resolution_nm"] = frc.defined ? nlohmann::json(frc.resolution_nm) : nlohmann::json();
  j["nena_precision_nm"] = nena.defined ? nlohmann::json(nena.sigma_nm) : nlohmann::json();
  j["frc"] = {{"pixel_nm", frc.pixel_nm},
              {"block_frames", options.block_frames},
              {"halves", {frc.half_a, frc.half_b}},
              {"crossing_per_nm", frc.crossing_per_nm},
              {"threshold", 1.0 / 7}};
  j["nena"] = {{"pairs", nena.pairs}, {"pair_fraction", nena.pair_fraction}};
  if (!frc.defined) j["frc"]["undefined"] = frc.why;
  if (!nena.defined) j["nena"]["undefined"] = nena.why;
  if (out_path.empty()) return;
  const fs::path dir = fs::path(out_path).parent_path();
  if (!frc.q_per_nm.empty()) quality::save_frc_plot((dir / "frc.png").string(), frc);
  if (!nena.d_nm.empty()) quality::save_nena_plot((dir / "nena.png").string(), nena);
}

void run(Context& ctx) {
  const Config& c = ctx.config;
  // Evaluating the run's own outputs (no --locs): its reconstruction and metrics.json come too.
  const bool own_run = c.get_string("evaluate.locs").empty();
  const std::string locs_path = ctx.input_path("evaluate.locs", "localizations.csv");
  // Ground truth is optional only where nobody asked for it: the run's acquisition without /emitters.
  std::string gt_path = c.get_string("evaluate.gt");
  if (gt_path.empty()) {
    gt_path = ctx.run_dir() + "/data/acquisition.h5";
    if (!has_truth(gt_path)) gt_path.clear();
  } else {
    gt_path = ctx.input_path("evaluate.gt", "");
  }
  std::string recon_path = c.get_string("evaluate.reconstruction");
  if (recon_path.empty() && own_run) recon_path = ctx.run_dir() + "/reconstruction.h5";
  if (!recon_path.empty()) require_file(recon_path, "evaluate.reconstruction");
  std::string out_path = c.get_string("evaluate.output");
  if (out_path.empty() && own_run) out_path = ctx.run_dir() + "/metrics.json";
  if (!ctx.mpi.is_root()) return;  // small work: rank 0 alone

  const auto predicted = to_points(read_localizations_csv(locs_path).emitters);
  nlohmann::json j;
  j["localizations"] = predicted.size();
  j["locs_file"] = locs_path;
  quality::FrcOptions frc;
  frc.pixel_nm = c.get_double("evaluate.frc_pixel_nm");
  frc.block_frames = c.get_int("evaluate.frc_block_frames");
  add_quality(j, predicted, frc, out_path);
  if (gt_path.empty()) {
    log::print("evaluate: no ground truth ({} is absent or has no /emitters): FRC and NeNA only",
               ctx.run_dir() + "/data/acquisition.h5");
    j["ground_truth"] = nullptr;
    j["gt_file"] = nullptr;
    emit(j, out_path);
    return;
  }
  const auto truth = to_points(read_truth(gt_path));
  j["ground_truth"] = truth.size();
  j["gt_file"] = gt_path;
  const std::vector<double> tolerances = c.get_doubles("evaluate.tolerance_nm");
  const double largest_tolerance = tolerances.empty() ? 0 : *std::max_element(tolerances.begin(), tolerances.end());
  j["overlap"] = overlap_json(metrics::overlap(predicted, truth, largest_tolerance));
  nlohmann::json tol = nlohmann::json::array();
  for (double t : tolerances) {
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
  emit(j, out_path);
}

const CommandRegistrar registrar({"evaluate", 70,
                                  "Metrics against ground truth; FRC resolution and NeNA precision without (JSON).",
                                  run});

}  // namespace
}  // namespace dsir
