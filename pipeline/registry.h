#pragma once
// Commands register themselves by name (LAMMPS "style"): adding a stage adds a folder, never an
// edit to a central list. Pipeline stages carry an order; `dsir run` executes them in that order.
#include <functional>
#include <string>
#include <vector>

namespace dsir {

struct Context;

struct CommandInfo {
  std::string name;
  int pipeline_order = -1;  // < 0: a tool command, not a pipeline stage
  std::string summary;
  std::function<void(Context&)> run;
  // Config keys that plain positional arguments fill, in order (e.g. `dsir sweep summarize DIR`
  // -> {"sweep.action", "sweep.dir"}). Empty: a plain positional is the config file.
  std::vector<std::string> positional_keys = {};
  // `dsir run` calls it, before the first stage, for a stage that is not among run.stages: it
  // restores what an earlier run of the stage handed to the stages after it (calibrate: the
  // calibrated keys, read back from the run folder in a later step of a Slurm chain).
  std::function<void(Context&)> restore = {};
  bool is_stage() const { return pipeline_order >= 0; }
};

class CommandRegistrar {
 public:
  explicit CommandRegistrar(CommandInfo info);
};

const std::vector<CommandInfo>& commands();  // sorted: stages by order, then tools by name
std::vector<const CommandInfo*> stages();    // pipeline stages only, in order
const CommandInfo* find_command(const std::string& name);

// Provenance items that libraries contribute (e.g. the LibTorch version), keyed by name.
class ProvenanceItem {
 public:
  ProvenanceItem(std::string key, std::string value);
};
const std::vector<std::pair<std::string, std::string>>& provenance_items();

}  // namespace dsir
