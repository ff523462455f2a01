// Stage `calibrate`: the camera and data properties of an acquisition, from its frames alone,
// as simulator config keys (camera.yaml) and a picture of the fits (calibration.png). First in
// the pipeline: in `dsir run` the keys it finds become the run's own for the stages after it
// (simulate draws training frames with the calibrated camera, ingest records it), except those
// the user set.
#include <filesystem>

#include "pipeline/atomic_file.h"
#include "pipeline/config.h"
#include "pipeline/context.h"
#include "pipeline/errors.h"
#include "pipeline/inputs.h"
#include "pipeline/log.h"
#include "pipeline/registry.h"
#include "stages/calibrate/calibrate.h"

namespace dsir {
namespace {

const ConfigSection section(
    "calibrate", "Camera and data properties from an acquisition alone (stages/calibrate/README.md).",
    {
        KeySpec::text_list("frames", "[]",
                           "TIFF files or raw.h5 files (or globs) forming one acquisition ([] = run.input).")
            .cli("--frames"),
        KeySpec::text("output", "''",
                      "Output config fragment ('' = camera.yaml beside the first input, or in run.dir for "
                      "run.input); calibration.png goes beside it.")
            .cli("--output"),
        KeySpec::real("pixel_size_nm", "0", "Pixel size (nm); 0 = from the TIFF resolution tags.")
            .range(0, 1e5)
            .cli("--pixel-size"),
        KeySpec::integer("max_frames", "4000",
                         "Frames used at most, evenly spaced over all the inputs (0: all): an archive is "
                         "sampled, not loaded (4000 frames of 64x64: 64 MiB).")
            .range(0, 1e9),
    });

// Auto mode: no calibrate.frames, so the frames are the run's (run.input).
bool frames_from_run_input(const Config& c) { return c.get_strings("calibrate.frames").empty(); }

// Where camera.yaml goes: calibrate.output, else the run folder (auto mode), else beside the
// first input.
std::string output_path(const Context& ctx, const std::string& first_input) {
  const Config& c = ctx.config;
  if (!c.get_string("calibrate.output").empty()) return c.get_string("calibrate.output");
  const std::filesystem::path dir = frames_from_run_input(c)
                                        ? std::filesystem::path(ctx.run_dir())
                                        : std::filesystem::path(first_input).parent_path();
  return (dir / "camera.yaml").string();
}

// The calibrated keys become the run's for the stages after calibrate, except those the config
// or the command line set.
void continue_with(Config& c, const std::vector<std::pair<std::string, std::string>>& keys,
                   const std::string& source) {
  std::string applied, kept;
  for (const auto& [k, value] : keys) {
    if (c.is_default(k)) {
      c.set(k, value, "calibrate (" + source + ")");
      applied += fmt::format("{}{}={}", applied.empty() ? "" : ", ", k, value);
    } else {
      kept += fmt::format("{}{} (calibrated: {})", kept.empty() ? "" : ", ", k, value);
    }
  }
  log::print("calibrate: the run continues with {}", applied.empty() ? "no calibrated key" : applied);
  if (!kept.empty()) log::print("calibrate: kept as the config sets them: {}", kept);
}

void run(Context& ctx) {
  Config& c = ctx.config;
  const bool from_run_input = frames_from_run_input(c);
  const std::string key = from_run_input ? "run.input" : "calibrate.frames";
  if (c.get_strings(key).empty())
    throw ConfigError(
        "calibrate.frames: no frames given (dsir calibrate --frames A.tif [B.tif ...], or run.input in a "
        "run)");
  const std::vector<std::string> files = expand_inputs(c.get_strings(key));
  for (const auto& f : files) require_file(f, key);
  calibrate::Stack stack =
      calibrate::read_stacks(files, static_cast<uint64_t>(c.get_int("calibrate.max_frames")));
  if (c.get_double("calibrate.pixel_size_nm") > 0)
    stack.pixel_size_nm = c.get_double("calibrate.pixel_size_nm");
  else if (!(stack.pixel_size_nm > 0) && !c.is_default("camera.pixel_size_nm"))
    stack.pixel_size_nm = c.get_double("camera.pixel_size_nm");
  // A run needs the pixel size to match the simulator's PSF and density to the data.
  if (!(stack.pixel_size_nm > 0) && from_run_input)
    throw ConfigError("run.input: '" + files.front() +
                      "' has no pixel size in its TIFF resolution tags; give it as camera.pixel_size_nm=NM");
  const calibrate::Calibration cal = calibrate::calibrate(stack);

  const std::string output = output_path(ctx, files.front());
  const std::string png = (std::filesystem::path(output).parent_path() / "calibration.png").string();
  if (ctx.mpi.is_root()) {
    write_text_file(output, calibrate::calibration_yaml(cal, files.front()));
    calibrate::save_calibration_png(png, cal);
    log::print("calibrate: {} frames of {}x{} from {}{}", cal.frames, cal.width, cal.height, files.front(),
               files.size() > 1 ? fmt::format(" (+ {} more)", files.size() - 1) : "");
    log::print(
        "calibrate: base level {:.2f} ADU, {:.4g} ADU/photon, EM {} (ratio {:.3f}), read noise {:.3g} ADU",
        cal.base_level, cal.adu_per_photon, cal.em ? "on" : "off", cal.skew_ratio, cal.read_noise_adu);
    log::print("calibrate: background {:.3g} photons/pixel, PSF sigma {:.4g} {} ({} spots), {:.3g} {}",
               cal.background_photons, cal.pixel_size_nm > 0 ? cal.sigma_nm : cal.sigma_px,
               cal.pixel_size_nm > 0 ? "nm" : "px", cal.spots.size(),
               cal.pixel_size_nm > 0 ? cal.density_per_um2 : cal.detections_per_frame,
               cal.pixel_size_nm > 0 ? "emitters/um^2/frame" : "detections/frame (pixel size unknown)");
    log::print("calibrate: wrote {} and {}", output, png);
  }
  // For the stages after this one (every rank computed the same calibration).
  continue_with(c, calibrate::calibration_keys(cal), output);
}

// A later step of a Slurm chain (`dsir run --stages upscale,train` in a new process) takes the
// calibrated keys back from the camera.yaml an earlier step wrote into the run folder, so its
// config.yaml and its stages see the same camera as the step that calibrated.
void restore(Context& ctx) {
  const Config& c = ctx.config;
  if (!frames_from_run_input(c) || c.get_strings("run.input").empty()) return;
  const std::string path = output_path(ctx, "");
  if (!std::filesystem::exists(path)) return;
  const Config fragment = Config::load(path);
  std::vector<std::pair<std::string, std::string>> keys;
  for (const auto& e : schema())
    if (!fragment.is_default(e.key)) keys.emplace_back(e.key, fragment.yaml_value(e.key));
  log::print("calibrate: not run in this step; the calibration of {} applies", path);
  continue_with(ctx.config, keys, path);
}

const CommandRegistrar registrar({"calibrate",
                                  5,
                                  "Camera (base, ADU/photon, EM, read noise), background, PSF and density "
                                  "from the frames alone, as simulator config keys.",
                                  run,
                                  {},
                                  restore});

}  // namespace
}  // namespace dsir
