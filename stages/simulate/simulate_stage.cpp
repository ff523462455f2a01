// Stage `simulate`: training frames (uniform emitters, DSIR's recipe) and an optional test
// acquisition (emitters blinking along filaments) as ThunderSTORM-style TIFF + ground-truth CSV,
// or straight to raw.h5 (simulate.format: h5).
#include <cstring>
#include <filesystem>
#include <optional>

#include "pipeline/context.h"
#include "pipeline/errors.h"
#include "pipeline/formats/raw_file.h"
#include "pipeline/log.h"
#include "pipeline/registry.h"
#include "pipeline/tiff.h"
#include "stages/ingest/ingest.h"
#include "stages/simulate/simulator.h"

namespace dsir {
namespace {

const ConfigSection section(
    "simulate", "Simulated data: a training set and an optional test acquisition.",
    {
        KeySpec::text("output", "''", "Output folder ('' = {run.dir}/sim for tiff, {run.dir}/data for h5).")
            .cli("--output"),
        KeySpec::choice("format", "tiff",
                        "tiff: train.tif/.csv and acquisition.tif/.csv (ThunderSTORM's files, for ingest); "
                        "h5: train.h5 and acquisition.h5 in the raw.h5 layout (ingest is then not needed).",
                        {"tiff", "h5"}),
        KeySpec::integer("chunk_frames", "64", "Frames per work unit handed to a rank.").range(1, 1e6),
        KeySpec::integer("train.frames", "100000", "Training frames (DSIR: 3500 train + 1500 validation).")
            .range(0, 1e9)
            .cli("--frames"),
        KeySpec::integer("train.width", "20", "Training frame width (pixels; DSIR: 26).").range(4, 65535),
        KeySpec::integer("train.height", "20", "Training frame height (pixels; DSIR: 26).").range(4, 65535),
        KeySpec::real("train.density", "2.0", "Mean emitters per frame per µm².").range(0, 1e4),
        KeySpec::choice(
            "train.structure", "filaments",
            "Where training emitters sit: filaments drawn anew for every frame, or uniform (DSIR). "
            "Filaments score better on filament-like data (docs/accuracy.md).",
            {"uniform", "filaments"}),
        KeySpec::integer("train.filaments", "2", "Filaments per training frame (train.structure: filaments).")
            .range(1, 10000),
        KeySpec::integer("acquisition.frames", "0", "Test acquisition frames (0: none).").range(0, 1e9),
        KeySpec::integer("acquisition.width", "64", "Acquisition frame width (pixels).").range(4, 65535),
        KeySpec::integer("acquisition.height", "64", "Acquisition frame height (pixels).").range(4, 65535),
        KeySpec::real("acquisition.density", "1.0", "Mean active emitters per frame per µm².").range(0, 1e4),
        KeySpec::choice("acquisition.structure", "filaments", "Where emitters sit.",
                        {"filaments", "uniform"}),
        KeySpec::integer("acquisition.filaments", "6", "Number of filaments.").range(1, 10000),
        KeySpec::text("acquisition.mask", "''",
                      "Density mask: a grayscale TIFF stretched over the field whose values (divided by "
                      "their maximum) weight the emitter density ('' = none)."),
    });

sim::Camera camera_from(const Config& c) {
  sim::Camera cam;
  cam.pixel_size_nm = c.get_double("camera.pixel_size_nm");
  cam.base_level = c.get_double("camera.base_level");
  cam.e_per_adu = c.get_double("camera.e_per_adu");
  cam.em_gain = c.get_double("camera.em_gain");
  cam.read_noise_e = c.get_double("camera.read_noise_e");
  cam.quantum_efficiency = c.get_double("camera.quantum_efficiency");
  cam.background_photons = c.get_double("camera.background_photons");
  return cam;
}

sim::EmitterRanges ranges_from(const Config& c) {
  const auto& fwhm = c.get_doubles("psf.fwhm_nm");
  const auto& photons = c.get_doubles("psf.photons");
  if (fwhm[0] > fwhm[1]) throw ConfigError("psf.fwhm_nm: expected [min, max] with min <= max");
  if (photons[0] > photons[1]) throw ConfigError("psf.photons: expected [min, max] with min <= max");
  sim::EmitterRanges r;
  r.fwhm_min_nm = fwhm[0];
  r.fwhm_max_nm = fwhm[1];
  r.photons_min = photons[0];
  r.photons_max = photons[1];
  r.psf = c.get_string("psf.model") == "sampled" ? sim::PsfModel::Sampled : sim::PsfModel::Integrated;
  return r;
}

// Every simulate.* key and the camera and PSF the simulation draws with, read once when the
// stage starts.
struct SimulateOptions {
  bool h5 = false;  // simulate.format: h5 (raw.h5 directly) rather than TIFF + CSV
  std::string output;
  sim::Camera camera;
  std::string camera_json;  // raw.h5's camera attribute
  sim::EmitterRanges ranges;
  uint64_t seed = 0;
  uint64_t chunk_frames = 16;
  sim::FieldSpec train, acquisition;
  int64_t train_frames = 0, acquisition_frames = 0;
  std::string mask;  // density mask TIFF of the acquisition ('' = none)
};

SimulateOptions read_simulate_options(const Context& ctx) {
  const Config& c = ctx.config;
  SimulateOptions o;
  o.h5 = c.get_string("simulate.format") == "h5";
  o.output = ctx.path("simulate.output", o.h5 ? "data" : "sim");
  o.camera = camera_from(c);
  o.camera_json = camera_json(c);
  o.ranges = ranges_from(c);
  o.seed = static_cast<uint64_t>(c.get_int("run.seed"));
  o.chunk_frames = static_cast<uint64_t>(c.get_int("simulate.chunk_frames"));
  o.train.width = static_cast<int>(c.get_int("simulate.train.width"));
  o.train.height = static_cast<int>(c.get_int("simulate.train.height"));
  o.train.density_per_um2 = c.get_double("simulate.train.density");
  o.train.structure = c.get_string("simulate.train.structure") == "filaments" ? sim::Structure::Filaments
                                                                              : sim::Structure::Uniform;
  o.train.filaments = static_cast<int>(c.get_int("simulate.train.filaments"));
  o.train.filaments_per_frame = true;
  o.train_frames = c.get_int("simulate.train.frames");
  o.acquisition.width = static_cast<int>(c.get_int("simulate.acquisition.width"));
  o.acquisition.height = static_cast<int>(c.get_int("simulate.acquisition.height"));
  o.acquisition.density_per_um2 = c.get_double("simulate.acquisition.density");
  o.acquisition.structure = c.get_string("simulate.acquisition.structure") == "filaments"
                                ? sim::Structure::Filaments
                                : sim::Structure::Uniform;
  o.acquisition.filaments = static_cast<int>(c.get_int("simulate.acquisition.filaments"));
  o.acquisition_frames = c.get_int("simulate.acquisition.frames");
  o.mask = c.get_string("simulate.acquisition.mask");
  return o;
}

// Where one simulated set goes: a TIFF + ThunderSTORM CSV, or a raw.h5. Rank 0 only.
class SetWriter {
 public:
  SetWriter(const Context& ctx, const SimulateOptions& o, const std::string& stem,
            const sim::FieldSpec& field, int64_t frames) {
    const sim::Camera& cam = o.camera;
    if (o.h5) {
      RawFileInfo info;
      info.frames = static_cast<uint64_t>(frames);
      info.width = static_cast<uint32_t>(field.width);
      info.height = static_cast<uint32_t>(field.height);
      info.pixel_size_nm = cam.pixel_size_nm;
      info.camera_json = o.camera_json;
      info.source_files = "dsir simulate (run.seed " + std::to_string(o.seed) + ")";
      raw_ = std::make_unique<RawFileWriter>(stem + ".h5", info, ctx.provenance());
      source_ = info.source_files;
      width_nm_ = field.width * cam.pixel_size_nm;
      height_nm_ = field.height * cam.pixel_size_nm;
    } else {
      tif_ = std::make_unique<tiff::Writer>(stem + ".tif", field.width, field.height, tiff::WriteFormat::U16,
                                            cam.pixel_size_nm, static_cast<uint64_t>(frames));
      csv_ = stem + ".csv";
    }
  }
  void frame(const uint16_t* pixels) {
    if (raw_)
      raw_->write_frame(pixels);
    else
      tif_->write_frame(pixels);
  }
  // Commits the frames and writes the ground truth.
  void finish(const std::vector<Emitter>& truth) {
    if (raw_) {
      raw_->set_emitters(truth, source_, count_outside(truth, width_nm_, height_nm_));
      raw_->commit();
    } else {
      tif_->commit();
      write_thunderstorm_csv(csv_, truth);
    }
  }

