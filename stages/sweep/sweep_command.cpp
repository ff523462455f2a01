// Command `dsir sweep`: hyperparameter sweeps over the loss kernel, run as a Slurm job array by
// jobs/sweep-fwhm.sbatch (docs/slurm.md).
//   dsir sweep plan SWEEP_DIR SWEEP.yaml [key=value ...]  -> SWEEP_DIR/tasks.tsv, SWEEP_DIR/sweep.yaml;
//                                                           prints the number of tasks on stdout
//   dsir sweep summarize SWEEP_DIR                        -> SWEEP_DIR/summary.{csv,md,png}
// A sweep config is an ordinary dsir config (every run of the sweep uses it) with a `sweep:`
// section listing the values; each task runs `dsir run SWEEP_DIR/sweep.yaml` in its own folder with
// run.dir, train.loss.fwhm and train.loss.kernel_size overridden.
#include <filesystem>
#include <iostream>

#include "pipeline/atomic_file.h"
#include "pipeline/context.h"
#include "pipeline/errors.h"
#include "pipeline/log.h"
#include "pipeline/registry.h"
#include "stages/sweep/sweep.h"

namespace dsir {
namespace {

const ConfigSection section(
    "sweep",
    "Sweeps over the loss kernel: `dsir sweep plan SWEEP_DIR SWEEP.yaml`, `dsir sweep summarize SWEEP_DIR` "
    "(jobs/sweep-fwhm.sbatch, docs/slurm.md).",
    {
        KeySpec::choice("action", "summarize",
                        "plan: write SWEEP_DIR/tasks.tsv and sweep.yaml and print the task count; summarize: "
                        "the results table and plots.",
                        {"plan", "summarize"}),
        KeySpec::text("dir", "''",
                      "Sweep folder: one run folder per task, named fwhm-F (or fwhm-F-kernel-W)."),
        KeySpec::real_list("fwhm", "[]", "train.loss.fwhm values to sweep (pixels), one task each.")
            .range(0.01, 100),
        KeySpec::real_list(
            "kernel_size", "[]",
            "train.loss.kernel_size values (odd pixels) to combine with them ([] = train.loss.kernel_size).")
            .range(1, 99),
        KeySpec::choice("pairing", "grid",
                        "grid: every FWHM with every kernel width; zip: the i-th FWHM with the i-th width.",
                        {"grid", "zip"}),
        KeySpec::choice("matching", "hungarian", "Matching whose JI and RMSE the summary reports.",
                        {"hungarian", "greedy"}),
    });

void plan(Context& ctx, const std::string& dir) {
  const auto tasks = sweep::plan_tasks(ctx.config);
  if (!ctx.mpi.is_root()) return;
  std::filesystem::create_directories(dir);
  // The frozen config every task runs (changes to the original do not reach a running sweep).
  write_text_file(dir + "/sweep.yaml", ctx.config.to_yaml());
  write_text_file(dir + "/tasks.tsv", sweep::tasks_tsv(tasks));
  for (const auto& t : tasks)
    log::print("sweep: task {}: {}/{} (train.loss.fwhm={}, train.loss.kernel_size={})", t.index, dir, t.name,
               t.fwhm, t.kernel_size);
  log::print("sweep: {} task(s) in {}/tasks.tsv; submit them as a job array, --array=0-{}", tasks.size(), dir,
             tasks.size() - 1);
  std::cout << tasks.size() << std::endl;
}

void summarize(Context& ctx, const std::string& dir) {
  if (!std::filesystem::is_directory(dir))
    throw ConfigError("sweep.dir: folder '" + dir + "' does not exist");
  if (!ctx.mpi.is_root()) return;
  const sweep::Summary s = sweep::collect(dir, ctx.config.get_string("sweep.matching"));
  sweep::write_summary(s);
  size_t complete = 0;
  for (const auto& r : s.rows) {
    if (r.problems.empty())
      ++complete;
    else
      log::warn("sweep: {}: {}", r.name, r.status());
  }
  log::print("sweep: {} of {} run(s) complete; wrote {}/summary.csv, summary.md, summary.png", complete,
             s.rows.size(), dir);
}

void run(Context& ctx) {
  const std::string& action = ctx.config.get_string("sweep.action");
  const std::string& dir = ctx.config.get_string("sweep.dir");
  if (dir.empty())
    throw ConfigError("sweep.dir: no sweep folder given (dsir sweep " + action + " SWEEP_DIR" +
                      (action == "plan" ? " SWEEP.yaml)" : ")"));
  if (action == "plan")
    plan(ctx, dir);
  else
    summarize(ctx, dir);
}

const CommandRegistrar registrar(
    {"sweep",
     -1,
     "Loss-kernel sweeps: `plan SWEEP_DIR SWEEP.yaml` (tasks), `summarize SWEEP_DIR` "
     "(table and plots).",
     run,
     {"sweep.action", "sweep.dir"}});

}  // namespace
}  // namespace dsir
