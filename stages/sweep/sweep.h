#pragma once
// Hyperparameter sweeps over the loss kernel (train.loss.fwhm, optionally train.loss.kernel_size):
// the tasks of a sweep (one run folder each, one Slurm array task each: jobs/sweep-fwhm.sbatch),
// and the summary of a finished sweep (a table and plots of the metrics against the FWHM).
#include <map>
#include <string>
#include <vector>

#include "pipeline/config.h"

namespace dsir::sweep {

// One task of a sweep: the run folder <sweep dir>/<name> trained with these loss settings.
struct Task {
  int index = 0;
  std::string name;  // fwhm-<F>, or fwhm-<F>-kernel-<W> when sweep.kernel_size lists widths
  double fwhm = 0;
  int kernel_size = 0;
};

// The tasks of sweep.fwhm x sweep.kernel_size (sweep.pairing grid or zip); an empty
// sweep.kernel_size means train.loss.kernel_size. ConfigError naming the key on an empty list, a
// kernel width that is not an odd integer, unequal lists under zip, or a value listed twice.
std::vector<Task> plan_tasks(const Config& config);

// "fwhm-1.5", "fwhm-3-kernel-7": values written in their shortest exact form.
std::string task_name(double fwhm, int kernel_size, bool with_kernel);

// tasks.tsv: a header line "task name fwhm kernel_size", then one tab-separated line per task.
std::string tasks_tsv(const std::vector<Task>& tasks);
std::vector<Task> read_tasks_tsv(const std::string& path);  // InputError naming file and line

// One run of a finished (or unfinished) sweep, as its files tell it.
struct Row {
  std::string name;
  double fwhm = 0;
  int kernel_size = 0;
  int64_t epochs = 0, epochs_planned = 0;  // done (metrics.jsonl) and asked for (config.yaml)
  double train_loss = 0, val_loss = 0;     // of the last epoch; NaN when unknown
  struct Match {
    double jaccard = 0, rmse_nm = 0;  // rmse_nm: NaN when nothing matched (TP = 0)
  };
  std::map<double, Match> by_tolerance;  // tolerance (nm) -> JI, lateral RMSE
  double pearson = 0;                    // image correlation; NaN when unknown
  std::vector<std::string> problems;     // what is missing or unfinished; empty: complete
  std::string status() const;            // "ok" or the problems, "; "-separated
};

struct Summary {
  std::string dir;
  std::string matching;            // "hungarian" or "greedy"
  std::vector<double> tolerances;  // every tolerance found, ascending
  std::vector<Row> rows;           // by FWHM, then kernel width
};

// Reads every run of the sweep folder: the runs of tasks.tsv when present, otherwise every
// sub-folder holding a config.yaml. Per run: config.yaml (train.loss.fwhm, kernel_size, epochs),
// train/metrics.jsonl (last epoch's losses) and metrics.json (JI and RMSE at each tolerance with
// `matching`, image correlation). Missing files become problems of the row, not errors; a folder
// with no runs at all is an InputError, unreadable files are InputErrors naming the file.
Summary collect(const std::string& dir, const std::string& matching);

std::string to_csv(const Summary& s);
std::string to_markdown(const Summary& s);
// Writes dir/summary.csv, summary.md, summary.png (JI at each tolerance and image correlation
// against the FWHM), summary-loss.png and summary-rmse.png, each atomically.
void write_summary(const Summary& s);

}  // namespace dsir::sweep
