// Stage `report`: report.html in the run folder, one self-contained page of what the run made
// (stages/report/README.md). The ranks share the widefield images; rank 0 writes the page. It
// reads the folder and never changes its results.
#include <filesystem>
#include <sstream>

#include "pipeline/atomic_file.h"
#include "pipeline/config.h"
#include "pipeline/context.h"
#include "pipeline/log.h"
#include "pipeline/registry.h"
#include "stages/report/report.h"

namespace dsir {
namespace {

const ConfigSection section(
    "report", "report.html: the run's pictures, metrics, config and provenance on one page.",
    {
        KeySpec::text("output", "''", "The page ('' = {run.dir}/report.html).").cli("--output"),
    });

void run(Context& ctx) {
  const std::string run_dir = ctx.run_dir();
  std::string output = ctx.config.get_string("report.output");
  if (output.empty()) output = (std::filesystem::path(run_dir) / "report.html").string();
  std::string notes;
  for (const std::string& note : report::write_widefield_pictures(run_dir, ctx.mpi.rank(), ctx.mpi.size()))
    notes += note + "\n";
  // Every rank's pictures are written once rank 0 holds the notes.
  const std::vector<std::string> all_notes = ctx.mpi.gather_to_root(notes);
  if (!ctx.mpi.is_root()) return;
  for (const std::string& rank_notes : all_notes) {
    std::istringstream lines(rank_notes);
    for (std::string line; std::getline(lines, line);) log::warn("report: {}", line);
  }
  const report::Page page = report::run_report(run_dir);
  const std::string html = page.html();
  write_text_file(output, html);
  log::print("report: wrote {} ({} pictures inlined, {:.1f} MB); open it in a browser", output,
             page.figure_count(), html.size() / 1e6);
}

const CommandRegistrar registrar({"report", 80,
                                  "report.html in the run folder: reconstruction beside the widefield image, "
                                  "training, metrics, config (one self-contained page).",
                                  run});

}  // namespace
}  // namespace dsir
