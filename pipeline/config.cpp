#include "pipeline/config.h"

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "pipeline/errors.h"

namespace dsir {

namespace {
KeySpec make_key(std::string name, KeyType type, std::string default_yaml, std::string help) {
  KeySpec s;
  s.name = std::move(name);
  s.type = type;
  s.default_yaml = std::move(default_yaml);
  s.help = std::move(help);
  return s;
}
}  // namespace

KeySpec KeySpec::integer(std::string name, std::string default_yaml, std::string help) {
  return make_key(std::move(name), KeyType::Int, std::move(default_yaml), std::move(help));
}
KeySpec KeySpec::real(std::string name, std::string default_yaml, std::string help) {
  return make_key(std::move(name), KeyType::Float, std::move(default_yaml), std::move(help));
}
KeySpec KeySpec::boolean(std::string name, std::string default_yaml, std::string help) {
  return make_key(std::move(name), KeyType::Bool, std::move(default_yaml), std::move(help));
}
KeySpec KeySpec::text(std::string name, std::string default_yaml, std::string help) {
  return make_key(std::move(name), KeyType::String, std::move(default_yaml), std::move(help));
}
KeySpec KeySpec::choice(std::string name, std::string default_yaml, std::string help,
                        std::vector<std::string> choices) {
  KeySpec s = make_key(std::move(name), KeyType::Choice, std::move(default_yaml), std::move(help));
  s.choices = std::move(choices);
  return s;
}
KeySpec KeySpec::real_list(std::string name, std::string default_yaml, std::string help) {
  return make_key(std::move(name), KeyType::FloatList, std::move(default_yaml), std::move(help));
}
KeySpec KeySpec::text_list(std::string name, std::string default_yaml, std::string help) {
  return make_key(std::move(name), KeyType::StringList, std::move(default_yaml), std::move(help));
}
KeySpec KeySpec::range(double lo, double hi) const {
  KeySpec s = *this;
  s.min = lo;
  s.max = hi;
  return s;
}
KeySpec KeySpec::size(size_t n) const {
  KeySpec s = *this;
  s.list_size = n;
  return s;
}
KeySpec KeySpec::cli(std::string command_line_flag) const {
  KeySpec s = *this;
  s.flag = std::move(command_line_flag);
  return s;
}

namespace {

struct SchemaStore {
  std::vector<KeyEntry> keys;
  std::map<std::string, std::string> summaries;
};
SchemaStore& store() {
  static SchemaStore s;
  return s;
}

// Keys every stage shares: the run itself, the camera and the PSF (simulate and ingest use them).
const ConfigSection run_section(
    "run", "The run: where outputs go, the seed, which stages `dsir run` executes.",
    {
        KeySpec::text("dir", "runs/dsir", "Run folder; every stage's default paths live under it.")
            .cli("--run-dir"),
        KeySpec::text_list(
            "input", "[]",
            "A lab's acquisitions (TIFF stacks or globs) for the run to reconstruct: calibrate "
            "derives the camera from them, ingest writes each to {run.dir}/data/input/, infer "
            "reads those (configs/auto.yaml).")
            .cli("--input"),
        KeySpec::integer("seed", "42", "Seed of every random stream (per-frame streams derive from it).")
            .range(0, 9.2e18)
            .cli("--seed"),
        KeySpec::text_list("stages", "[simulate, ingest, train, infer, reduce, evaluate, report]",
                           "Stages `dsir run` executes, in pipeline order.")
            .cli("--stages"),
        KeySpec::integer("threads", "0",
                         "Compute threads per rank (0: cores on the node divided by ranks on the node).")
            .range(0, 1024),
        KeySpec::boolean("verbose", "false", "Debug logging.").cli("--verbose"),
    });

const ConfigSection camera_section(
    "camera", "The camera model: simulation draws frames with it; ingest records it.",
    {
        KeySpec::real("pixel_size_nm", "100", "Camera pixel size in the sample plane (nm).").range(1, 1e5),
        KeySpec::real("base_level", "100", "Offset added to every pixel (ADU).").range(0, 65535),
        KeySpec::real("e_per_adu", "1.0", "Photoelectrons per ADU.").range(1e-3, 1e3),
        KeySpec::real("em_gain", "0", "EM gain (0: no EM register; >= 1: Gamma excess noise).").range(0, 1e4),
        KeySpec::real("read_noise_e", "0", "Gaussian read noise, electrons RMS.").range(0, 1e3),
        KeySpec::real("quantum_efficiency", "1.0", "Fraction of photons detected.").range(0, 1),
        KeySpec::real("background_photons", "20", "Constant background per pixel (photons).").range(0, 1e6),
    });

const ConfigSection psf_section(
    "psf", "The emitters: symmetric Gaussian PSF.",
    {
        KeySpec::choice("model", "integrated",
                        "integrated: the PSF's mass in each pixel (erf); sampled: its density at the pixel "
                        "centre, as ThunderSTORM's generator renders (docs/simulator.md).",
                        {"integrated", "sampled"}),
        KeySpec::real_list("fwhm_nm", "[200, 300]", "PSF FWHM range (nm), drawn uniformly per emitter.")
            .range(1, 1e5)
            .size(2),
        KeySpec::real_list("photons", "[80, 2050]", "Photon count range, drawn uniformly per emitter.")
            .range(0, 1e9)
            .size(2),
    });

std::string type_name(const KeySpec& s) {
  switch (s.type) {
    case KeyType::Int:
      return "integer";
    case KeyType::Float:
      return "number";
    case KeyType::Bool:
      return "boolean";
    case KeyType::String:
      return "string";
    case KeyType::Choice: {
      std::string c;
      for (const auto& x : s.choices) c += (c.empty() ? "" : ", ") + x;
      return "one of " + c;
    }
    case KeyType::FloatList:
      return s.list_size ? "list of " + std::to_string(s.list_size) + " numbers" : "list of numbers";
    case KeyType::StringList:
      return "list of strings";
  }
  return "?";
}

std::string range_text(const KeySpec& s) {
  auto num = [](double v) {
    std::ostringstream o;
    o << v;
    return o.str();
  };
  bool lo = s.min > -1e299, hi = s.max < 1e299;
  if (!lo && !hi) return "";
  return "[" + (lo ? num(s.min) : std::string("-inf")) + ", " + (hi ? num(s.max) : std::string("inf")) + "]";
}

std::string mark_text(const std::string& file, const YAML::Mark& m) {
  if (m.is_null()) return file;
  return file + ":" + std::to_string(m.line + 1) + ":" + std::to_string(m.column + 1);
}

// Records where a document's root starts and whether yaml-cpp made it an empty (null) node.
class RootRecorder : public YAML::EventHandler {
 public:
  bool null_root = false;
  YAML::Mark root_mark = YAML::Mark::null_mark();

