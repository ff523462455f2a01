#include "pipeline/formats/run_metrics.h"

#include <fmt/format.h>

#include <cmath>
#include <filesystem>
#include <limits>
#include <sstream>

#include "pipeline/atomic_file.h"
#include "pipeline/errors.h"

namespace dsir {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
// metrics.jsonl's fields in the order of metrics.csv's columns.
constexpr const char* kEpochColumns[] = {"epoch", "step",         "train_loss", "val_loss",
                                         "lr",    "frames_per_s", "seconds"};

double number_or_nan(const nlohmann::json& j) { return j.is_number() ? j.get<double>() : kNaN; }
nlohmann::json number_or_null(double v) { return std::isnan(v) ? nlohmann::json() : nlohmann::json(v); }

nlohmann::json epoch_json(const EpochMetrics& m) {
  return {{"epoch", m.epoch},
          {"step", m.step},
          {"train_loss", m.train_loss},
          {"lr", m.lr},
          {"frames_per_s", m.frames_per_s},
          {"seconds", m.seconds},
          {"val_loss", number_or_null(m.val_loss)}};
}

}  // namespace

std::string epoch_metrics_line(const EpochMetrics& m) { return epoch_json(m).dump(); }

std::vector<EpochMetrics> read_epoch_metrics(const std::string& path) {
  std::vector<EpochMetrics> epochs;
  if (!std::filesystem::exists(path)) return epochs;
  std::stringstream ss(read_text_file(path));
  int line_no = 0;
  for (std::string line; std::getline(ss, line);) {
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    try {
      const nlohmann::json j = nlohmann::json::parse(line);
      if (!j.is_object() || !j.contains("epoch") || !j["epoch"].is_number_integer() ||
          !j.contains("train_loss"))
        throw InputError("expected an object with an integer epoch and a train_loss");
      EpochMetrics m;
      m.epoch = j["epoch"].get<int64_t>();
      m.step = j.contains("step") && j["step"].is_number_integer() ? j["step"].get<int64_t>() : 0;
      m.train_loss = number_or_nan(j["train_loss"]);
      m.val_loss = j.contains("val_loss") ? number_or_nan(j["val_loss"]) : kNaN;
      m.lr = j.contains("lr") ? number_or_nan(j["lr"]) : kNaN;
      m.frames_per_s = j.contains("frames_per_s") ? number_or_nan(j["frames_per_s"]) : kNaN;
      m.seconds = j.contains("seconds") ? number_or_nan(j["seconds"]) : kNaN;
      epochs.push_back(m);
    } catch (const nlohmann::json::exception& e) {
      throw InputError(fmt::format("{}:{}: not a metrics.jsonl line: {}", path, line_no, e.what()));
    } catch (const InputError& e) {
      throw InputError(fmt::format("{}:{}: {}", path, line_no, e.what()));
    }
  }
  return epochs;
}

void write_epoch_metrics(const std::string& jsonl_path, const std::vector<EpochMetrics>& epochs) {
  std::string jsonl, csv;
  for (const char* column : kEpochColumns) csv += std::string(csv.empty() ? "" : ",") + column;
  csv += "\n";
  for (const EpochMetrics& m : epochs) {
    const nlohmann::json j = epoch_json(m);
    jsonl += j.dump() + "\n";
    const char* separator = "";
    for (const char* column : kEpochColumns) {
      csv += separator;
      separator = ",";
      if (!j[column].is_null()) csv += j[column].dump();
    }
    csv += "\n";
  }
  write_text_file(jsonl_path, jsonl);
  write_text_file((std::filesystem::path(jsonl_path).parent_path() / "metrics.csv").string(), csv);
}

EvaluationSummary read_evaluation_summary(const std::string& path, const std::string& matching) {
  EvaluationSummary s;
  try {
    const nlohmann::json j = nlohmann::json::parse(read_text_file(path));
    for (const auto& entry : j.at("matching")) {
      const auto& m = entry.at(matching);
      // With no true positive there is no RMSE: leave it empty (older files wrote 0 there).
      const bool matched = !m.contains("tp") || number_or_nan(m["tp"]) > 0;
      s.by_tolerance[entry.at("tolerance_nm").get<double>()] = {
          number_or_nan(m.at("jaccard")), matched ? number_or_nan(m.at("rmse_lateral_nm")) : kNaN};
    }
    s.pearson =
        j.contains("image") && j["image"].contains("pearson") ? number_or_nan(j["image"]["pearson"]) : kNaN;
    const auto optional = [&](const char* key) { return j.contains(key) ? number_or_nan(j[key]) : kNaN; };
    s.frc_resolution_nm = optional("frc_resolution_nm");
    s.nena_precision_nm = optional("nena_precision_nm");
    s.localizations = optional("localizations");
    s.ground_truth = optional("ground_truth");
  } catch (const nlohmann::json::exception& e) {
    throw InputError(fmt::format("{}: not a dsir metrics.json: {}", path, e.what()));
  }
  return s;
}

void write_evaluation(const std::string& path, const nlohmann::json& metrics) {
  write_text_file(path, metrics.dump(2) + "\n");
}

}  // namespace dsir
