// The dsir driver: one binary, one subcommand per registered command, flags generated from the
// config schema. The only place that prints errors and decides how the process ends.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cctype>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <map>
#include <new>
#include <nlohmann/json.hpp>
#include <sstream>

#include "pipeline/atomic_file.h"
#include "pipeline/context.h"
#include "pipeline/errors.h"
#include "pipeline/log.h"
#include "pipeline/registry.h"

namespace {

using dsir::Config;
using dsir::ConfigError;

// What the command line asked for, before the config is built.
struct Request {
  std::string command;                       // the chosen subcommand
  std::vector<std::string> positional_keys;  // of the chosen command, if it takes named positionals
  std::vector<std::string> positional;       // CONFIG.yaml and key=value overrides
  std::map<std::string, std::vector<std::string>> flags;  // config key -> values given
  std::map<std::string, bool> bool_flags;
};

std::string yaml_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += (c == '\'') ? std::string("''") : std::string(1, c);
  return out + "'";
}

// Adds the flags of config section `section` to a subcommand.
void add_flags(CLI::App* sub, const std::string& section, Request& req) {
  for (const auto& e : dsir::schema()) {
    if (e.section != section || e.spec.flag.empty()) continue;
    // Flags of the whole run belong to `dsir run` alone (a stage's own --input is its key).
    if (section == "run" && (e.key == "run.stages" || e.key == "run.input") && sub->get_name() != "run")
      continue;
    std::string help = e.spec.help + "  [" + e.key + "]";
    if (e.spec.type == dsir::KeyType::Bool) {
      sub->add_flag_function(
          e.spec.flag, [&req, key = e.key](int64_t) { req.bool_flags[key] = true; }, help);
    } else {
      auto* opt = sub->add_option(e.spec.flag, req.flags[e.key], help);
      // The value's type and range, and the schema's default where there is one (not '').
      opt->type_name(dsir::flag_value_text(e.spec));
      if (e.spec.default_yaml != "''") opt->default_str(e.spec.default_yaml);
      if (e.spec.type == dsir::KeyType::StringList || e.spec.type == dsir::KeyType::FloatList)
        opt->expected(1, -1);
      else
        opt->expected(1)->allow_extra_args(false);  // a following key=value is an override
    }
  }
}

// Whether a command-line word names a data file rather than a YAML config.
bool looks_like_data_file(const std::string& word) {
  std::string ext = std::filesystem::path(word).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  for (const char* data : {".h5", ".hdf5", ".tif", ".tiff", ".csv", ".png", ".npy", ".npz"})
    if (ext == data) return true;
  return false;
}

// "'acquisition.h5' is a data file, not a config ...": the flags of `command` that read files.
std::string data_file_error(const std::string& word, const std::string& command) {
  std::string flags, example;
  for (const auto& e : dsir::schema()) {
    if (e.section != command || command == "run" || e.spec.flag.empty() || e.key.size() < 7) continue;
    if (e.spec.type != dsir::KeyType::String && e.spec.type != dsir::KeyType::StringList) continue;
    if (e.key.compare(e.key.size() - 7, 7, ".output") == 0) continue;
    flags += (flags.empty() ? "" : ", ") + e.spec.flag + " (" + e.key + ")";
    // The example: the flag that usually takes a file of this kind.
    const std::string ext = std::filesystem::path(word).extension().string();
    const std::string likely = ext == ".csv"                      ? ".locs"
                               : (ext == ".h5" || ext == ".hdf5") ? ".input"
                                                                  : ".frames";
    if (example.empty() || e.key == command + likely) example = e.spec.flag;
  }
  std::string what = "'" + word + "' is a data file, not a config (CONFIG.yaml)";
  if (flags.empty())
    return what + "; give input files in the config or as key=value overrides (e.g. ingest.frames=" + word +
           ")";
  return what + "; `dsir " + command + "` reads files given with " + flags + ", e.g. dsir " + command + " " +
         example + " " + word;
}

