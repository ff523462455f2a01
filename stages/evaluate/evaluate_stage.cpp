// Stage `evaluate`: localization metrics (JI, lateral RMSE, efficiency; greedy and Hungarian
// matching) at each tolerance, and the image correlation of the reconstruction against the
// ground truth; FRC resolution and NeNA precision, which need none. Prints one JSON object on
// stdout; writes metrics.json (+ frc.png, nena.png).
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "pipeline/context.h"
#include "pipeline/csv.h"
#include "pipeline/errors.h"
#include "pipeline/formats/picasso_file.h"
#include "pipeline/formats/raw_file.h"
#include "pipeline/formats/reconstruction_file.h"
#include "pipeline/formats/run_metrics.h"
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
        KeySpec::text("locs", "''",
                      "Localizations: a CSV (ThunderSTORM, SMLM challenge, DSIR) or a picasso .hdf5 with its "
                      ".yaml ('' = {run.dir}/localizations.csv).")
            .cli("--locs"),
        KeySpec::text("gt", "''",
                      "Ground truth: a CSV or a raw.h5 with /emitters ('' = {run.dir}/data/acquisition.h5 if "
                      "it has /emitters, else none: FRC and NeNA only).")
            .cli("--gt"),
        KeySpec::text("reconstruction", "''",
                      "reconstruction.h5 for the image metric ('' = {run.dir}/reconstruction.h5 when "
                      "evaluating the run).")
            .cli("--reconstruction"),
        KeySpec::real_list("tolerance_nm", "[50, 250]", "Matching tolerances (nm).")
            .range(0, 1e6)
            .cli("--tolerance-nm"),
        KeySpec::real("blur_nm", "20", "Gaussian sigma (nm) applied to both images for the image metric.")
            .range(0, 1e4),
        KeySpec::text(
            "output", "''",
            "metrics.json path ('' = {run.dir}/metrics.json when evaluating the run, else stdout only).")
            .cli("--output"),
        KeySpec::real("frc_pixel_nm", "5",
                      "FRC: histogram pixel (nm; coarsened for fields over 4096 pixels).")
            .range(0.1, 1e4),
        KeySpec::integer("frc_block_frames", "1",
                         "FRC: the halves are odd/even blocks of this many frames (1 = odd/even frames).")
            .range(1, 1e9),
    });

std::vector<metrics::Point> to_points(const std::vector<Emitter>& e) {
  std::vector<metrics::Point> p;
  p.reserve(e.size());
  for (const auto& x : e) p.push_back({x.frame, x.x_nm, x.y_nm});
  return p;
}

std::vector<Emitter> read_truth(const std::string& path) {
  if (fs::path(path).extension() == ".h5") {
    const RawFileReader raw(path);
    if (!raw.has_emitters()) throw InputError(path + ": no /emitters (ground truth) in this file");
    return raw.emitters();
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
  return {
      {"frames", {e.first_frame, e.last_frame}}, {"x_nm", {e.x_min, e.x_max}}, {"y_nm", {e.y_min, e.y_max}}};
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

// How many localizations carry a photometry failure flag (reduce.failed_photometry: flag); null
// when the file has no flags (not dsir's, or from before them).
nlohmann::json photometry_failed_json(const std::vector<Emitter>& locs) {
  bool measured = false;
  uint64_t failed = 0;
  for (const Emitter& e : locs) {
    measured = measured || e.photometry_flags != photometry_flag::not_measured;
    failed += e.photometry_failed();
  }
  return measured ? nlohmann::json(failed) : nlohmann::json();
}

bool has_truth(const std::string& h5_path) {
  return fs::exists(h5_path) && RawFileReader(h5_path).has_emitters();
}

// One JSON line on stdout; metrics.json when there is an output path.
void emit(const nlohmann::json& j, const std::string& out_path) {
  std::cout << j.dump() << std::endl;
  if (!out_path.empty()) {
    write_evaluation(out_path, j);
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

// Every evaluate.* key, read (and the run's own files found) once when the stage starts.
struct EvaluateOptions {
  std::string locs, gt, reconstruction, output;  // resolved paths; gt and the others may be empty
  std::vector<double> tolerances_nm;
  double blur_nm = 0;
  quality::FrcOptions frc;
};

EvaluateOptions read_evaluate_options(const Context& ctx) {
  const Config& c = ctx.config;
  EvaluateOptions o;
  // Evaluating the run's own outputs (no --locs): its reconstruction and metrics.json come too.
  const bool own_run = c.get_string("evaluate.locs").empty();
  o.locs = ctx.input_path("evaluate.locs", "localizations.csv");
  // Ground truth is optional only where nobody asked for it: the run's acquisition without /emitters.
  if (c.get_string("evaluate.gt").empty()) {
    o.gt = ctx.run_dir() + "/data/acquisition.h5";
    if (!has_truth(o.gt)) o.gt.clear();
  } else {
    o.gt = ctx.input_path("evaluate.gt", "");
  }
  o.reconstruction = c.get_string("evaluate.reconstruction");
  if (o.reconstruction.empty() && own_run) o.reconstruction = ctx.run_dir() + "/reconstruction.h5";
  if (!o.reconstruction.empty()) require_file(o.reconstruction, "evaluate.reconstruction");
  o.output = c.get_string("evaluate.output");
  if (o.output.empty() && own_run) o.output = ctx.run_dir() + "/metrics.json";
  o.tolerances_nm = c.get_doubles("evaluate.tolerance_nm");
  o.blur_nm = c.get_double("evaluate.blur_nm");
  o.frc.pixel_nm = c.get_double("evaluate.frc_pixel_nm");
  o.frc.block_frames = c.get_int("evaluate.frc_block_frames");
  return o;
}

void run(Context& ctx) {
  const EvaluateOptions o = read_evaluate_options(ctx);
  const std::string& locs_path = o.locs;
  const std::string& gt_path = o.gt;
  const std::string& recon_path = o.reconstruction;
  const std::string& out_path = o.output;
  if (!ctx.mpi.is_root()) return;  // small work: rank 0 alone

  const std::vector<Emitter> locs = read_localizations_file(locs_path);
  const auto predicted = to_points(locs);
  nlohmann::json j;
  j["localizations"] = predicted.size();
  j["locs_file"] = locs_path;
  j["photometry_failed"] = photometry_failed_json(locs);
  add_quality(j, predicted, o.frc, out_path);
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
  const std::vector<double>& tolerances = o.tolerances_nm;
  const double largest_tolerance =
      tolerances.empty() ? 0 : *std::max_element(tolerances.begin(), tolerances.end());
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
    const ReconstructionContent recon = read_reconstruction_image(recon_path);
    const double blur = o.blur_nm;
    const double r =
        metrics::image_correlation(recon.image, recon.width, recon.height, recon.pixel_size_nm, truth, blur);
    j["image"] = {{"pearson", r},
                  {"blur_sigma_nm", blur},
                  {"pixel_size_nm", recon.pixel_size_nm},
                  {"file", recon_path}};
  }
  emit(j, out_path);
}

const CommandRegistrar registrar(
    {"evaluate", 70, "Metrics against ground truth; FRC resolution and NeNA precision without (JSON).", run});

}  // namespace
}  // namespace dsir
