// Stage `reduce`: shard partial sums added in a fixed order (bit-identical whatever the number of
// ranks that made them) -> reconstruction.{h5,tif,png}; localizations merged in frame order ->
// localizations.csv. One set per acquisition; with several, each goes to <output>/<acquisition>/.
#include <filesystem>
#include <map>

#include "pipeline/context.h"
#include "pipeline/csv.h"
#include "pipeline/errors.h"
#include "pipeline/log.h"
#include "pipeline/picture.h"
#include "pipeline/registry.h"
#include "pipeline/tiff.h"

namespace fs = std::filesystem;

namespace dsir {
namespace {

const ConfigSection section(
    "reduce", "Reduction of inference shards into reconstructions and localization tables.",
    {
        {"input", KeyType::String, "''", "Shard folder ('' = {run.dir}/infer).", -1e300, 1e300, {}, "--input"},
        {"output", KeyType::String, "''", "Output folder ('' = {run.dir}).", -1e300, 1e300, {}, "--output"},
    });

struct Reconstruction {
  std::vector<double> sum;
  std::vector<Emitter> locs;
  int width = 0, height = 0;
  double pixel_size_nm = 0;
  uint64_t frames = 0;
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
  uint64_t expected_first = 0;
  for (const auto& p : files) {
    h5::File f = h5::File::open(p.string());
    if (!f.has("/sum") || !f.has("/localizations"))
      throw InputError(p.string() + ": not a complete inference shard (missing /sum or /localizations)");
    const uint64_t first = static_cast<uint64_t>(f.attr_double("/", "first_frame"));
    const uint64_t count = static_cast<uint64_t>(f.attr_double("/", "frames"));
    if (first != expected_first)
      throw InputError(p.string() + ": starts at frame " + std::to_string(first) + ", expected " +
                       std::to_string(expected_first) + " (a shard is missing; rerun infer)");
    const h5::Dims d = f.shape("/sum");
    if (r.sum.empty()) {
      r.height = static_cast<int>(d[0]);
      r.width = static_cast<int>(d[1]);
      r.pixel_size_nm = f.attr_double("/", "pixel_size_nm");
      r.frames = static_cast<uint64_t>(f.attr_double("/", "acquisition_frames"));
      r.sum.assign(d[0] * d[1], 0.0);
    } else if (static_cast<int>(d[0]) != r.height || static_cast<int>(d[1]) != r.width) {
      throw InputError(p.string() + ": /sum size differs from the other shards");
    }
    const std::vector<double> part = f.read<double>("/sum");
    for (size_t i = 0; i < part.size(); ++i) r.sum[i] += part[i];
    auto locs = table_to_emitters(f.read_table("/localizations"));
    r.locs.insert(r.locs.end(), locs.begin(), locs.end());
    expected_first = first + count;
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
  h5::File f = h5::File::create(out("reconstruction.h5"), ctx.provenance());
  f.write("/image", image, {static_cast<uint64_t>(r.height), static_cast<uint64_t>(r.width)});
  f.set_attr("/image", "pixel_size_nm", r.pixel_size_nm);
  f.set_attr("/", "pixel_size_nm", r.pixel_size_nm);
  f.set_attr("/", "frames", static_cast<double>(r.frames));
  f.write_table("/localizations", emitters_to_table(r.locs));
  f.commit();
  tiff::Writer tif(out("reconstruction.tif"), static_cast<uint32_t>(r.width), static_cast<uint32_t>(r.height),
                   tiff::WriteFormat::F32, r.pixel_size_nm, 1);
  tif.write_frame(image.data());
  tif.commit();
  picture::save_image_png(out("reconstruction.png"), image, r.width, r.height, r.pixel_size_nm);
  write_thunderstorm_csv(out("localizations.csv"), r.locs);
  return fmt::format("reduce: {}: {}x{} at {} nm, {} frames; {} localizations\n", out("reconstruction.{h5,tif,png}"),
                     r.width, r.height, r.pixel_size_nm, r.frames, r.locs.size());
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
  // One acquisition per rank at a time; rank 0 reports them all.
  std::string report;
  for (size_t i = 0; i < acquisitions.size(); ++i) {
    if (static_cast<int>(i % static_cast<size_t>(ctx.mpi.size())) != ctx.mpi.rank()) continue;
    const fs::path base(output);
    report += write_outputs(reduce_acquisition(acquisitions[i]),
                            acquisitions.size() == 1 ? base : base / acquisitions[i].filename(), ctx);
  }
  for (const auto& text : ctx.mpi.gather_to_root(report)) log::print_lines(text);
}

const CommandRegistrar registrar({"reduce", 60,
                                  "Sum inference shards into reconstruction.{h5,tif,png} + localizations.csv.",
                                  run});

}  // namespace
}  // namespace dsir
