// Stage `reduce`: shard partial sums added in a fixed order (bit-identical whatever the number of
// ranks that made them) -> reconstruction.{h5,tif,png}; localizations merged in frame order ->
// localizations.csv (ThunderSTORM) and localizations.hdf5 + .yaml (picasso). One set per
// acquisition; with several, each goes to <output>/<acquisition>/.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>

#include "pipeline/context.h"
#include "pipeline/csv.h"
#include "pipeline/errors.h"
#include "pipeline/formats/picasso_file.h"
#include "pipeline/formats/reconstruction_file.h"
#include "pipeline/formats/shard_file.h"
#include "pipeline/log.h"
#include "pipeline/picture.h"
#include "pipeline/registry.h"
#include "pipeline/tiff.h"
#include "stages/reduce/drift.h"
#include "stages/reduce/exports.h"
#include "stages/reduce/render.h"

namespace fs = std::filesystem;

namespace dsir {
namespace {

const ConfigSection section(
    "reduce", "Reduction of inference shards into reconstructions and localization tables.",
    {
        KeySpec::text("input", "''", "Shard folder ('' = {run.dir}/infer).").cli("--input"),
        KeySpec::text("output", "''", "Output folder ('' = {run.dir}).").cli("--output"),
        KeySpec::choice("render", "gaussian",
                        "The reconstruction image: gaussian (each localization a Gaussian of its precision), "
                        "histogram (localizations per pixel) or sum (the network's maps summed over frames, "
                        "as DSIR; these carry the transposed convolution's checkerboard). reconstruction.h5 "
                        "keeps the sum as /network_sum either way.",
                        {"gaussian", "histogram", "sum"}),
        KeySpec::real(
            "render_sigma_nm", "0",
            "Gaussian rendering: every localization's sigma (nm); 0 = each its uncertainty (the CSV's "
            "'uncertainty [nm]': Mortensen, from its photometry; the median of those where photometry "
            "failed). Never below one pixel.")
            .range(0, 1e4),
        KeySpec::choice("failed_photometry", "flag",
                        "Localizations whose photometry failed (no fit, photons <= 0, background < 0, or PSF "
                        "sigma at an end of its search interval): flag (kept, photometry_flags > 0 in "
                        "localizations.csv and .hdf5, uncertainty the median of the others') or drop (left "
                        "out of every export and of the rendering).",
                        {"flag", "drop"}),
        KeySpec::choice("drift", "none",
                        "Drift correction of the localizations: none, or rcc (redundant cross-correlation, "
                        "Wang et al. 2014; writes drift.csv and drift.png).",
                        {"none", "rcc"})
            .cli("--drift"),
        KeySpec::integer("drift_bins", "10", "RCC: time bins (each needs >= 100 localizations).")
            .range(3, 1000),
        KeySpec::real("drift_pixel_nm", "5", "RCC: histogram pixel of the fine cross-correlation (nm).")
            .range(0.1, 1e4),
        KeySpec::real("drift_max_nm", "1000", "RCC: largest drift between two time bins searched (nm).")
            .range(1, 1e6),
        KeySpec::real("drift_rmax_nm", "20",
                      "RCC: bin pairs whose least-squares residual exceeds this are dropped (nm).")
            .range(0.01, 1e6),
    });

struct RenderSettings {
  RenderMode mode = RenderMode::Gaussian;
  double sigma_nm = 0;  // 0: each localization's own precision
};

// Every reduce.* key, read once when the stage starts.
struct ReduceOptions {
  std::string input, output;  // resolved folders
  RenderSettings render;
  std::string render_name;  // reduce.render as given, recorded in reconstruction.h5
  FailedPhotometry failed_photometry = FailedPhotometry::Flag;
  std::optional<drift::Options> drift;  // reduce.drift: rcc
};

struct Reconstruction {
  std::vector<double> sum;
  std::vector<Emitter> locs;
  int width = 0, height = 0;  // upscaled
  double pixel_size_nm = 0;
  int raw_width = 0, raw_height = 0;
  double raw_pixel_size_nm = 0;
  uint64_t frames = 0, shards = 0;
  h5::Attributes shared;
};

Reconstruction reduce_acquisition(const fs::path& dir) {
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string n = e.path().filename().string();
    if (n.rfind("shard-", 0) == 0 && e.path().extension() == ".h5") files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());  // shard-NNNNN: name order is frame order
  if (files.empty()) throw InputError(dir.string() + ": no shard-*.h5 files");
  Reconstruction r;
  std::string first_file;
  uint64_t expected_first = 0, unverified = 0;
  for (const auto& p : files) {
    const Shard shard = read_shard(p.string());  // InputError naming the file: unreadable, corrupt
    const ShardInfo& info = shard.info;
    if (!shard.checksummed) ++unverified;
    // A folder mixing runs is refused.
    for (const auto& [key, v] : info.shared()) {
      if (first_file.empty()) {
        r.shared[key] = v;
      } else if (r.shared[key] != v) {
        throw InputError(
            fmt::format("{}: {} is '{}' but {} has '{}': the folder mixes shards of different runs "
                        "(rerun infer on it with one model and one set of settings)",
                        p.string(), key, v, first_file, r.shared[key]));
      }
    }
    if (info.first_frame != expected_first)
      throw InputError(p.string() + ": starts at frame " + std::to_string(info.first_frame) + ", expected " +
                       std::to_string(expected_first) + " (a shard is missing; rerun infer)");
    if (first_file.empty()) {
      r.height = static_cast<int>(shard.height);
      r.width = static_cast<int>(shard.width);
      r.pixel_size_nm = info.pixel_size_nm;
      r.frames = info.acquisition_frames;
      r.raw_width = info.raw_width;
      r.raw_height = info.raw_height;
      r.raw_pixel_size_nm = info.raw_pixel_size_nm;
      r.sum.assign(shard.sum.size(), 0.0);
      first_file = p.string();
    } else if (static_cast<int>(shard.height) != r.height || static_cast<int>(shard.width) != r.width) {
      throw InputError(p.string() + ": /sum size differs from the other shards");
    }
    for (size_t i = 0; i < shard.sum.size(); ++i) r.sum[i] += shard.sum[i];
    r.locs.insert(r.locs.end(), shard.localizations.begin(), shard.localizations.end());
    expected_first = info.first_frame + info.frames;
    ++r.shards;
  }
  if (expected_first != r.frames)
    throw InputError(dir.string() + ": shards cover frames 0-" + std::to_string(expected_first) + " of " +
                     std::to_string(r.frames) + " (missing shards; rerun infer)");
  if (unverified > 0)
    log::all_print(
        "reduce: warning: {} of {} shard(s) in {} have no checksums (written by a dsir before they were "
        "added), so their data is not verified; rerun infer on the folder to recompute them",
        unverified, r.shards, dir.string());
  return r;
}

bool camera_has_em_gain(const std::string& camera_json) {
  if (camera_json.empty()) return false;
  const auto j = nlohmann::json::parse(camera_json, nullptr, false);
  return j.is_object() && j.contains("em_gain") && j["em_gain"].is_number() &&
         j["em_gain"].get<double>() >= 1;
}

// Each localization's sigma (nm) for the Gaussian rendering: its uncertainty (assign_uncertainty),
// or `fixed`; the reconstruction pixel where there is none (no photometry at all: a point with no
// blur). At least one pixel: a narrower Gaussian falls mostly in one pixel, so the image would show
// where in the pixel grid each localization lies (noise of even/odd rows and columns of
// ~2/sqrt(localizations)) rather than the structure.
std::vector<double> rendering_sigmas(const Reconstruction& r, double fixed) {
  std::vector<double> sigma(r.locs.size());
  for (size_t i = 0; i < r.locs.size(); ++i) {
    const double s = fixed > 0 ? fixed : r.locs[i].uncertainty_nm;
    sigma[i] = std::max(std::isfinite(s) && s > 0 ? s : r.pixel_size_nm, r.pixel_size_nm);
  }
  return sigma;
}

// Returns a one-line summary for the log.
std::string write_outputs(const Reconstruction& r, const fs::path& dir, const ReduceOptions& o,
                          const Context& ctx) {
  const RenderSettings& render = o.render;
  auto out = [&dir](const char* name) { return (dir / name).string(); };
  const std::vector<float> network_sum(r.sum.begin(), r.sum.end());
  const RenderGrid grid{r.width, r.height, r.pixel_size_nm};
  std::vector<float> image;
  std::string unit;
  switch (render.mode) {
    case RenderMode::Sum:
      image = network_sum;
      unit = kNetworkSumUnit;
      break;
    case RenderMode::Histogram:
      image = render_histogram(r.locs, grid);
      unit = "localizations per pixel";
      break;
    case RenderMode::Gaussian:
      image = render_gaussian(r.locs, rendering_sigmas(r, render.sigma_nm), grid);
      unit = render.sigma_nm > 0
                 ? fmt::format("localizations per pixel, each a Gaussian of sigma {} nm", render.sigma_nm)
                 : "localizations per pixel, each a Gaussian of its precision";
      break;
  }
  h5::Attributes attrs = ctx.provenance();
  for (const auto& [k, v] : r.shared) attrs[k] = v;
  ReconstructionContent content;
  content.width = r.width;
  content.height = r.height;
  content.pixel_size_nm = r.pixel_size_nm;
  content.image = image;
  content.render = o.render_name;
  content.image_unit = unit;
  content.network_sum = network_sum;
  content.localizations = r.locs;
  content.frames = r.frames;
  content.shards = r.shards;
  content.raw_pixel_size_nm = r.raw_pixel_size_nm;
  content.raw_width = r.raw_width;
  content.raw_height = r.raw_height;
  write_reconstruction(out("reconstruction.h5"), content, attrs);
  tiff::Writer tif(out("reconstruction.tif"), static_cast<uint32_t>(r.width), static_cast<uint32_t>(r.height),
                   tiff::WriteFormat::F32, r.pixel_size_nm, 1);
  tif.set_unit(tiff::Writer::Unit::Nanometre);
  tif.write_frame(image.data());
  tif.commit();
  picture::save_image_png(out("reconstruction.png"), image, r.width, r.height, r.pixel_size_nm);
  write_thunderstorm_csv(out("localizations.csv"), r.locs);

  PicassoInfo info;
  info.width = r.raw_width;
  info.height = r.raw_height;
  info.frames = r.frames;
  info.pixel_size_nm = r.raw_pixel_size_nm;
  info.generated_by = "dsir " + dsir_version() + " reduce";
  const size_t picasso_rows = write_picasso(out("localizations.hdf5"), r.locs, info, ctx.provenance());
  std::string note;
  if (picasso_rows < r.locs.size())
    note = fmt::format(
        " ({} left out of localizations.hdf5: no uncertainty or outside the field, as picasso "
        "would drop them)",
        r.locs.size() - picasso_rows);
  return fmt::format("reduce: {}: {}x{} at {} nm ({}), {} frames; {} localizations{}\n",
                     out("reconstruction.{h5,tif,png}"), r.width, r.height, r.pixel_size_nm, o.render_name,
                     r.frames, r.locs.size(), note);
}

ReduceOptions read_reduce_options(const Context& ctx) {
  const Config& c = ctx.config;
  ReduceOptions o;
  o.input = ctx.path("reduce.input", "infer");
  o.output = ctx.path("reduce.output", "");
  o.render_name = c.get_string("reduce.render");
  o.render.mode = render_mode_from_name(o.render_name);
  o.render.sigma_nm = c.get_double("reduce.render_sigma_nm");
  o.failed_photometry = failed_photometry_from_name(c.get_string("reduce.failed_photometry"));
  if (c.get_string("reduce.drift") == "rcc") {
    drift::Options d;
    d.bins = static_cast<int>(c.get_int("reduce.drift_bins"));
    d.pixel_nm = c.get_double("reduce.drift_pixel_nm");
    d.max_drift_nm = c.get_double("reduce.drift_max_nm");
    d.rmax_nm = c.get_double("reduce.drift_rmax_nm");
    o.drift = d;
  }
  return o;
}

void run(Context& ctx) {
  const ReduceOptions o = read_reduce_options(ctx);
  const std::string& input = o.input;
  const std::string& output = o.output;
  if (!fs::is_directory(input)) throw ConfigError("reduce.input: folder '" + input + "' does not exist");
  std::vector<fs::path> acquisitions;
  for (const auto& e : fs::directory_iterator(input))
    if (e.is_directory()) acquisitions.push_back(e.path());
  std::sort(acquisitions.begin(), acquisitions.end());
  if (acquisitions.empty()) throw InputError(input + ": no acquisition folders with shards");
  // Acquisitions round-robin over ranks; rank 0 reports them all.
  const size_t ranks = static_cast<size_t>(ctx.mpi.size());
  Progress progress("reduce", acquisitions.size(), "acquisitions");
  progress.set_scale(static_cast<double>(ranks));
  std::string report;
  uint64_t done = 0;
  for (size_t i = 0; i < acquisitions.size(); ++i) {
    if (i % ranks != static_cast<size_t>(ctx.mpi.rank())) continue;
    const fs::path base(output);
    const fs::path dir = acquisitions.size() == 1 ? base : base / acquisitions[i].filename();
    Reconstruction r = reduce_acquisition(acquisitions[i]);
    // Per acquisition, before every export and rendering, so they all agree.
    const PhotometryFailures failures = apply_failed_photometry(r.locs, o.failed_photometry);
    report +=
        fmt::format("reduce: {}: {}{}\n", acquisitions[i].filename().string(), failures.summary(),
                    failures.failed == 0                            ? ""
                    : o.failed_photometry == FailedPhotometry::Drop ? ": dropped"
                                                                    : ": flagged (photometry_flags > 0)");
    assign_uncertainty(r.locs, r.raw_pixel_size_nm, camera_has_em_gain(r.shared.at("camera")));
    report += drift::correct(r.locs, r.frames, acquisitions[i].string(), dir.string(), o.drift);
    report += write_outputs(r, dir, o, ctx);
    progress.set(++done);
  }
  progress.finish();
  for (const auto& text : ctx.mpi.gather_to_root(report)) log::print_lines(text);
}

const CommandRegistrar registrar(
    {"reduce", 60, "Sum inference shards into reconstruction.{h5,tif,png} + localization tables.", run});

}  // namespace
}  // namespace dsir
