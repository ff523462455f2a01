#pragma once
// One YAML schema for every stage. Each stage declares its own section of keys (type, default,
// range, help, optional CLI flag) next to its code with a ConfigSection registrar; `--help`,
// docs/config.md (`dsir config docs`) and validation are all generated from those declarations.
#include <cstdint>
#include <initializer_list>
#include <map>
#include <string>
#include <variant>
#include <vector>

namespace dsir {

enum class KeyType { Int, Float, Bool, String, Choice, FloatList, StringList };

// One key of a section, declared with the named builders:
//   KeySpec::integer("epochs", "10", "Epochs to train.").range(1, 1e6).cli("--epochs")
struct KeySpec {
  std::string name;  // within the section: "lr", "loss.fwhm"
  KeyType type = KeyType::String;
  std::string default_yaml;  // default, written as YAML: "1e-4", "[200, 300]", "''"
  std::string help;
  double min = -1e300, max = 1e300;  // numeric range (also each element of a FloatList)
  std::vector<std::string> choices;  // for Choice
  std::string flag;                  // CLI shorthand on the section's subcommand, e.g. "--output"
  size_t list_size = 0;              // FloatList: required length (0 = any)

  static KeySpec integer(std::string name, std::string default_yaml, std::string help);
  static KeySpec real(std::string name, std::string default_yaml, std::string help);
  static KeySpec boolean(std::string name, std::string default_yaml, std::string help);
  static KeySpec text(std::string name, std::string default_yaml, std::string help);
  static KeySpec choice(std::string name, std::string default_yaml, std::string help,
                        std::vector<std::string> choices);
  static KeySpec real_list(std::string name, std::string default_yaml, std::string help);
  static KeySpec text_list(std::string name, std::string default_yaml, std::string help);
  KeySpec range(double lo, double hi) const;         // numbers (and list elements) in [lo, hi]
  KeySpec size(size_t n) const;                      // a real_list of exactly n numbers
  KeySpec cli(std::string command_line_flag) const;  // e.g. "--output" on the section's command
};

struct KeyEntry {
  std::string key;      // full dotted key "train.lr"
  std::string section;  // "train"
  KeySpec spec;
};

// Registers a section's keys at static-initialisation time.
class ConfigSection {
 public:
  ConfigSection(std::string section, std::string summary, std::initializer_list<KeySpec> keys);
};

const std::vector<KeyEntry>& schema();  // sorted by key
const KeyEntry* find_key(const std::string& key);
std::string section_summary(const std::string& section);
std::string schema_markdown();  // the reference table in docs/config.md
// A key's value as --help shows it: "INT", "FLOAT", "BOOL", "TEXT", "{a|b}", with its range.
std::string flag_value_text(const KeySpec& spec);

using Value = std::variant<int64_t, double, bool, std::string, std::vector<double>, std::vector<std::string>>;

class Config {
 public:
  // Defaults, then the YAML file (if path is not empty), then `key=value` overrides in order.
  static Config load(const std::string& path, const std::vector<std::string>& overrides = {});
  static Config defaults() { return load(""); }

  // Sets one key from YAML text (a CLI flag or an override); `origin` names where it came from.
  void set(const std::string& key, const std::string& yaml_value, const std::string& origin);

  int64_t get_int(const std::string& key) const;
  double get_double(const std::string& key) const;
  bool get_bool(const std::string& key) const;
  const std::string& get_string(const std::string& key) const;
  const std::vector<double>& get_doubles(const std::string& key) const;
  const std::vector<std::string>& get_strings(const std::string& key) const;
  bool is_default(const std::string& key) const;

  std::string yaml_value(const std::string& key) const;  // one key's value as YAML text, as set() takes it
  std::string to_yaml() const;                           // the effective config, every key, nested
  std::string hash() const;                              // of the effective config (hex FNV-1a 64)
  const std::string& source() const { return source_; }
  const std::vector<std::string>& overrides() const { return overrides_; }

 private:
  const Value& value(const std::string& key) const;
  std::map<std::string, Value> values_;
  std::map<std::string, bool> explicit_;
  std::string source_;
  std::vector<std::string> overrides_;
};

std::string did_you_mean(const std::string& key);  // " (did you mean 'x'?)" or ""
// The camera.* keys as one JSON object: the `camera` attribute of raw.h5 and of shards.
std::string camera_json(const Config& config);
// The candidate nearest to word by edit distance, when near enough to be a slip; "" otherwise.
std::string nearest_word(const std::string& word, const std::vector<std::string>& candidates);

}  // namespace dsir
