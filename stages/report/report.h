#pragma once
// The run report (report.html): one self-contained page, every picture inlined as a data: URI
// and no script, so it opens from a cluster's scratch folder, a mail or an archive as it is.
// Page builds the HTML; run_report collects what a run folder holds into one.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace dsir::report {

std::string base64(std::string_view bytes);      // RFC 4648, with padding
std::string escape_html(std::string_view text);  // & < > " ' as entities

struct Figure {
  std::string png_file;  // read and inlined; InputError naming it unless it is a PNG
  std::string caption;
};
struct Row {
  std::string name, value;
};

// A page of sections in the order they are added; text is escaped, never taken as HTML.
class Page {
 public:
  explicit Page(std::string title);
  void section(const std::string& heading);
  void paragraph(const std::string& text);
  void note(const std::string& text);                // something missing or doubtful, set apart
  void figures(const std::vector<Figure>& figures);  // side by side, each with its caption
  void table(const std::vector<Row>& rows);
  void details(const std::string& summary, const std::string& preformatted);  // folded text
  std::string html() const;
  int figure_count() const { return figure_count_; }

 private:
  std::string title_, body_;
  int figure_count_ = 0;
};

// The widefield image of an acquisition: its raw frames summed (what a camera would record with
// the laser on and no blinking), read in chunks of about `chunk_bytes` of frames. height x width
// of the raw frame, row-major.
std::vector<double> widefield_sum(const std::string& raw_file, int& height, int& width,
                                  uint64_t chunk_bytes = uint64_t(64) << 20);

// Writes widefield.png beside each reconstruction.h5 under `run_dir` whose raw acquisition
// (the reconstruction's source_file attribute) is still there, on the reconstruction's grid and
// with its scale bar, so the two compare side by side: the folders i with i % ranks == rank (an
// archive's acquisitions are read on every rank at once). Returns notes on those it could not make.
std::vector<std::string> write_widefield_pictures(const std::string& run_dir, int rank = 0, int ranks = 1);

// The report of a run folder: every section whose files exist (reconstructions and widefield,
// drift, training, evaluation, calibration, warnings of dsir.log, config, provenance).
Page run_report(const std::string& run_dir);

}  // namespace dsir::report
