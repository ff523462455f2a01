#include "pipeline/registry.h"

#include <algorithm>

namespace dsir {
namespace {
std::vector<CommandInfo>& command_store() {
  static std::vector<CommandInfo> v;
  return v;
}
std::vector<std::pair<std::string, std::string>>& provenance_store() {
  static std::vector<std::pair<std::string, std::string>> v;
  return v;
}
}  // namespace

CommandRegistrar::CommandRegistrar(CommandInfo info) {
  auto& v = command_store();
  v.push_back(std::move(info));
  std::sort(v.begin(), v.end(), [](const CommandInfo& a, const CommandInfo& b) {
    if (a.is_stage() != b.is_stage()) return a.is_stage();
    if (a.is_stage()) return a.pipeline_order < b.pipeline_order;
    return a.name < b.name;
  });
}

const std::vector<CommandInfo>& commands() { return command_store(); }

std::vector<const CommandInfo*> stages() {
  std::vector<const CommandInfo*> out;
  for (const auto& c : commands())
    if (c.is_stage()) out.push_back(&c);
  return out;
}

const CommandInfo* find_command(const std::string& name) {
  for (const auto& c : commands())
    if (c.name == name) return &c;
  return nullptr;
}

ProvenanceItem::ProvenanceItem(std::string key, std::string value) {
  provenance_store().emplace_back(std::move(key), std::move(value));
}
const std::vector<std::pair<std::string, std::string>>& provenance_items() { return provenance_store(); }

}  // namespace dsir
