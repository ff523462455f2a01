#pragma once
// The run's metrics files (docs/data-format.md, "Metrics files"): train/metrics.jsonl (one JSON
// line per finished epoch, written by `train`, read back by `train --resume` and by `sweep`),
// its spreadsheet twin train/metrics.csv, and evaluate's metrics.json as `sweep` reads it.
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace dsir {

// One line of metrics.jsonl. val_loss is NaN when there is no validation set (null in the file).
struct EpochMetrics {
  int64_t epoch = 0, step = 0;
  double train_loss = 0, val_loss = 0, lr = 0, frames_per_s = 0, seconds = 0;
};

std::string epoch_metrics_line(const EpochMetrics& m);  // without the newline
// InputError naming the file and line when a line is not such a record; a missing file is none.
std::vector<EpochMetrics> read_epoch_metrics(const std::string& path);
// Atomically writes metrics.jsonl and, beside it, metrics.csv (the same numbers, shortest exact
// text; an empty cell for a null).
void write_epoch_metrics(const std::string& jsonl_path, const std::vector<EpochMetrics>& epochs);

// metrics.json as `sweep` reads it: JI and lateral RMSE at each tolerance for one matching
// ("greedy" or "hungarian"), and the image correlation.
struct EvaluationSummary {
  struct Match {
    double jaccard = 0, rmse_nm = 0;  // NaN where undefined (null in the file: no true positive)
  };
  std::map<double, Match> by_tolerance;
  double pearson = 0;  // NaN when the file has no image correlation
  // Quality without ground truth; NaN where undefined or absent (older files).
  double frc_resolution_nm = 0, nena_precision_nm = 0;
  double localizations = 0, ground_truth = 0;  // counts; NaN when absent
};
// InputError naming the file when it is not a dsir metrics.json.
EvaluationSummary read_evaluation_summary(const std::string& path, const std::string& matching);
// Atomically writes metrics.json (evaluate builds the object: docs/data-format.md lists its fields).
void write_evaluation(const std::string& path, const nlohmann::json& metrics);

}  // namespace dsir
