#include "stages/ingest/ingest.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>

#include "pipeline/csv.h"
#include "pipeline/errors.h"
#include "pipeline/formats/raw_file.h"
#include "pipeline/inputs.h"
#include "pipeline/log.h"
#include "pipeline/tiff.h"

namespace dsir {

IngestSummary ingest_stack(const IngestRequest& req, const h5::Attributes& provenance) {
  if (req.frames.empty()) throw InputError("ingest: no TIFF files given");
  // Check every file first: sizes, formats and the pixel size must agree before writing anything.
  // Each is closed again: a stack of one file per frame can hold more files than may be open.
  std::vector<uint64_t> frames_in;
  IngestSummary s;
  bool needs_float = false;
  double tag_pixel = 0;
  for (const auto& f : req.frames) {
    const tiff::StackInfo info = tiff::Reader(f).info();
    if (frames_in.empty()) {
      s.width = info.width;
      s.height = info.height;
      tag_pixel = info.pixel_size_nm;
    } else if (info.pixel_size_nm != tag_pixel && req.pixel_size_nm <= 0) {
      throw InputError(
          f + ": pixel size " + std::to_string(info.pixel_size_nm) + " nm differs from " +
          req.frames.front() + "'s " + std::to_string(tag_pixel) +
          " nm; give the pixel size explicitly (ingest.pixel_size_nm) to ingest them as one stack");
    } else if (info.width != s.width || info.height != s.height) {
      throw InputError(f + ": frames are " + std::to_string(info.width) + "x" + std::to_string(info.height) +
                       " but " + req.frames.front() + " has " + std::to_string(s.width) + "x" +
                       std::to_string(s.height));
    }
    needs_float = needs_float || info.kind == tiff::SampleKind::Float || info.bits_per_sample > 16;
    frames_in.push_back(info.frames);
    s.frames += info.frames;
  }
  s.pixel_size_nm = req.pixel_size_nm > 0 ? req.pixel_size_nm : tag_pixel;
  if (!(s.pixel_size_nm > 0))
    throw InputError(
        req.frames.front() +
        ": no pixel size in the TIFF resolution tags; give one (ingest.pixel_size_nm / --pixel-size)");

  // Ground truth first too: a bad CSV must fail before any output exists.
  std::vector<Emitter> truth;
  if (!req.locs.empty()) {
    LocalizationFile lf = read_localizations_csv(req.locs);
    truth = std::move(lf.emitters);
    for (size_t i = 0; i < truth.size(); ++i)
      if (truth[i].frame >= static_cast<int64_t>(s.frames))
        throw InputError(req.locs + ": data row " + std::to_string(i + 1) + ": frame " +
                         std::to_string(truth[i].frame + 1) + " is beyond the stack's " +
                         std::to_string(s.frames) + " frames");
    const double w_nm = s.width * s.pixel_size_nm, h_nm = s.height * s.pixel_size_nm;
    s.emitters = truth.size();
    s.emitters_outside = count_outside(truth, w_nm, h_nm);
    if (s.emitters_outside)
      log::warn("ingest: {}: {} of {} emitters lie outside the {:.0f} x {:.0f} nm field of view (kept)",
                req.locs, s.emitters_outside, truth.size(), w_nm, h_nm);
  }

  RawFileInfo info;
  info.frames = s.frames;
  info.width = s.width;
  info.height = s.height;
  info.float32 = needs_float;
  info.pixel_size_nm = s.pixel_size_nm;
  info.camera_json = req.camera_json;
  for (const auto& f : req.frames) info.source_files += (info.source_files.empty() ? "" : "\n") + f;
  RawFileWriter out(req.output, info, provenance);
  const size_t frame_px = static_cast<size_t>(s.width) * s.height;
  std::vector<float> buf(frame_px);
  std::vector<uint16_t> buf16(frame_px);
  Progress progress("ingest " + std::filesystem::path(req.output).filename().string(), s.frames);
  for (size_t k = 0; k < req.frames.size(); ++k) {
    tiff::Reader r(req.frames[k]);
    if (r.info().frames != frames_in[k] || r.info().width != s.width || r.info().height != s.height)
      throw InputError(req.frames[k] + ": changed while being ingested");
    for (uint64_t f = 0; f < frames_in[k]; ++f) {
      r.read_frame(f, buf.data());
      if (needs_float) {
        out.write_frame(buf.data());
      } else {
        // Exact: the samples are 8- or 16-bit unsigned integers.
        for (size_t i = 0; i < frame_px; ++i) buf16[i] = static_cast<uint16_t>(buf[i]);
        out.write_frame(buf16.data());
      }
      progress.add();
    }
  }
  progress.finish();
  if (!req.locs.empty()) out.set_emitters(truth, req.locs, s.emitters_outside);
  out.commit();
  return s;
}

std::vector<IngestRequest> archive_requests(const std::vector<std::string>& files,
                                            const std::string& output_dir, double pixel_size_nm,
                                            const std::string& camera_json, const std::string& key) {
  std::vector<IngestRequest> out;
  std::map<std::string, std::string> by_output;
  for (const auto& f : files) {
    IngestRequest r;
    r.frames = {f};
    r.pixel_size_nm = pixel_size_nm;
    r.camera_json = camera_json;
    r.output = ingested_path(f, output_dir);
    auto [it, fresh] = by_output.emplace(r.output, f);
    if (!fresh)
      throw ConfigError(key + ": '" + it->second + "' and '" + f + "' would both be written to '" + r.output +
                        "'; rename one or ingest them separately");
    out.push_back(std::move(r));
  }
  return out;
}

}  // namespace dsir
