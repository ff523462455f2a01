#include "stages/ingest/ingest.h"

#include <glob.h>

#include <algorithm>
#include <cctype>
#include <cmath>

#include "pipeline/csv.h"
#include "pipeline/errors.h"
#include "pipeline/log.h"
#include "pipeline/tiff.h"

namespace dsir {
namespace {

// "a2.tif" < "a10.tif": digit runs compare as numbers.
bool natural_less(const std::string& a, const std::string& b) {
  size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    if (std::isdigit(static_cast<unsigned char>(a[i])) && std::isdigit(static_cast<unsigned char>(b[j]))) {
      size_t i2 = i, j2 = j;
      while (i2 < a.size() && std::isdigit(static_cast<unsigned char>(a[i2]))) ++i2;
      while (j2 < b.size() && std::isdigit(static_cast<unsigned char>(b[j2]))) ++j2;
      std::string na = a.substr(i, i2 - i), nb = b.substr(j, j2 - j);
      na.erase(0, std::min(na.find_first_not_of('0'), na.size()));
      nb.erase(0, std::min(nb.find_first_not_of('0'), nb.size()));
      if (na.size() != nb.size()) return na.size() < nb.size();
      if (na != nb) return na < nb;
      i = i2;
      j = j2;
    } else {
      if (a[i] != b[j]) return a[i] < b[j];
      ++i;
      ++j;
    }
  }
  return a.size() - i < b.size() - j;
}

}  // namespace

std::vector<std::string> expand_inputs(const std::vector<std::string>& patterns) {
  std::vector<std::string> out;
  for (const auto& p : patterns) {
    if (p.find_first_of("*?[") == std::string::npos) {
      out.push_back(p);
      continue;
    }
    glob_t g{};
    int rc = ::glob(p.c_str(), 0, nullptr, &g);
    std::vector<std::string> matches;
    if (rc == 0)
      for (size_t i = 0; i < g.gl_pathc; ++i) matches.emplace_back(g.gl_pathv[i]);
    globfree(&g);
    if (matches.empty()) throw InputError("'" + p + "': no file matches");
    std::sort(matches.begin(), matches.end(), natural_less);
    out.insert(out.end(), matches.begin(), matches.end());
  }
  return out;
}

IngestSummary ingest_stack(const IngestRequest& req, const h5::Attributes& provenance) {
  if (req.frames.empty()) throw InputError("ingest: no TIFF files given");
  // Open every file first: sizes, formats and the pixel size must agree before writing anything.
  std::vector<std::unique_ptr<tiff::Reader>> readers;
  IngestSummary s;
  bool needs_float = false;
  double tag_pixel = 0;
  for (const auto& f : req.frames) {
    readers.push_back(std::make_unique<tiff::Reader>(f));
    const auto& info = readers.back()->info();
    if (readers.size() == 1) {
      s.width = info.width;
      s.height = info.height;
      tag_pixel = info.pixel_size_nm;
    } else if (info.pixel_size_nm != tag_pixel && req.pixel_size_nm <= 0) {
      throw InputError(f + ": pixel size " + std::to_string(info.pixel_size_nm) + " nm differs from " +
                       req.frames.front() + "'s " + std::to_string(tag_pixel) +
                       " nm; give the pixel size explicitly (ingest.pixel_size_nm) to ingest them as one stack");
    } else if (info.width != s.width || info.height != s.height) {
      throw InputError(f + ": frames are " + std::to_string(info.width) + "x" + std::to_string(info.height) +
                       " but " + req.frames.front() + " has " + std::to_string(s.width) + "x" +
                       std::to_string(s.height));
    }
    needs_float = needs_float || info.kind == tiff::SampleKind::Float || info.bits_per_sample > 16;
    s.frames += info.frames;
  }
  s.pixel_size_nm = req.pixel_size_nm > 0 ? req.pixel_size_nm : tag_pixel;
  if (!(s.pixel_size_nm > 0))
    throw InputError(req.frames.front() +
                     ": no pixel size in the TIFF resolution tags; give one (ingest.pixel_size_nm / --pixel-size)");

  // Ground truth first too: a bad CSV must fail before any output exists.
  std::vector<Emitter> truth;
  if (!req.locs.empty()) {
    LocalizationFile lf = read_localizations_csv(req.locs);
    truth = std::move(lf.emitters);
    const double w_nm = s.width * s.pixel_size_nm, h_nm = s.height * s.pixel_size_nm;
    for (size_t i = 0; i < truth.size(); ++i) {
      const Emitter& e = truth[i];
      if (e.frame >= static_cast<int64_t>(s.frames))
        throw InputError(req.locs + ": row " + std::to_string(i + 1) + ": frame " +
                         std::to_string(e.frame + 1) + " is beyond the stack's " + std::to_string(s.frames) +
                         " frames");
      if (e.x_nm < 0 || e.y_nm < 0 || e.x_nm >= w_nm || e.y_nm >= h_nm) ++s.emitters_outside;
    }
    s.emitters = truth.size();
    if (s.emitters_outside)
      log::warn("ingest: {}: {} of {} emitters lie outside the {:.0f} x {:.0f} nm field of view (kept)",
                req.locs, s.emitters_outside, truth.size(), w_nm, h_nm);
  }

  h5::File out = h5::File::create(req.output, provenance);
  const h5::Dims dims{s.frames, s.height, s.width};
  const h5::Dims chunk{1, s.height, s.width};
  out.create_dataset("/frames", needs_float ? h5::DType::f32 : h5::DType::u16, dims, chunk, 4);
  const size_t frame_px = static_cast<size_t>(s.width) * s.height;
  std::vector<float> buf(frame_px);
  std::vector<uint16_t> buf16(frame_px);
  Progress progress("ingest", s.frames);
  uint64_t index = 0;
  for (auto& r : readers) {
    for (uint64_t f = 0; f < r->info().frames; ++f, ++index) {
      r->read_frame(f, buf.data());
      if (needs_float) {
        out.write_rows("/frames", index, 1, buf.data());
      } else {
        for (size_t i = 0; i < frame_px; ++i) buf16[i] = static_cast<uint16_t>(buf[i]);
        out.write_rows("/frames", index, 1, buf16.data());
      }
      progress.add();
    }
  }
  progress.finish();
  out.set_attr("/frames", "pixel_size_nm", s.pixel_size_nm);
  out.set_attr("/", "pixel_size_nm", s.pixel_size_nm);
  out.set_attr("/", "camera", req.camera_json);
  std::string sources;
  for (const auto& f : req.frames) sources += (sources.empty() ? "" : "\n") + f;
  out.set_attr("/", "source_files", sources);
  if (!req.locs.empty()) {
    out.write_table("/emitters", emitters_to_table(truth));
    out.set_attr("/emitters", "source_file", req.locs);
    out.set_attr("/emitters", "outside_field_of_view", static_cast<double>(s.emitters_outside));
  }
  out.commit();
  return s;
}

}  // namespace dsir