Config build_config(const Request& req) {
  std::string path;
  std::vector<std::string> overrides;
  // A list flag (--frames A B) swallows what follows it; key=value tokens are always overrides.
  std::vector<std::string> positional = req.positional;
  std::map<std::string, std::vector<std::string>> flags;
  for (const auto& [key, values] : req.flags)
    for (const auto& v : values) (v.find('=') != std::string::npos ? positional : flags[key]).push_back(v);
  size_t named = 0;
  for (size_t i = 0; i < positional.size(); ++i) {
    const std::string& p = positional[i];
    if (p.find('=') != std::string::npos) {
      overrides.push_back(p);
    } else if (named < req.positional_keys.size()) {
      overrides.push_back(req.positional_keys[named++] + "=" + p);
    } else if (dsir::find_key(p) != nullptr) {  // "train.epochs 3"
      const bool value_follows =
          i + 1 < positional.size() && positional[i + 1].find('=') == std::string::npos;
      throw ConfigError("'" + p + "' is a config key given without a value: an override is key=value (" + p +
                        "=" + (value_follows ? positional[i + 1] : "...") + ")");
    } else if (path.empty()) {
      if (looks_like_data_file(p)) throw ConfigError(data_file_error(p, req.command));
      path = p;
    } else {
      throw ConfigError("more than one config file given: '" + path + "' and '" + p + "'");
    }
  }
  Config cfg = Config::load(path, overrides);
  for (const auto& [key, values] : flags) {
    if (values.empty()) continue;
    const auto* e = dsir::find_key(key);
    std::string yaml;
    if (e->spec.type == dsir::KeyType::StringList || e->spec.type == dsir::KeyType::FloatList) {
      std::vector<std::string> items;
      for (const auto& v : values) {
        // "--tolerance-nm 50,250" and "--stages a,b" are lists too.
        std::string item;
        std::stringstream ss(v);
        while (std::getline(ss, item, ','))
          if (!item.empty()) items.push_back(item);
      }
      for (size_t i = 0; i < items.size(); ++i)
        yaml +=
            (i ? ", " : "[") + (e->spec.type == dsir::KeyType::StringList ? yaml_quote(items[i]) : items[i]);
      yaml += items.empty() ? "[]" : "]";
    } else {
      yaml = e->spec.type == dsir::KeyType::String ? yaml_quote(values.back()) : values.back();
    }
    cfg.set(key, yaml, "flag " + e->spec.flag);
  }
  for (const auto& [key, on] : req.bool_flags) cfg.set(key, on ? "true" : "false", "flag");
  return cfg;
}

void write_run_record(dsir::Context& ctx) {
  if (!ctx.mpi.is_root()) return;
  const std::string dir = ctx.run_dir();
  std::filesystem::create_directories(dir);
  dsir::write_text_file(dir + "/config.yaml", ctx.config.to_yaml());
  nlohmann::json j;
  for (const auto& [k, v] : ctx.provenance())
    if (k != "config") j[k] = v;
  dsir::write_text_file(dir + "/provenance.json", j.dump(2) + "\n");
  dsir::log::add_file(dir + "/dsir.log");
}

void run_command(const dsir::CommandInfo& cmd, dsir::Context& ctx) {
  auto start = std::chrono::steady_clock::now();
  dsir::log::print("{}: started ({} rank{})", cmd.name, ctx.mpi.size(), ctx.mpi.size() > 1 ? "s" : "");
  cmd.run(ctx);
  // A stage's outputs are complete on every rank before anything reads them.
  ctx.mpi.barrier();
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  dsir::log::print("{}: done in {:.1f} s", cmd.name, s);
}

