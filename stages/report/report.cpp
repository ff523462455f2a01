#include "stages/report/report.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>

#include "pipeline/atomic_file.h"
#include "pipeline/context.h"
#include "pipeline/errors.h"
#include "pipeline/formats/raw_file.h"
#include "pipeline/formats/reconstruction_file.h"
#include "pipeline/formats/run_metrics.h"
#include "pipeline/picture.h"
#include "pipeline/utc_time.h"

namespace dsir::report {
namespace fs = std::filesystem;

std::string base64(std::string_view bytes) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    const uint32_t v =
        uint32_t(uint8_t(bytes[i])) << 16 | uint32_t(uint8_t(bytes[i + 1])) << 8 | uint8_t(bytes[i + 2]);
    for (int shift : {18, 12, 6, 0}) out += kAlphabet[(v >> shift) & 63];
  }
  if (const size_t rest = bytes.size() - i; rest > 0) {
    uint32_t v = uint32_t(uint8_t(bytes[i])) << 16;
    if (rest == 2) v |= uint32_t(uint8_t(bytes[i + 1])) << 8;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += rest == 2 ? kAlphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

std::string escape_html(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

namespace {

std::string read_png(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(path + ": cannot open");
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  static constexpr std::string_view kSignature("\x89PNG\r\n\x1a\n", 8);
  if (bytes.compare(0, kSignature.size(), kSignature) != 0) throw InputError(path + ": not a PNG file");
  return bytes;
}

// Screen-friendly, print-friendly and without any resource from outside the file.
constexpr const char* kStyle = R"(
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 1400px; padding: 0 1em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; border-bottom: 1px solid #ccc; margin-top: 2em; }
.figures { display: flex; flex-wrap: wrap; gap: 1em; align-items: flex-start; }
figure { margin: 0; max-width: 100%; } figcaption { font-size: 0.9em; color: #555; }
img { max-width: 100%; height: auto; border: 1px solid #ddd; }
table { border-collapse: collapse; } td { padding: 0.15em 0.8em 0.15em 0; vertical-align: top; }
td:first-child { color: #555; } .note { background: #fff6dd; border-left: 4px solid #e0a800; padding: 0.4em 0.8em; }
pre { background: #f6f6f6; padding: 0.8em; overflow-x: auto; font-size: 0.85em; }
)";

}  // namespace

Page::Page(std::string title) : title_(std::move(title)) {}

void Page::section(const std::string& heading) { body_ += "<h2>" + escape_html(heading) + "</h2>\n"; }

void Page::paragraph(const std::string& text) { body_ += "<p>" + escape_html(text) + "</p>\n"; }

void Page::note(const std::string& text) { body_ += "<p class=\"note\">" + escape_html(text) + "</p>\n"; }

void Page::figures(const std::vector<Figure>& figures) {
  body_ += "<div class=\"figures\">\n";
  for (const Figure& f : figures) {
    body_ += "<figure><img src=\"data:image/png;base64," + base64(read_png(f.png_file)) + "\" alt=\"" +
             escape_html(f.caption) + "\"><figcaption>" + escape_html(f.caption) + "</figcaption></figure>\n";
    ++figure_count_;
  }
  body_ += "</div>\n";
}

void Page::table(const std::vector<Row>& rows) {
  body_ += "<table>\n";
  for (const Row& r : rows)
    body_ += "<tr><td>" + escape_html(r.name) + "</td><td>" + escape_html(r.value) + "</td></tr>\n";
  body_ += "</table>\n";
}

void Page::details(const std::string& summary, const std::string& preformatted) {
  body_ += "<details><summary>" + escape_html(summary) + "</summary><pre>" + escape_html(preformatted) +
           "</pre></details>\n";
}

std::string Page::html() const {
  return "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
         "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
         // No favicon request: the page loads nothing beyond itself.
         "<link rel=\"icon\" href=\"data:,\">\n<title>" +
         escape_html(title_) + "</title>\n<style>" + kStyle + "</style>\n</head>\n<body>\n<h1>" +
         escape_html(title_) + "</h1>\n" + body_ + "</body>\n</html>\n";
}

std::vector<double> widefield_sum(const std::string& raw_file, int& height, int& width,
                                  uint64_t chunk_bytes) {
  const RawFileReader raw(raw_file);
  height = raw.height();
  width = raw.width();
  const size_t pixels = size_t(height) * size_t(width);
  std::vector<double> sum(pixels, 0.0);
  // A whole acquisition never sits in memory.
  const uint64_t chunk = std::max<uint64_t>(1, chunk_bytes / (pixels * sizeof(float)));
  for (uint64_t first = 0; first < raw.frames(); first += chunk) {
    const uint64_t count = std::min(chunk, raw.frames() - first);
    const std::vector<float> frames = raw.read(first, count);
    for (uint64_t k = 0; k < count; ++k)
      for (size_t p = 0; p < pixels; ++p) sum[p] += frames[k * pixels + p];
  }
  return sum;
}

namespace {

// The folders of a run that hold a reconstruction: the run folder itself (one acquisition) or
// one subfolder per acquisition, in name order.
std::vector<fs::path> reconstruction_folders(const fs::path& run) {
  std::vector<fs::path> out;
  if (fs::exists(run / "reconstruction.h5")) out.push_back(run);
  std::vector<fs::path> subs;
  for (const auto& e : fs::directory_iterator(run))
    if (e.is_directory() && fs::exists(e.path() / "reconstruction.h5")) subs.push_back(e.path());
  std::sort(subs.begin(), subs.end());
  out.insert(out.end(), subs.begin(), subs.end());
  return out;
}

std::string number(double v, const char* unit = "") {
  if (!std::isfinite(v)) return "undefined";
  return fmt::format("{:.4g}{}", v, unit);
}

std::string read_if_exists(const fs::path& p) {
  return fs::exists(p) ? read_text_file(p.string()) : std::string();
}

void reconstruction_section(Page& page, const fs::path& folder, const fs::path& run) {
  const std::string name = folder == run ? std::string() : folder.filename().string();
  page.section(name.empty() ? "Reconstruction" : "Reconstruction: " + name);
  const ReconstructionContent r = read_reconstruction_summary((folder / "reconstruction.h5").string());
  std::vector<Figure> figs;
  if (fs::exists(folder / "reconstruction.png"))
    figs.push_back({(folder / "reconstruction.png").string(),
                    fmt::format("reconstruction ({} render, {:g} nm pixels)", r.render, r.pixel_size_nm)});
  if (fs::exists(folder / "widefield.png"))
    figs.push_back({(folder / "widefield.png").string(),
                    fmt::format("widefield: the {} raw frames summed ({:g} nm camera pixels)", r.frames,
                                r.raw_pixel_size_nm)});
  if (!figs.empty()) page.figures(figs);
  page.table({{"frames", std::to_string(r.frames)},
              {"shards", std::to_string(r.shards)},
              {"image", fmt::format("{} x {} pixels of {:g} nm", r.width, r.height, r.pixel_size_nm)},
              {"camera frame",
               fmt::format("{} x {} pixels of {:g} nm", r.raw_width, r.raw_height, r.raw_pixel_size_nm)},
              {"acquisition", r.source_file}});
  if (fs::exists(folder / "drift.png")) {
    page.paragraph(
        "Drift estimated by redundant cross-correlation and removed before rendering (drift.csv).");
    page.figures({{(folder / "drift.png").string(), "drift over time"}});
  }
}

void training_section(Page& page, const fs::path& train) {
  const bool any = fs::exists(train / "loss.png") || fs::exists(train / "metrics.jsonl");
  if (!any) return;
  page.section("Training");
  std::vector<Figure> figs;
  if (fs::exists(train / "loss.png")) figs.push_back({(train / "loss.png").string(), "loss per epoch"});
  if (fs::is_directory(train / "previews")) {
    std::vector<fs::path> previews;
    for (const auto& e : fs::directory_iterator(train / "previews"))
      if (e.path().extension() == ".png") previews.push_back(e.path());
    std::sort(previews.begin(), previews.end());
    if (!previews.empty())
      figs.push_back(
          {previews.back().string(), "validation frame after the last epoch: input | label | prediction (" +
                                         previews.back().filename().string() + ")"});
  }
  if (!figs.empty()) page.figures(figs);
  const std::vector<EpochMetrics> epochs = read_epoch_metrics((train / "metrics.jsonl").string());
  if (epochs.empty()) return;
  double seconds = 0;
  for (const auto& e : epochs) seconds += e.seconds;
  const EpochMetrics& last = epochs.back();
  page.table({{"epochs", std::to_string(last.epoch)},
              {"steps", std::to_string(last.step)},
              {"last training loss", number(last.train_loss)},
              {"last validation loss", number(last.val_loss)},
              {"learning rate", number(last.lr)},
              {"speed (last epoch)", number(last.frames_per_s, " frames/s")},
              {"training time", fmt::format("{:.1f} min", seconds / 60)}});
}

void evaluation_section(Page& page, const fs::path& run) {
  const fs::path metrics = run / "metrics.json";
  if (!fs::exists(metrics)) return;
  page.section("Evaluation");
  const EvaluationSummary s = read_evaluation_summary(metrics.string(), "hungarian");
  std::vector<Row> rows = {{"localizations", number(s.localizations)},
                           {"ground-truth emitters", number(s.ground_truth)}};
  for (const auto& [tolerance, m] : s.by_tolerance) {
    rows.push_back({fmt::format("Jaccard index at {:g} nm", tolerance), number(m.jaccard)});
    rows.push_back({fmt::format("lateral RMSE at {:g} nm", tolerance), number(m.rmse_nm, " nm")});
  }
  rows.push_back({"image Pearson correlation", number(s.pearson)});
  rows.push_back({"FRC resolution", number(s.frc_resolution_nm, " nm")});
  rows.push_back({"NeNA localization precision", number(s.nena_precision_nm, " nm")});
  page.table(rows);
  std::vector<Figure> figs;
  if (fs::exists(run / "frc.png")) figs.push_back({(run / "frc.png").string(), "Fourier ring correlation"});
  if (fs::exists(run / "nena.png"))
    figs.push_back({(run / "nena.png").string(), "nearest-neighbour distances"});
  if (!figs.empty()) page.figures(figs);
  page.details("metrics.json", read_text_file(metrics.string()));
}

void calibration_section(Page& page, const fs::path& run) {
  if (!fs::exists(run / "calibration.png") && !fs::exists(run / "camera.yaml")) return;
  page.section("Calibration");
  if (fs::exists(run / "calibration.png"))
    page.figures({{(run / "calibration.png").string(), "mean-variance of the pixels and the spot widths"}});
  if (fs::exists(run / "camera.yaml"))
    page.details("camera.yaml", read_text_file((run / "camera.yaml").string()));
}

// The log's warnings, so that none goes unseen in a long log.
void warnings_section(Page& page, const fs::path& run) {
  std::istringstream log(read_if_exists(run / "dsir.log"));
  std::vector<std::string> warnings;
  for (std::string line; std::getline(log, line);)
    if (line.find("warning") != std::string::npos) warnings.push_back(line);
  if (warnings.empty()) return;
  page.section(fmt::format("Warnings ({})", warnings.size()));
  constexpr size_t kShown = 30;
  for (size_t i = 0; i < std::min(kShown, warnings.size()); ++i) page.note(warnings[i]);
  if (warnings.size() > kShown)
    page.paragraph(fmt::format("... and {} more in dsir.log", warnings.size() - kShown));
}

}  // namespace

std::vector<std::string> write_widefield_pictures(const std::string& run_dir, int rank, int ranks) {
  std::vector<std::string> notes;
  const std::vector<fs::path> folders = reconstruction_folders(run_dir);
  for (size_t i = static_cast<size_t>(rank); i < folders.size(); i += static_cast<size_t>(ranks)) {
    const fs::path& folder = folders[i];
    const ReconstructionContent r = read_reconstruction_summary((folder / "reconstruction.h5").string());
    if (r.source_file.empty() || !fs::exists(r.source_file)) {
      notes.push_back(folder.string() + ": no widefield image: its acquisition '" + r.source_file +
                      "' is not there any more");
      continue;
    }
    int h = 0, w = 0;
    const std::vector<double> sum = widefield_sum(r.source_file, h, w);
    // On the reconstruction's grid (each camera pixel a block), so both pictures get the same
    // enlargement and scale bar.
    const int zoom = std::max(1, static_cast<int>(std::lround(r.raw_pixel_size_nm / r.pixel_size_nm)));
    std::vector<float> image(size_t(h) * zoom * size_t(w) * zoom);
    for (int y = 0; y < h * zoom; ++y)
      for (int x = 0; x < w * zoom; ++x)
        image[size_t(y) * w * zoom + x] = static_cast<float>(sum[size_t(y / zoom) * w + x / zoom]);
    picture::save_image_png((folder / "widefield.png").string(), image, w * zoom, h * zoom,
                            r.raw_pixel_size_nm / zoom, "gray", 0.1, 99.9);
  }
  return notes;
}

Page run_report(const std::string& run_dir) {
  const fs::path run(run_dir);
  if (!fs::is_directory(run)) throw InputError(run_dir + ": no such run folder");
  const auto folders = reconstruction_folders(run);
  if (folders.empty() && !fs::exists(run / "config.yaml") && !fs::exists(run / "train"))
    throw InputError(run_dir + ": not a dsir run folder (no config.yaml, train/ or reconstruction.h5)");

  Page page("dsir run: " + fs::absolute(run).lexically_normal().filename().string());
  page.paragraph(fmt::format("Run folder {}; report made {} by dsir {}.",
                             fs::absolute(run).lexically_normal().string(), utc_now("%Y-%m-%d %H:%M UTC"),
                             dsir_version()));
  if (folders.empty()) page.note("No reconstruction yet (the infer and reduce stages have not run).");
  for (const fs::path& f : folders) reconstruction_section(page, f, run);
  training_section(page, run / "train");
  evaluation_section(page, run);
  calibration_section(page, run);
  warnings_section(page, run);
  if (fs::exists(run / "config.yaml") || fs::exists(run / "provenance.json")) {
    page.section("Configuration and provenance");
    if (fs::exists(run / "config.yaml"))
      page.details("config.yaml: the effective configuration",
                   read_text_file((run / "config.yaml").string()));
    if (fs::exists(run / "provenance.json"))
      page.details("provenance.json: versions, host, command",
                   read_text_file((run / "provenance.json").string()));
  }
  return page;
}

}  // namespace dsir::report
