#include "stages/train/models/model_registry.h"

#include <map>

#include "pipeline/errors.h"
#include "stages/train/models/dsir_net.h"

namespace dsir {
namespace {
std::map<std::string, ModelFactory>& factories() {
  static std::map<std::string, ModelFactory> f;
  return f;
}
// Registered here rather than in dsir_net.cpp: this file is always linked (make_model lives
// here), so the registration cannot be dropped by the static-library linker.
const ModelRegistrar dsir_model("dsir", [] { return std::make_shared<DsirNetImpl>(); });
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
