#include "stages/sweep/sweep.h"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <set>
#include <sstream>

#include "pipeline/atomic_file.h"
#include "pipeline/errors.h"
#include "pipeline/formats/run_metrics.h"
#include "pipeline/picture.h"

namespace fs = std::filesystem;

namespace dsir::sweep {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

std::string number(double v) { return std::isfinite(v) ? fmt::format("{}", v) : std::string(); }
std::string short_number(double v) { return std::isfinite(v) ? fmt::format("{:.4g}", v) : std::string("–"); }

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

std::string markdown_cell(const std::string& s) {
  std::string out;
  for (char c : s) out += c == '|' ? std::string("\\|") : std::string(1, c);
  return out;
}

// A key of a YAML file by dotted path; an undefined node when absent.
YAML::Node yaml_at(const YAML::Node& root, const std::string& dotted) {
  YAML::Node n = YAML::Clone(root);
  std::stringstream ss(dotted);
  for (std::string part; std::getline(ss, part, '.');) {
    if (!n.IsMap()) return YAML::Node(YAML::NodeType::Undefined);
    YAML::Node next = n[part];
    if (!next.IsDefined() || next.IsNull()) return YAML::Node(YAML::NodeType::Undefined);
    n = next;
  }
  return n;
}

template <class T>
bool yaml_get(const YAML::Node& root, const std::string& key, const std::string& path, T* out) {
  YAML::Node n = yaml_at(root, key);
  if (!n.IsDefined()) return false;
  try {
    *out = n.as<T>();
  } catch (const YAML::Exception& e) {
    throw InputError(fmt::format("{}: {} is not readable as expected: {}", path, key, e.what()));
  }
  return true;
}

// The last epoch's losses from train/metrics.jsonl.
void read_training(const std::string& path, Row& r) {
  if (!fs::exists(path)) {
    r.problems.push_back("no " + path + " (training did not run)");
    return;
  }
  const std::vector<EpochMetrics> epochs = read_epoch_metrics(path);
  if (epochs.empty()) {
    r.problems.push_back(path + " is empty (no epoch finished)");
    return;
  }
  r.epochs = epochs.back().epoch;
  r.train_loss = epochs.back().train_loss;
  r.val_loss = epochs.back().val_loss;
  if (r.epochs_planned > 0 && r.epochs < r.epochs_planned)
    r.problems.push_back(fmt::format("training stopped at epoch {} of {}", r.epochs, r.epochs_planned));
}

// JI and RMSE at each tolerance, and the image correlation, from metrics.json.
void read_metrics(const std::string& path, const std::string& matching, Row& r) {
  if (!fs::exists(path)) {
    r.problems.push_back("no " + path + " (evaluate did not run)");
    return;
  }
  const EvaluationSummary s = read_evaluation_summary(path, matching);
  for (const auto& [tolerance, m] : s.by_tolerance) r.by_tolerance[tolerance] = {m.jaccard, m.rmse_nm};
  r.pearson = s.pearson;
}

Row read_run(const std::string& dir, const std::string& name, const Task* task, const std::string& matching) {
  Row r;
  r.name = name;
  r.fwhm = task ? task->fwhm : kNaN;
  r.kernel_size = task ? task->kernel_size : 0;
  r.train_loss = r.val_loss = r.pearson = kNaN;
  const std::string folder = dir + "/" + name;
  if (!fs::is_directory(folder)) {
    r.problems.push_back("not run (no folder " + folder + ")");
    return r;
  }
  std::string train_dir = folder + "/train", metrics = folder + "/metrics.json";
  const std::string config_path = folder + "/config.yaml";
  if (fs::exists(config_path)) {
    YAML::Node cfg;
    try {
      cfg = YAML::LoadFile(config_path);
    } catch (const YAML::Exception& e) {
      throw InputError(fmt::format("{}: not readable YAML: {}", config_path, e.what()));
    }
    double fwhm = kNaN;
    int kernel = 0;
    if (yaml_get(cfg, "train.loss.fwhm", config_path, &fwhm)) {
      if (task && fwhm != task->fwhm)
        r.problems.push_back(
            fmt::format("config.yaml has train.loss.fwhm = {} but tasks.tsv {}", fwhm, task->fwhm));
      r.fwhm = fwhm;
    }
    if (yaml_get(cfg, "train.loss.kernel_size", config_path, &kernel)) {
      if (task && kernel != task->kernel_size)
        r.problems.push_back(fmt::format("config.yaml has train.loss.kernel_size = {} but tasks.tsv {}",
                                         kernel, task->kernel_size));
      r.kernel_size = kernel;
    }
    yaml_get(cfg, "train.epochs", config_path, &r.epochs_planned);
    std::string s;
    if (yaml_get(cfg, "train.output", config_path, &s) && !s.empty()) train_dir = s;
    if (yaml_get(cfg, "evaluate.output", config_path, &s) && !s.empty()) metrics = s;
  } else {
    r.problems.push_back("no config.yaml (the run never started)");
  }
  read_training(train_dir + "/metrics.jsonl", r);
  read_metrics(metrics, matching, r);
  return r;
}

std::string kernel_label(int k) { return k > 0 ? std::to_string(k) : std::string(); }

}  // namespace