  void OnDocumentStart(const YAML::Mark&) override {}
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark& mark, YAML::anchor_t) override { root(mark, true); }
  void OnAlias(const YAML::Mark& mark, YAML::anchor_t) override { root(mark, false); }
  void OnScalar(const YAML::Mark& mark, const std::string&, YAML::anchor_t, const std::string&) override {
    root(mark, false);
  }
  void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {
    root(mark, false);
  }
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {
    root(mark, false);
  }
  void OnMapEnd() override {}

 private:
  bool seen_ = false;
  void root(const YAML::Mark& mark, bool is_null) {
    if (seen_) return;
    seen_ = true;
    null_root = is_null;
    root_mark = mark;
  }
};

// The one document of a config file. Not YAML::LoadAll: in yaml-cpp 0.7 (Debian 12's) it loops
// forever, allocating, on input such as a stray ',' where a value should start — the parser
// reports an empty document without consuming the token, again and again (found by the config
// fuzzer; fixed upstream in yaml-cpp PR #1319). Here an empty document at the position of the
// previous empty one is that stall, and a syntax error.
YAML::Node load_single_document(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ConfigError(path + ": cannot read the config file");
  std::ostringstream text_stream;
  text_stream << in.rdbuf();
  const std::string text = text_stream.str();

  std::istringstream documents_in(text);
  YAML::Parser parser(documents_in);
  int documents = 0;
  YAML::Mark previous_null = YAML::Mark::null_mark();
  for (;;) {
    RootRecorder recorder;
    if (!parser.HandleNextDocument(recorder)) break;
    if (recorder.null_root) {
      if (!previous_null.is_null() && previous_null.pos == recorder.root_mark.pos) {
        const auto at = static_cast<std::size_t>(recorder.root_mark.pos);
        const std::string found = at < text.size() ? "'" + std::string(1, text[at]) + "'" : "the end";
        throw ConfigError(mark_text(path, recorder.root_mark) + ": YAML syntax error: unexpected " + found +
                          " where a value should start");
      }
      previous_null = recorder.root_mark;
    } else {
      previous_null = YAML::Mark::null_mark();
    }
    ++documents;
  }
  // A second document after '---' would be ignored silently; say so instead.
  if (documents > 1)
    throw ConfigError(path + ": " + std::to_string(documents) +
                      " YAML documents (separated by '---'); a config is one document");
  return documents == 0 ? YAML::Node() : YAML::Load(text);
}

double parse_number(const YAML::Node& n, const KeyEntry& e, const std::string& origin, bool integer) {
  const std::string text = n.IsScalar() ? n.Scalar() : "";
  try {
    size_t used = 0;
    double v = std::stod(text, &used);
    if (used != text.size() || !std::isfinite(v)) throw std::invalid_argument(text);
    if (integer && v != std::floor(v)) throw std::invalid_argument(text);
    if (v < e.spec.min || v > e.spec.max)
      throw ConfigError(origin + ": " + e.key + " = " + text + " is out of range " + range_text(e.spec));
    return v;
  } catch (const ConfigError&) {
    throw;
  } catch (const std::exception&) {
    throw ConfigError(origin + ": " + e.key + " expects " + (integer ? "an integer" : "a number") +
                      (range_text(e.spec).empty() ? "" : " in " + range_text(e.spec)) + ", got '" + text +
                      "'");
  }
}

// Integers keep every digit (a seed above 2^53 must not round through a double); forms such as
// "1e3" or "12.0" still go through parse_number.
int64_t parse_integer(const YAML::Node& n, const KeyEntry& e, const std::string& origin) {
  const std::string text = n.IsScalar() ? n.Scalar() : "";
  try {
    size_t used = 0;
    const long long i = std::stoll(text, &used);
    if (used == text.size()) {
      if (static_cast<double>(i) < e.spec.min || static_cast<double>(i) > e.spec.max)
        throw ConfigError(origin + ": " + e.key + " = " + text + " is out of range " + range_text(e.spec));
      return i;
    }
  } catch (const std::invalid_argument&) {
  } catch (const std::out_of_range&) {
  }
  return static_cast<int64_t>(parse_number(n, e, origin, true));
}

Value parse_value(const YAML::Node& n, const KeyEntry& e, const std::string& origin) {
  const KeySpec& s = e.spec;
  auto expect_scalar = [&] {
    if (!n.IsScalar())
      throw ConfigError(origin + ": " + e.key + " expects " + type_name(s) + ", got a " +
                        (n.IsSequence() ? "list"
                         : n.IsMap()    ? "mapping"
                                        : "null"));
  };
  switch (s.type) {
    case KeyType::Int:
      expect_scalar();
      return parse_integer(n, e, origin);
    case KeyType::Float:
      expect_scalar();
      return parse_number(n, e, origin, false);
    case KeyType::Bool: {
      expect_scalar();
      std::string t = n.Scalar();
      if (t == "true" || t == "yes" || t == "on") return true;
      if (t == "false" || t == "no" || t == "off") return false;
      throw ConfigError(origin + ": " + e.key + " expects true or false, got '" + t + "'");
    }
    case KeyType::String:
      if (n.IsNull()) return std::string();
      expect_scalar();
      return n.Scalar();
    case KeyType::Choice: {
      expect_scalar();
      std::string t = n.Scalar();
      if (std::find(s.choices.begin(), s.choices.end(), t) == s.choices.end())
        throw ConfigError(origin + ": " + e.key + " = '" + t + "' is not " + type_name(s));
      return t;
    }
    case KeyType::FloatList: {
      std::vector<double> v;
      if (n.IsScalar()) {
        v.push_back(parse_number(n, e, origin, false));
      } else if (n.IsSequence()) {
        for (const auto& x : n) v.push_back(parse_number(x, e, origin, false));
      } else {
        throw ConfigError(origin + ": " + e.key + " expects " + type_name(s));
      }
      if (s.list_size && v.size() != s.list_size)
        throw ConfigError(origin + ": " + e.key + " expects " + type_name(s) + ", got " +
                          std::to_string(v.size()));
      return v;
    }
    case KeyType::StringList: {
      std::vector<std::string> v;
      if (n.IsNull()) return v;
      if (n.IsScalar()) {
        // "a,b,c" on the command line is a list too.
        std::stringstream ss(n.Scalar());
        std::string item;
        while (std::getline(ss, item, ','))
          if (!item.empty()) v.push_back(item);
      } else if (n.IsSequence()) {
        for (const auto& x : n) {
          if (!x.IsScalar()) throw ConfigError(origin + ": " + e.key + " expects a list of strings");
          v.push_back(x.Scalar());
        }
      } else {
        throw ConfigError(origin + ": " + e.key + " expects a list of strings");
      }
      return v;
    }
  }
  return std::string();
}

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

bool is_section_prefix(const std::string& prefix) {
  for (const auto& e : schema())
    if (e.key.compare(0, prefix.size() + 1, prefix + ".") == 0) return true;
  return false;
}

void walk(const YAML::Node& node, const std::string& prefix, const std::string& file, Config& cfg,
          std::map<std::string, std::string>& seen) {
  for (auto it = node.begin(); it != node.end(); ++it) {
    if (!it->first.IsScalar())
      throw ConfigError(mark_text(file, it->first.Mark()) + ": expected a key name, got a " +
                        (it->first.IsSequence() ? "list" : "mapping"));
    const std::string name = it->first.Scalar();
    const std::string key = prefix.empty() ? name : prefix + "." + name;
    const std::string where = mark_text(file, it->first.Mark());
    if (find_key(key)) {
      YAML::Emitter out;
      out << YAML::Flow << it->second;
      if (seen.count(key))
        throw ConfigError(where + ": key '" + key + "' given twice (first at " + seen[key] + ")");
      seen[key] = where;
      cfg.set(key, it->second.IsNull() ? std::string("null") : std::string(out.c_str()), where);
    } else if (is_section_prefix(key)) {
      if (!it->second.IsMap())
        throw ConfigError(where + ": '" + key + "' is a section; expected a mapping of keys");
      walk(it->second, key, file, cfg, seen);
    } else {
      throw ConfigError(where + ": unknown key '" + key + "'" + did_you_mean(key));
    }
  }
}

// The shortest text that reads back as the same double (182.194, not 182.19399999999999).
std::string shortest_text(double x) {
  char buf[32];
  const auto end = std::to_chars(buf, buf + sizeof buf, x).ptr;
  return std::string(buf, end);
}

void emit_value(std::ostringstream& o, const Value& v) {
  std::visit(
      [&](const auto& x) {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, std::string>) {
          YAML::Emitter e;
          e << YAML::DoubleQuoted << x;
          o << e.c_str();
        } else if constexpr (std::is_same_v<T, bool>) {
          o << (x ? "true" : "false");
        } else if constexpr (std::is_same_v<T, double>) {
          o << shortest_text(x);
        } else if constexpr (std::is_same_v<T, int64_t>) {
          o << x;
        } else if constexpr (std::is_same_v<T, std::vector<double>>) {
          o << "[";
          for (size_t i = 0; i < x.size(); ++i) o << (i ? ", " : "") << shortest_text(x[i]);
          o << "]";
        } else {
          o << "[";
          for (size_t i = 0; i < x.size(); ++i) {
            YAML::Emitter e;
            e << YAML::DoubleQuoted << x[i];
            o << (i ? ", " : "") << e.c_str();
          }
          o << "]";
        }
      },
      v);
}

}  // namespace

