// Stage `reduce`: shard partial sums added in a fixed order (bit-identical whatever the number of
// ranks that made them) -> reconstruction.{h5,tif,png}; localizations merged in frame order ->
// localizations.csv (ThunderSTORM) and localizations.hdf5 + .yaml (picasso). One set per
// acquisition; with several, each goes to <output>/<acquisition>/.
#include <filesystem>
#include <nlohmann/json.hpp>

#include "pipeline/context.h"
#include "pipeline/csv.h"
#include "pipeline/errors.h"
#include "pipeline/log.h"
#include "pipeline/picture.h"
#include "pipeline/registry.h"
#include "pipeline/tiff.h"
#include "stages/reduce/exports.h"
#include "stages/reduce/shard.h"

namespace fs = std::filesystem;

namespace dsir {
namespace {

const ConfigSection section(
    "reduce", "Reduction of inference shards into reconstructions and localization tables.",
    {
        {"input",
         KeyType::String,
         "''",
         "Shard folder ('' = {run.dir}/infer).",
         -1e300,
         1e300,
         {},
         "--input"},
        {"output", KeyType::String, "''", "Output folder ('' = {run.dir}).", -1e300, 1e300, {}, "--output"},
    });

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
  uint64_t expected_first = 0;
  for (const auto& p : files) {
    h5::File f = h5::File::open(p.string());  // InputError naming the file when unreadable
    const ShardHeader h = read_shard_header(f);
    for (const auto& [key, v] : h.shared) {
      if (first_file.empty()) {
        r.shared[key] = v;
      } else if (r.shared[key] != v) {
        throw InputError(
            fmt::format("{}: {} is '{}' but {} has '{}': the folder mixes shards of different runs "
                        "(rerun infer on it with one model and one set of settings)",
                        p.string(), key, v, first_file, r.shared[key]));
      }
    }
    const uint64_t first = h.first_frame;
    const uint64_t count = h.frames;
    if (first != expected_first)
      throw InputError(p.string() + ": starts at frame " + std::to_string(first) + ", expected " +
                       std::to_string(expected_first) + " (a shard is missing; rerun infer)");
    if (first_file.empty()) {
      r.height = static_cast<int>(h.height);
      r.width = static_cast<int>(h.width);
      r.pixel_size_nm = h.pixel_size_nm;
      r.frames = h.acquisition_frames;
      r.raw_width = h.raw_width;
      r.raw_height = h.raw_height;
      r.raw_pixel_size_nm = h.raw_pixel_size_nm;
      r.sum.assign(h.height * h.width, 0.0);
      first_file = p.string();
    } else if (static_cast<int>(h.height) != r.height || static_cast<int>(h.width) != r.width) {
      throw InputError(p.string() + ": /sum size differs from the other shards");
    }
    const std::vector<double> part = f.read<double>("/sum");
    for (size_t i = 0; i < part.size(); ++i) r.sum[i] += part[i];
    auto locs = table_to_emitters(f.read_table("/localizations"), p.string() + ":/localizations");
    r.locs.insert(r.locs.end(), locs.begin(), locs.end());
    expected_first = first + count;
    ++r.shards;
  }
  if (expected_first != r.frames)
    throw InputError(dir.string() + ": shards cover frames 0-" + std::to_string(expected_first) + " of " +
                     std::to_string(r.frames) + " (missing shards; rerun infer)");
  return r;
}

// Returns a one-line summary for the log.
std::string write_outputs(const Reconstruction& r, const fs::path& dir, const Context& ctx) {
  auto out = [&dir](const char* name) { return (dir / name).string(); };
  std::vector<float> image(r.sum.begin(), r.sum.end());
  h5::Attributes attrs = ctx.provenance();
  for (const auto& [k, v] : r.shared) attrs[k] = v;
  h5::File f = h5::File::create(out("reconstruction.h5"), attrs);
  f.write("/image", image, {static_cast<uint64_t>(r.height), static_cast<uint64_t>(r.width)});
  f.set_attr("/image", "pixel_size_nm", r.pixel_size_nm);
  f.set_attr("/image", "unit", "emitters per pixel (network output / label scale, summed over frames)");
  f.set_attr("/", "pixel_size_nm", r.pixel_size_nm);
  f.set_attr("/", "frames", static_cast<double>(r.frames));
  f.set_attr("/", "shards", static_cast<double>(r.shards));
  f.set_attr("/", "raw_pixel_size_nm", r.raw_pixel_size_nm);
  f.set_attr("/", "raw_width", static_cast<double>(r.raw_width));
  f.set_attr("/", "raw_height", static_cast<double>(r.raw_height));
  f.write_table("/localizations", emitters_to_table(r.locs));
  f.commit();
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
  const std::string camera = r.shared.at("camera");
  if (!camera.empty()) {
    const auto j = nlohmann::json::parse(camera, nullptr, false);
    info.em_gain =
        j.is_object() && j.contains("em_gain") && j["em_gain"].is_number() && j["em_gain"].get<double>() >= 1;
  }
  const size_t picasso_rows = write_picasso(out("localizations.hdf5"), r.locs, info, ctx.provenance());
  std::string note;
  if (picasso_rows < r.locs.size())
    note = fmt::format(
        " ({} left out of localizations.hdf5: no photometry fit or outside the field, as picasso "
        "would drop them)",
        r.locs.size() - picasso_rows);
  return fmt::format("reduce: {}: {}x{} at {} nm, {} frames; {} localizations{}\n",
                     out("reconstruction.{h5,tif,png}"), r.width, r.height, r.pixel_size_nm, r.frames,
                     r.locs.size(), note);
}

void run(Context& ctx) {
  const std::string input = ctx.path("reduce.input", "infer");
  const std::string output = ctx.path("reduce.output", "");
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
    report += write_outputs(reduce_acquisition(acquisitions[i]),
                            acquisitions.size() == 1 ? base : base / acquisitions[i].filename(), ctx);
    progress.set(++done);
  }
  progress.finish();
  for (const auto& text : ctx.mpi.gather_to_root(report)) log::print_lines(text);
}

const CommandRegistrar registrar(
    {"reduce", 60, "Sum inference shards into reconstruction.{h5,tif,png} + localization tables.", run});

}  // namespace
}  // namespace dsir