std::string Row::status() const {
  if (problems.empty()) return "ok";
  std::string s;
  for (const auto& p : problems) s += (s.empty() ? "" : "; ") + p;
  return s;
}

std::string task_name(double fwhm, int kernel_size, bool with_kernel) {
  return with_kernel ? fmt::format("fwhm-{}-kernel-{}", fwhm, kernel_size) : fmt::format("fwhm-{}", fwhm);
}

std::vector<Task> plan_tasks(const Config& c) {
  const std::vector<double>& fwhms = c.get_doubles("sweep.fwhm");
  if (fwhms.empty())
    throw ConfigError(
        "sweep.fwhm: no FWHM values to sweep (list them in the sweep config, e.g. "
        "sweep: {fwhm: [1.5, 3, 6]})");
  std::vector<int> kernels;
  for (double v : c.get_doubles("sweep.kernel_size")) {
    if (v != std::floor(v) || static_cast<int64_t>(v) % 2 == 0)
      throw ConfigError(fmt::format("sweep.kernel_size: {} is not an odd whole number of pixels", v));
    kernels.push_back(static_cast<int>(v));
  }
  const bool with_kernel = !kernels.empty();
  if (!with_kernel) kernels.push_back(static_cast<int>(c.get_int("train.loss.kernel_size")));
  const bool zip = c.get_string("sweep.pairing") == "zip";
  if (zip && with_kernel && kernels.size() != fwhms.size())
    throw ConfigError(
        fmt::format("sweep.pairing: zip pairs the lists element by element, but sweep.fwhm has {} "
                    "values and sweep.kernel_size {}",
                    fwhms.size(), kernels.size()));
  std::vector<Task> tasks;
  auto add = [&](double f, int k) {
    Task t;
    t.index = static_cast<int>(tasks.size());
    t.fwhm = f;
    t.kernel_size = k;
    t.name = task_name(f, k, with_kernel);
    for (const auto& o : tasks)
      if (o.name == t.name)
        throw ConfigError(with_kernel
                              ? fmt::format("sweep.fwhm: FWHM {} with kernel width {} is listed twice", f, k)
                              : fmt::format("sweep.fwhm: {} is listed twice", f));
    tasks.push_back(t);
  };
  if (zip && with_kernel) {
    for (size_t i = 0; i < fwhms.size(); ++i) add(fwhms[i], kernels[i]);
  } else {
    for (double f : fwhms)
      for (int k : kernels) add(f, k);
  }
  return tasks;
}

std::string tasks_tsv(const std::vector<Task>& tasks) {
  std::string out = "task\tname\tfwhm\tkernel_size\n";
  for (const auto& t : tasks) out += fmt::format("{}\t{}\t{}\t{}\n", t.index, t.name, t.fwhm, t.kernel_size);
  return out;
}

