#include "stages/train/models/model_registry.h"

#include <map>

#include "pipeline/errors.h"

namespace dsir {
namespace {
std::map<std::string, ModelFactory>& factories() {
  static std::map<std::string, ModelFactory> f;
  return f;
}
}  // namespace

ModelRegistrar::ModelRegistrar(const std::string& name, ModelFactory factory) {
  factories()[name] = std::move(factory);
}

std::shared_ptr<EmitterNetImpl> make_model(const std::string& name) {
  auto it = factories().find(name);
  if (it == factories().end()) {
    std::string known;
    for (const auto& n : model_names()) known += (known.empty() ? "" : ", ") + n;
    throw ConfigError("unknown model '" + name + "' (models: " + known + ")");
  }
  return it->second();
}

std::vector<std::string> model_names() {
  std::vector<std::string> n;
  for (const auto& [k, v] : factories()) n.push_back(k);
  return n;
}

}  // namespace dsir