void run_pipeline(dsir::Context& ctx) {
  const auto& wanted = ctx.config.get_strings("run.stages");
  for (const auto& name : wanted) {
    const auto* c = dsir::find_command(name);
    if (!c || !c->is_stage()) {
      std::string known;
      for (const auto* s : dsir::stages()) known += (known.empty() ? "" : ", ") + s->name;
      throw ConfigError("run.stages: unknown stage '" + name + "' (stages: " + known + ")");
    }
  }
  auto is_wanted = [&](const auto* s) {
    return std::find(wanted.begin(), wanted.end(), s->name) != wanted.end();
  };
  for (const auto* s : dsir::stages())
    if (s->restore && !is_wanted(s)) s->restore(ctx);
  write_run_record(ctx);
  for (const auto* s : dsir::stages()) {
    if (!is_wanted(s)) continue;
    const std::string before = ctx.config.hash();
    run_command(*s, ctx);
    // A stage that sets keys for the ones after it (calibrate): the record shows what they used.
    if (ctx.config.hash() != before && ctx.mpi.is_root())
      dsir::write_text_file(ctx.run_dir() + "/config.yaml", ctx.config.to_yaml());
  }
}

}  // namespace

namespace {

// How long a rank with an error waits for the others to reach one too before it aborts the job:
// ranks meet a shared error (a config key, a file they all read) within moments of each other.
constexpr double kErrorAgreementSeconds = 2;

// Rank 0 (the only one holding messages) prints each rank's error once: one line when they agree,
// else one line per distinct message naming its ranks. Empty messages are ranks without an error.
void print_once(const std::vector<std::string>& messages) {
  std::vector<std::pair<std::string, std::string>> distinct;  // message, its ranks
  for (size_t r = 0; r < messages.size(); ++r) {
    if (messages[r].empty()) continue;
    auto it =
        std::find_if(distinct.begin(), distinct.end(), [&](const auto& d) { return d.first == messages[r]; });
    if (it == distinct.end()) {
      distinct.emplace_back(messages[r], std::to_string(r));
    } else {
      it->second += "," + std::to_string(r);
    }
  }
  for (const auto& [message, ranks] : distinct) {
    if (distinct.size() == 1)
      std::fprintf(stderr, "dsir: error: %s\n", message.c_str());
    else
      std::fprintf(stderr, "dsir: error on rank %s: %s\n", ranks.c_str(), message.c_str());
  }
  std::fflush(stderr);
}

}  // namespace