 private:
  std::unique_ptr<tiff::Writer> tif_;
  std::unique_ptr<RawFileWriter> raw_;
  std::string csv_, source_;
  double width_nm_ = 0, height_nm_ = 0;
};

// Simulates `frames` frames of `field` into <stem>.tif and <stem>.csv (or <stem>.h5). Ranks compute
// chunks of frames; rank 0 writes them in frame order, so the files do not depend on the number
// of ranks.
void simulate_set(Context& ctx, const SimulateOptions& o, const std::string& stem,
                  const sim::FieldSpec& field, int64_t frames, uint64_t seed,
                  const sim::DensityMask* mask = nullptr) {
  const sim::Camera& cam = o.camera;
  const sim::EmitterRanges& ranges = o.ranges;
  std::optional<sim::Filaments> filaments;  // the acquisition's, shared by its frames
  const bool on_filaments = field.structure == sim::Structure::Filaments;
  if (on_filaments && !field.filaments_per_frame) filaments.emplace(field, cam.pixel_size_nm, seed);
  const uint64_t chunk = o.chunk_frames;
  const uint64_t n_chunks = (static_cast<uint64_t>(frames) + chunk - 1) / chunk;
  const size_t frame_px = static_cast<size_t>(field.width) * static_cast<size_t>(field.height);

  std::unique_ptr<SetWriter> out;
  std::vector<Emitter> truth;
  if (ctx.mpi.is_root()) out = std::make_unique<SetWriter>(ctx, o, stem, field, frames);
  Progress progress("simulate " + std::filesystem::path(stem).filename().string(),
                    static_cast<uint64_t>(frames));

  // Chunk wire format: uint64 frame count, pixels (uint16), uint64 emitter count, Emitter records.
  auto produce = [&](uint64_t c) {
    const int64_t first = static_cast<int64_t>(c * chunk);
    const int64_t last = std::min<int64_t>(frames, first + static_cast<int64_t>(chunk));
    std::vector<uint16_t> pixels;
    std::vector<Emitter> emitters;
    for (int64_t f = first; f < last; ++f) {
      std::optional<sim::Filaments> own;
      if (on_filaments && field.filaments_per_frame)
        own = sim::frame_filaments(field, cam.pixel_size_nm, seed, f);
      const sim::Filaments* on = own ? &*own : filaments ? &*filaments : nullptr;
      sim::Frame fr = sim::simulate_frame(field, cam, ranges, on, seed, f, mask);
      pixels.insert(pixels.end(), fr.pixels.begin(), fr.pixels.end());
      emitters.insert(emitters.end(), fr.emitters.begin(), fr.emitters.end());
    }
    std::string bytes(16 + pixels.size() * 2 + emitters.size() * sizeof(Emitter), '\0');
    uint64_t nf = static_cast<uint64_t>(last - first), ne = emitters.size();
    char* p = bytes.data();
    std::memcpy(p, &nf, 8);
    std::memcpy(p + 8, pixels.data(), pixels.size() * 2);
    std::memcpy(p + 8 + pixels.size() * 2, &ne, 8);
    std::memcpy(p + 16 + pixels.size() * 2, emitters.data(), emitters.size() * sizeof(Emitter));
    progress.add(nf);
    return bytes;
  };
  auto consume = [&](uint64_t, const std::string& bytes) {
    uint64_t nf = 0, ne = 0;
    std::memcpy(&nf, bytes.data(), 8);
    const size_t px_bytes = nf * frame_px * 2;
    std::vector<uint16_t> pixels(nf * frame_px);
    std::memcpy(pixels.data(), bytes.data() + 8, px_bytes);
    for (uint64_t f = 0; f < nf; ++f) out->frame(pixels.data() + f * frame_px);
    std::memcpy(&ne, bytes.data() + 8 + px_bytes, 8);
    size_t old = truth.size();
    truth.resize(old + ne);
    std::memcpy(truth.data() + old, bytes.data() + 16 + px_bytes, ne * sizeof(Emitter));
  };
  progress.set_scale(ctx.mpi.size());
  ordered_chunks_to_root(ctx.mpi, n_chunks, produce, consume);
  progress.finish();
  if (ctx.mpi.is_root()) {
    out->finish(truth);
    log::print("simulate: {}.{}: {} frames {}x{}, {} emitters ({:.2f} per frame)", stem, o.h5 ? "h5" : "tif",
               frames, field.width, field.height, truth.size(),
               frames ? static_cast<double>(truth.size()) / static_cast<double>(frames) : 0.0);
  }
  ctx.mpi.barrier();
}

void run(Context& ctx) {
  const SimulateOptions o = read_simulate_options(ctx);
  // The mask first: a bad one must fail before anything is written.
  std::unique_ptr<sim::DensityMask> mask;
  if (!o.mask.empty() && o.acquisition_frames > 0) {
    require_file(o.mask, "simulate.acquisition.mask");
    mask = std::make_unique<sim::DensityMask>(sim::DensityMask::from_tiff(o.mask));
    log::print("simulate: density mask {} ({}x{}, mean weight {:.3f})", o.mask, mask->width(), mask->height(),
               mask->mean_weight());
  }
  if (o.train_frames > 0) simulate_set(ctx, o, o.output + "/train", o.train, o.train_frames, o.seed);
  // The acquisition: a different stream than the training set's, still a function of run.seed alone.
  if (o.acquisition_frames > 0)
    simulate_set(ctx, o, o.output + "/acquisition", o.acquisition, o.acquisition_frames,
                 o.seed ^ 0x5eedacc0ull, mask.get());
}

const CommandRegistrar registrar(
    {"simulate", 10, "Simulate training frames and a test acquisition (TIFF + ThunderSTORM CSV).", run});

}  // namespace
}  // namespace dsir
