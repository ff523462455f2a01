#pragma once
// What a command receives: the validated config, the MPI context, and the run folder layout.
#include <string>

#include "pipeline/config.h"
#include "pipeline/h5store.h"
#include "pipeline/mpi_context.h"

namespace dsir {

struct Context {
  Config& config;
  MpiContext& mpi;

  std::string run_dir() const { return config.get_string("run.dir"); }
  // The path in config key `key`, or `relative` under the run folder when the key is empty.
  std::string path(const std::string& key, const std::string& relative) const;
  // Like path(), and the file must exist: ConfigError naming the key and the file otherwise.
  std::string input_path(const std::string& key, const std::string& relative) const;
  // Attributes written on every HDF5 file a stage writes.
  h5::Attributes provenance() const;
  // Compute threads for this rank (run.threads, or cores / ranks on the node).
  int threads() const;
};

std::string dsir_version();  // "0.1.0 (commit)"
// Resolves a file that must exist; names `what` (a config key or flag) in the error.
void require_file(const std::string& path, const std::string& what);

}  // namespace dsir
