// Stage `report`: report.html in the run folder, one self-contained page of what the run made
// (stages/report/README.md). Rank 0 writes it; it reads the folder, never changes its results.
#include <filesystem>

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
  if (!ctx.mpi.is_root()) return;
  for (const std::string& note : report::write_widefield_pictures(run_dir)) log::warn("report: {}", note);
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