std::vector<Task> read_tasks_tsv(const std::string& path) {
  std::stringstream ss(read_text_file(path));
  std::vector<Task> tasks;
  int line_no = 0;
  for (std::string line; std::getline(ss, line);) {
    ++line_no;
    if (line_no == 1) {
      if (line != "task\tname\tfwhm\tkernel_size")
        throw InputError(path + ":1: expected the header 'task<TAB>name<TAB>fwhm<TAB>kernel_size'");
      continue;
    }
    if (line.empty()) continue;
    std::vector<std::string> f;
    std::stringstream ls(line);
    for (std::string field; std::getline(ls, field, '\t');) f.push_back(field);
    Task t;
    try {
      if (f.size() != 4) throw std::invalid_argument("4 tab-separated fields expected");
      t.index = std::stoi(f[0]);
      t.name = f[1];
      t.fwhm = std::stod(f[2]);
      t.kernel_size = std::stoi(f[3]);
    } catch (const std::exception& e) {
      throw InputError(fmt::format("{}:{}: not a task line ({}): '{}'", path, line_no, e.what(), line));
    }
    if (t.name.empty() || t.name.find('/') != std::string::npos || t.name == "." || t.name == "..")
      throw InputError(fmt::format("{}:{}: '{}' is not a run folder name", path, line_no, t.name));
    tasks.push_back(t);
  }
  return tasks;
}

Summary collect(const std::string& dir, const std::string& matching) {
  if (!fs::is_directory(dir)) throw InputError(dir + ": sweep folder does not exist");
  Summary s;
  s.dir = dir;
  s.matching = matching;
  const std::string tsv = dir + "/tasks.tsv";
  if (fs::exists(tsv)) {
    for (const auto& t : read_tasks_tsv(tsv)) s.rows.push_back(read_run(dir, t.name, &t, matching));
  } else {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir))
      if (e.is_directory() && fs::exists(e.path() / "config.yaml"))
        names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    for (const auto& n : names) s.rows.push_back(read_run(dir, n, nullptr, matching));
  }
  if (s.rows.empty())
    throw InputError(dir +
                     ": no sweep runs here (neither a tasks.tsv nor a sub-folder holding a config.yaml)");
  std::set<double> tol;
  for (const auto& r : s.rows)
    for (const auto& [t, m] : r.by_tolerance) tol.insert(t);
  s.tolerances.assign(tol.begin(), tol.end());
  std::stable_sort(s.rows.begin(), s.rows.end(), [](const Row& a, const Row& b) {
    const double fa = std::isnan(a.fwhm) ? INFINITY : a.fwhm, fb = std::isnan(b.fwhm) ? INFINITY : b.fwhm;
    if (fa != fb) return fa < fb;
    if (a.kernel_size != b.kernel_size) return a.kernel_size < b.kernel_size;
    return a.name < b.name;
  });
  return s;
}

std::string to_csv(const Summary& s) {
  std::string out = "name,fwhm,kernel_size,epochs,train_loss,val_loss";
  for (double t : s.tolerances) out += fmt::format(",jaccard_{}nm,rmse_nm_{}nm", t, t);
  out += ",image_pearson,status\n";
  for (const auto& r : s.rows) {
    out += csv_field(r.name) + "," + number(r.fwhm) + "," + kernel_label(r.kernel_size) + "," +
           (r.epochs > 0 ? std::to_string(r.epochs) : "") + "," + number(r.train_loss) + "," +
           number(r.val_loss);
    for (double t : s.tolerances) {
      auto it = r.by_tolerance.find(t);
      out += "," + (it == r.by_tolerance.end() ? std::string() : number(it->second.jaccard)) + "," +
             (it == r.by_tolerance.end() ? std::string() : number(it->second.rmse_nm));
    }
    out += "," + number(r.pearson) + "," + csv_field(r.status()) + "\n";
  }
  return out;
}