ConfigSection::ConfigSection(std::string section, std::string summary, std::initializer_list<KeySpec> keys) {
  auto& s = store();
  s.summaries[section] = std::move(summary);
  for (const auto& k : keys) s.keys.push_back({section + "." + k.name, section, k});
  std::sort(s.keys.begin(), s.keys.end(), [](const KeyEntry& a, const KeyEntry& b) { return a.key < b.key; });
}

const std::vector<KeyEntry>& schema() { return store().keys; }

const KeyEntry* find_key(const std::string& key) {
  for (const auto& e : schema())
    if (e.key == key) return &e;
  return nullptr;
}

std::string section_summary(const std::string& section) {
  auto it = store().summaries.find(section);
  return it == store().summaries.end() ? "" : it->second;
}

std::string did_you_mean(const std::string& key) {
  const KeyEntry* best = nullptr;
  size_t best_d = 1000;
  for (const auto& e : schema()) {
    size_t d = edit_distance(key, e.key);
    // Also compare the last component alone (a key put in the wrong section).
    auto dot = key.rfind('.');
    auto edot = e.key.rfind('.');
    if (dot != std::string::npos && edot != std::string::npos)
      d = std::min(d, 1 + edit_distance(key.substr(dot + 1), e.key.substr(edot + 1)));
    if (d < best_d) {
      best_d = d;
      best = &e;
    }
  }
  if (best && best_d <= std::max<size_t>(2, key.size() / 3)) return " (did you mean '" + best->key + "'?)";
  return "";
}

