#pragma once
// Models by name: each model file registers a factory (adding one touches no list).
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "stages/train/models/emitter_net.h"

namespace dsir {

using ModelFactory = std::function<std::shared_ptr<EmitterNetImpl>()>;

class ModelRegistrar {
 public:
  ModelRegistrar(const std::string& name, ModelFactory factory);
};

std::shared_ptr<EmitterNetImpl> make_model(const std::string& name);  // ConfigError if unknown
std::vector<std::string> model_names();

}  // namespace dsir