std::string to_markdown(const Summary& s) {
  std::string out = fmt::format("# FWHM sweep: {}\n\n", s.dir);
  out += fmt::format(
      "{} run(s). JI and lateral RMSE with {} matching at each tolerance; image correlation: Pearson "
      "against the ground truth (each run's metrics.json). Losses are those of the last epoch; they "
      "depend on the loss kernel itself, so compare JI, RMSE and correlation across FWHM rather than "
      "losses.\n\n",
      s.rows.size(), s.matching);
  out += "| run | FWHM (px) | kernel (px) | epochs | train loss | val loss |";
  std::string rule = "|---|---:|---:|---:|---:|---:|";
  for (double t : s.tolerances) {
    out += fmt::format(" JI @ {} nm | RMSE @ {} nm (nm) |", t, t);
    rule += "---:|---:|";
  }
  out += " image corr. | status |\n" + rule + "---:|---|\n";
  for (const auto& r : s.rows) {
    out += fmt::format("| {} | {} | {} | {} | {} | {} |", markdown_cell(r.name), short_number(r.fwhm),
                       r.kernel_size > 0 ? std::to_string(r.kernel_size) : "–",
                       r.epochs > 0 ? std::to_string(r.epochs) : "–", short_number(r.train_loss),
                       short_number(r.val_loss));
    for (double t : s.tolerances) {
      auto it = r.by_tolerance.find(t);
      out += fmt::format(" {} | {} |", it == r.by_tolerance.end() ? "–" : short_number(it->second.jaccard),
                         it == r.by_tolerance.end() ? "–" : short_number(it->second.rmse_nm));
    }
    out += fmt::format(" {} | {} |\n", short_number(r.pearson), markdown_cell(r.status()));
  }
  // The best run by each quality measure (higher is better).
  std::string best;
  auto note = [&](const std::string& what, auto value) {
    const Row* b = nullptr;
    for (const auto& r : s.rows)
      if (std::isfinite(value(r)) && (!b || value(r) > value(*b))) b = &r;
    if (b) best += fmt::format("- {}: {} ({:.4g})\n", what, b->name, value(*b));
  };
  for (double t : s.tolerances)
    note(fmt::format("highest JI @ {} nm", t), [t](const Row& r) {
      auto it = r.by_tolerance.find(t);
      return it == r.by_tolerance.end() ? kNaN : it->second.jaccard;
    });
  note("highest image correlation", [](const Row& r) { return r.pearson; });
  if (!best.empty()) out += "\nBest:\n" + best;
  out += "\nPlots: summary.png (JI and image correlation), summary-rmse.png, summary-loss.png.\n";
  return out;
}

void write_summary(const Summary& s) {
  write_text_file(s.dir + "/summary.csv", to_csv(s));
  write_text_file(s.dir + "/summary.md", to_markdown(s));
  // One series per measure (and per kernel width when several), x = FWHM in sweep order.
  std::set<int> kernels;
  for (const auto& r : s.rows) kernels.insert(r.kernel_size);
  const bool several = kernels.size() > 1;
  auto series = [&](const std::string& label, auto value) {
    std::vector<picture::Series> out;
    for (int k : kernels) {
      picture::Series se{several ? fmt::format("{} (kernel {})", label, k) : label, {}, {}};
      for (const auto& r : s.rows) {
        if (r.kernel_size != k || !std::isfinite(r.fwhm)) continue;
        se.x.push_back(r.fwhm);
        se.y.push_back(value(r));
      }
      out.push_back(se);
    }
    return out;
  };
  auto at = [](double t, bool jaccard) {
    return [t, jaccard](const Row& r) {
      auto it = r.by_tolerance.find(t);
      return it == r.by_tolerance.end() ? kNaN : (jaccard ? it->second.jaccard : it->second.rmse_nm);
    };
  };
  std::vector<picture::Series> quality, rmse, loss;
  for (double t : s.tolerances) {
    for (auto& se : series(fmt::format("JI @ {} nm", t), at(t, true))) quality.push_back(se);
    for (auto& se : series(fmt::format("RMSE @ {} nm", t), at(t, false))) rmse.push_back(se);
  }
  for (auto& se : series("image correlation", [](const Row& r) { return r.pearson; })) quality.push_back(se);
  for (auto& se : series("train", [](const Row& r) { return r.train_loss; })) loss.push_back(se);
  for (auto& se : series("validation", [](const Row& r) { return r.val_loss; })) loss.push_back(se);
  const std::string x = "loss kernel FWHM (pixels)";
  picture::save_line_plot(s.dir + "/summary.png", "sweep: JI and image correlation vs FWHM", x,
                          "JI / Pearson r", quality);
  picture::save_line_plot(s.dir + "/summary-rmse.png", "sweep: lateral RMSE vs FWHM", x, "RMSE (nm)", rmse);
  picture::save_line_plot(s.dir + "/summary-loss.png", "sweep: final losses vs FWHM", x, "loss (log10)", loss,
                          true);
}

}  // namespace dsir::sweep
