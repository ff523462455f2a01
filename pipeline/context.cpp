#include "pipeline/context.h"

#include <ctime>
#include <filesystem>
#include <thread>

#include "pipeline/errors.h"
#include "pipeline/registry.h"
#include "pipeline/utc_time.h"
#include "pipeline/version.h"

namespace dsir {

std::string dsir_version() { return std::string(DSIR_VERSION) + " (" + DSIR_GIT_COMMIT + ")"; }

void require_file(const std::string& path, const std::string& what) {
  if (path.empty()) throw ConfigError(what + ": no file given");
  if (!std::filesystem::exists(path)) throw ConfigError(what + ": file '" + path + "' does not exist");
}

std::string Context::path(const std::string& key, const std::string& relative) const {
  const std::string& given = config.get_string(key);
  if (!given.empty()) return given;
  return (std::filesystem::path(run_dir()) / relative).lexically_normal().string();
}

std::string Context::input_path(const std::string& key, const std::string& relative) const {
  std::string p = path(key, relative);
  require_file(p, key);
  return p;
}

h5::Attributes Context::provenance() const {
  h5::Attributes a;
  a["dsir_version"] = dsir_version();
  a["config"] = config.to_yaml();
  a["config_hash"] = config.hash();
  a["config_source"] = config.source();
  std::string ov;
  for (const auto& o : config.overrides()) ov += (ov.empty() ? "" : " ") + o;
  a["overrides"] = ov;
  a["hdf5_version"] = h5::hdf5_version();
  a["mpi_version"] = mpi.library_version();
  a["mpi_ranks"] = std::to_string(mpi.size());
  for (const auto& [k, v] : provenance_items()) a[k] = v;
  a["created_utc"] = utc_now();
  return a;
}

int Context::threads() const {
  int64_t t = config.get_int("run.threads");
  if (t > 0) return static_cast<int>(t);
  int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const char* local = std::getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
  if (!local) local = std::getenv("SLURM_NTASKS_PER_NODE");
  int per_node = local ? std::max(1, std::atoi(local)) : 1;
  return std::max(1, cores / per_node);
}

}  // namespace dsir