std::string nearest_word(const std::string& word, const std::vector<std::string>& candidates) {
  std::string best;
  size_t best_d = std::max<size_t>(2, word.size() / 3) + 1;
  for (const auto& c : candidates) {
    const size_t d = edit_distance(word, c);
    if (d < best_d) best_d = d, best = c;
  }
  return best;
}

std::string flag_value_text(const KeySpec& s) {
  const std::string range = range_text(s);
  switch (s.type) {
    case KeyType::Int:
      return range.empty() ? "INT" : "INT in " + range;
    case KeyType::Float:
    case KeyType::FloatList:
      return range.empty() ? "FLOAT" : "FLOAT in " + range;  // a list: CLI11 adds " ..."
    case KeyType::Bool:
      return "BOOL";
    case KeyType::Choice: {
      std::string c;
      for (const auto& x : s.choices) c += (c.empty() ? "" : "|") + x;
      return "{" + c + "}";
    }
    case KeyType::String:
    case KeyType::StringList:
      return "TEXT";
  }
  return "TEXT";
}

std::string schema_markdown() {
  std::ostringstream o;
  std::string section;
  for (const auto& e : schema()) {
    if (e.section != section) {
      section = e.section;
      o << "\n### `" << section << "`\n\n"
        << section_summary(section) << "\n\n"
        << "| key | type | default | range | flag | meaning |\n|---|---|---|---|---|---|\n";
    }
    std::string flag = e.spec.flag.empty() ? "" : "`" + e.spec.flag + "`";
    std::string range = range_text(e.spec);
    o << "| `" << e.key << "` | " << type_name(e.spec) << " | `" << e.spec.default_yaml << "` | " << range
      << " | " << flag << " | " << e.spec.help << " |\n";
  }
  return o.str();
}