int main(int argc, char** argv) {
  // SIGUSR1 asks training to checkpoint and stop (Slurm's --signal); elsewhere it must not kill.
  std::signal(SIGUSR1, SIG_IGN);
  dsir::MpiContext mpi(&argc, &argv);
  dsir::log::init(mpi.rank(), mpi.size());

  CLI::App app{
      "dsir: super-resolved images and localizations from blinking (PALM/STORM) movies "
      "with DSIR's convolutional auto-encoder.\nEvery command takes an optional CONFIG.yaml "
      "and key=value overrides; flags are shorthands for config keys."};
  app.set_version_flag("--version", dsir::dsir_version());
  app.require_subcommand(1);
  Request req;

  auto* run = app.add_subcommand("run", "Run the pipeline stages in order (run.stages).");
  run->final_callback([&req] { req.command = "run"; });
  run->add_option("args", req.positional, "CONFIG.yaml and key=value overrides");
  add_flags(run, "run", req);
  for (const auto& c : dsir::commands()) {
    auto* sub = app.add_subcommand(c.name, c.summary);
    std::string what = "CONFIG.yaml and key=value overrides";
    if (!c.positional_keys.empty()) {
      what = "";
      for (const auto& k : c.positional_keys) what += k + " ";
      what += "(in this order), then CONFIG.yaml and key=value overrides";
    }
    sub->final_callback([&req, name = c.name, keys = c.positional_keys] {
      req.command = name;
      req.positional_keys = keys;
    });
    sub->add_option("args", req.positional, what);
    add_flags(sub, c.name, req);
    add_flags(sub, "run", req);
  }
  auto* config = app.add_subcommand("config", "Inspect the configuration schema.");
  config->require_subcommand(1);
  auto* show = config->add_subcommand("show", "Print the effective config (defaults + file + overrides).");
  show->add_option("args", req.positional, "CONFIG.yaml and key=value overrides");
  config->add_subcommand("docs", "Print the schema reference as Markdown (docs/config.md).");

  // A misspelt command reads to CLI11 as a stray argument ("A subcommand is required"): name it.
  if (argc > 1 && argv[1][0] != '-') {
    std::vector<std::string> names;
    for (const CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; }))
      names.push_back(sub->get_name());
    if (std::find(names.begin(), names.end(), argv[1]) == names.end()) {
      if (mpi.is_root()) {
        const std::string near = dsir::nearest_word(argv[1], names);
        std::string list;
        for (const auto& n : names) list += (list.empty() ? "" : ", ") + n;
        std::fprintf(stderr, "dsir: error: unknown command '%s'%s; the commands: %s (dsir --help)\n", argv[1],
                     near.empty() ? "" : (" (did you mean '" + near + "'?)").c_str(), list.c_str());
      }
      return 2;
    }
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    if (mpi.is_root()) app.exit(e);
    return 0;
  } catch (const CLI::CallForAllHelp& e) {
    if (mpi.is_root()) app.exit(e);
    return 0;
  } catch (const CLI::CallForVersion& e) {
    if (mpi.is_root()) app.exit(e);
    return 0;
  } catch (const CLI::ParseError& e) {
    if (mpi.is_root()) {
      app.exit(e);
    }
    return 2;
  }

  // Configuration errors are reached by every rank alike: agree on failure, print once, exit 2.
  std::unique_ptr<Config> cfg;
  std::string config_error;
  try {
    cfg = std::make_unique<Config>(build_config(req));
  } catch (const ConfigError& e) {
    config_error = e.what();
  }
  if (mpi.allreduce_max(config_error.empty() ? 0.0 : 1.0) > 0) {
    print_once(mpi.gather_to_root(config_error));
    return 2;
  }
  dsir::log::init(mpi.rank(), mpi.size(), cfg->get_bool("run.verbose"));
  dsir::log::debug("config: {}, {} override(s); the effective config:",
                   cfg->source().empty() ? "defaults" : cfg->source(), cfg->overrides().size());
  if (dsir::log::root().should_log(spdlog::level::debug)) dsir::log::print_lines(cfg->to_yaml(), true, "  ");
  dsir::Context ctx{*cfg, mpi};

  try {
    if (show->parsed()) {
      if (mpi.is_root()) std::fputs(cfg->to_yaml().c_str(), stdout);
    } else if (config->parsed()) {
      if (mpi.is_root()) std::fputs(dsir::schema_markdown().c_str(), stdout);
    } else if (run->parsed()) {
      run_pipeline(ctx);
    } else {
      for (const auto& c : dsir::commands())
        if (app.got_subcommand(c.name)) run_command(c, ctx);
    }
  } catch (const dsir::Interrupted& e) {
    // Collective by construction (the ranks agreed to stop): a clean exit on every rank.
    dsir::log::print("{}", e.what());
    return dsir::kExitRequeue;
  } catch (const dsir::CollectiveError& e) {
    if (mpi.is_root()) std::fprintf(stderr, "dsir: error: %s\n", e.what());
    return e.code();
  } catch (const std::exception& e) {
    const int code = dynamic_cast<const ConfigError*>(&e) ? 2 : 1;
    // "std::bad_alloc" alone tells a user nothing; what follows from it does.
    const std::string what = dynamic_cast<const std::bad_alloc*>(&e)
                                 ? "out of memory (std::bad_alloc): the inputs ask for more memory than this "
                                   "node has; check the input's declared sizes, or give the job more memory"
                                 : e.what();
    // The two kinds of error (docs/architecture.md): every rank reached one (a bad setting, an
    // input all ranks read) -> printed once by rank 0, every rank exits cleanly; one rank's alone
    // -> the others may wait in a collective for it: abort the job with the rank's message.
    const dsir::MpiContext::SharedFailure failure = mpi.fail_together(code, what, kErrorAgreementSeconds);
    if (!failure.all_ranks) {
      std::fprintf(stderr, "dsir: ERROR on rank %d of %d: %s\n", mpi.rank(), mpi.size(), what.c_str());
      std::fflush(stderr);
      mpi.abort(code);
    }
    print_once(failure.messages);
    return failure.code;
  }
  return 0;
}