Config Config::load(const std::string& path, const std::vector<std::string>& overrides) {
  Config cfg;
  for (const auto& e : schema()) {
    cfg.set(e.key, e.spec.default_yaml, "default of " + e.key);
    cfg.explicit_[e.key] = false;
  }
  if (!path.empty()) {
    if (!std::filesystem::is_regular_file(path)) throw ConfigError(path + ": config file not found");
    YAML::Node root;
    try {
      root = load_single_document(path);
    } catch (const YAML::Exception& ex) {
      throw ConfigError(mark_text(path, ex.mark) + ": YAML syntax error: " + ex.msg);
    }
    if (!root.IsNull()) {
      if (!root.IsMap()) throw ConfigError(path + ": expected a mapping of sections at the top level");
      std::map<std::string, std::string> seen;
      walk(root, "", path, cfg, seen);
    }
    cfg.source_ = path;
  }
  for (const auto& o : overrides) {
    auto eq = o.find('=');
    if (eq == std::string::npos || eq == 0) throw ConfigError("override '" + o + "': expected key=value");
    std::string key = o.substr(0, eq);
    if (!find_key(key))
      throw ConfigError("override '" + o + "': unknown key '" + key + "'" + did_you_mean(key));
    cfg.set(key, o.substr(eq + 1), "override '" + o + "'");
    cfg.overrides_.push_back(o);
  }
  return cfg;
}

void Config::set(const std::string& key, const std::string& yaml_value, const std::string& origin) {
  const KeyEntry* e = find_key(key);
  if (!e) throw ConfigError(origin + ": unknown key '" + key + "'" + did_you_mean(key));
  YAML::Node n;
  try {
    n = YAML::Load(yaml_value.empty() ? std::string("''") : yaml_value);
  } catch (const YAML::Exception& ex) {
    throw ConfigError(origin + ": cannot parse value of " + key + ": " + ex.msg);
  }
  values_[key] = parse_value(n, *e, origin);
  explicit_[key] = true;
}

const Value& Config::value(const std::string& key) const {
  auto it = values_.find(key);
  if (it == values_.end()) throw Error("internal: config key '" + key + "' is not in the schema");
  return it->second;
}

namespace {
template <class T>
const T& typed(const Value& v, const std::string& key) {
  if (auto* p = std::get_if<T>(&v)) return *p;
  throw Error("internal: config key '" + key + "' read with the wrong type");
}
}  // namespace

int64_t Config::get_int(const std::string& key) const { return typed<int64_t>(value(key), key); }
double Config::get_double(const std::string& key) const {
  const Value& v = value(key);
  if (auto* i = std::get_if<int64_t>(&v)) return static_cast<double>(*i);
  return typed<double>(v, key);
}
bool Config::get_bool(const std::string& key) const { return typed<bool>(value(key), key); }
const std::string& Config::get_string(const std::string& key) const {
  return typed<std::string>(value(key), key);
}
const std::vector<double>& Config::get_doubles(const std::string& key) const {
  return typed<std::vector<double>>(value(key), key);
}
const std::vector<std::string>& Config::get_strings(const std::string& key) const {
  return typed<std::vector<std::string>>(value(key), key);
}
bool Config::is_default(const std::string& key) const {
  auto it = explicit_.find(key);
  return it == explicit_.end() || !it->second;
}

std::string Config::yaml_value(const std::string& key) const {
  std::ostringstream o;
  emit_value(o, value(key));
  return o.str();
}

std::string Config::to_yaml() const {
  std::ostringstream o;
  std::vector<std::string> open;  // currently open mapping path
  for (const auto& e : schema()) {
    std::vector<std::string> parts;
    std::stringstream ss(e.key);
    std::string p;
    while (std::getline(ss, p, '.')) parts.push_back(p);
    size_t common = 0;
    while (common < open.size() && common + 1 < parts.size() && open[common] == parts[common]) ++common;
    open.resize(common);
    for (size_t i = common; i + 1 < parts.size(); ++i) {
      o << std::string(2 * i, ' ') << parts[i] << ":\n";
      open.push_back(parts[i]);
    }
    o << std::string(2 * (parts.size() - 1), ' ') << parts.back() << ": ";
    emit_value(o, value(e.key));
    o << "\n";
  }
  return o.str();
}

std::string Config::hash() const {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : to_yaml()) {
    h ^= c;
    h *= 1099511628211ull;
  }
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

std::string camera_json(const Config& config) {
  nlohmann::json j;
  for (const auto& e : schema())
    if (e.section == "camera") j[e.key.substr(e.section.size() + 1)] = config.get_double(e.key);
  return j.dump();
}

}  // namespace dsir
