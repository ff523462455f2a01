#include "stages/infer/plan.h"

#include <fmt/format.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <set>

#include "pipeline/errors.h"
#include "pipeline/inputs.h"

namespace fs = std::filesystem;

namespace dsir {

std::vector<std::string> resolve_inputs(const std::vector<std::string>& entries,
                                        std::vector<std::string>* repeated) {
  std::vector<std::string> files;
  try {
    files = expand_inputs(entries);
  } catch (const InputError& e) {
    throw ConfigError(std::string("infer.input: ") + e.what());
  }
  std::vector<std::string> out;
  std::set<std::string> seen;
  for (const auto& f : files) {
    if (!fs::is_regular_file(f))
      throw ConfigError("infer.input: file '" + f + "' does not exist (or is not a file)");
    const std::string abs = fs::absolute(f).lexically_normal().string();
    if (seen.insert(abs).second) {
      out.push_back(abs);
    } else if (repeated) {
      repeated->push_back(abs);
    }
  }
  return out;
}

std::vector<std::string> acquisition_names(const std::vector<std::string>& paths) {
  std::vector<std::string> names;
  for (const auto& p : paths) names.push_back(fs::path(p).stem().string());
  auto first_repeat = [](std::vector<std::string> v) -> std::string {
    std::sort(v.begin(), v.end());
    auto it = std::adjacent_find(v.begin(), v.end());
    return it == v.end() ? "" : *it;
  };
  if (first_repeat(names).empty()) return names;
  fs::path common = fs::path(paths.front()).parent_path();
  for (const auto& p : paths) {
    const fs::path parent = fs::path(p).parent_path();
    while (!common.empty() && parent.lexically_relative(common).string().rfind("..", 0) == 0)
      common = common.parent_path();
  }
  names.clear();
  for (const auto& p : paths) {
    std::string rel = fs::path(p).lexically_relative(common).replace_extension().string();
    std::replace(rel.begin(), rel.end(), '/', '_');
    names.push_back(rel);
  }
  const std::string clash = first_repeat(names);
  if (!clash.empty())
    throw ConfigError("infer.input: two inputs map to the same acquisition name '" + clash +
                      "'; rename or move one of them");
  return names;
}

std::vector<ShardTask> make_shards(const std::vector<Acquisition>& acquisitions, uint64_t shard_frames) {
  std::vector<ShardTask> shards;
  for (size_t a = 0; a < acquisitions.size(); ++a)
    for (uint64_t f = 0, k = 0; f < acquisitions[a].frames; f += shard_frames, ++k)
      shards.push_back({a, k, f, std::min(shard_frames, acquisitions[a].frames - f)});
  return shards;
}

std::string shard_path(const std::string& out_dir, const std::string& acquisition, uint64_t index) {
  return fmt::format("{}/{}/shard-{:05d}.h5", out_dir, acquisition, index);
}

std::string file_stat(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0)
    throw InputError(path + ": cannot examine the file: " + std::strerror(errno));
  return fmt::format("{} bytes, modified {}.{:09d}", static_cast<long long>(st.st_size),
                     static_cast<long long>(st.st_mtim.tv_sec), static_cast<long>(st.st_mtim.tv_nsec));
}

namespace {
// Length-prefixed fields: any byte may appear in a path or in JSON.
void put(std::string& out, const std::string& field) { out += std::to_string(field.size()) + ":" + field; }
std::string take(const std::string& in, size_t& pos) {
  const size_t colon = in.find(':', pos);
  if (colon == std::string::npos) throw Error("internal: truncated inference plan");
  const size_t n = std::stoull(in.substr(pos, colon - pos));
  std::string field = in.substr(colon + 1, n);
  pos = colon + 1 + n;
  return field;
}
}  // namespace

std::string pack(const std::vector<Acquisition>& acquisitions) {
  std::string out;
  put(out, std::to_string(acquisitions.size()));
  for (const auto& a : acquisitions) {
    put(out, a.name);
    put(out, a.path);
    put(out, std::to_string(a.frames));
    put(out, std::to_string(a.height));
    put(out, std::to_string(a.width));
    put(out, fmt::format("{}", a.pixel_size_nm));  // shortest round-trip form
    put(out, a.camera);
    put(out, a.stat);
  }
  return out;
}

std::vector<Acquisition> unpack(const std::string& bytes) {
  size_t pos = 0;
  const size_t n = std::stoull(take(bytes, pos));
  std::vector<Acquisition> out(n);
  for (auto& a : out) {
    a.name = take(bytes, pos);
    a.path = take(bytes, pos);
    a.frames = std::stoull(take(bytes, pos));
    a.height = std::stoi(take(bytes, pos));
    a.width = std::stoi(take(bytes, pos));
    a.pixel_size_nm = std::stod(take(bytes, pos));
    a.camera = take(bytes, pos);
    a.stat = take(bytes, pos);
  }
  return out;
}

std::string settings_hash(const std::string& text) {
  uint64_t h = 14695981039346656037ull;  // FNV-1a 64 offset basis
  for (unsigned char c : text) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return fmt::format("{:016x}", h);
}

ShardInfo shard_identity(const Acquisition& acquisition, const ShardTask& shard,
                         const std::string& model_checksum, const std::string& settings) {
  ShardInfo info;
  info.source_file = acquisition.path;
  info.source_stat = acquisition.stat;
  info.model_checksum = model_checksum;
  info.settings_hash = settings_hash(settings);
  info.frame_range = fmt::format("{}:{}", shard.first, shard.first + shard.count);
  return info;
}

size_t remove_stale_shards(const std::string& folder, uint64_t shards) {
  std::error_code ec;
  if (!fs::is_directory(folder, ec)) return 0;
  size_t removed = 0;
  for (const auto& e : fs::directory_iterator(folder)) {
    const std::string n = e.path().filename().string();
    bool stale = n.rfind(".shard-", 0) == 0 && n.find(".tmp") != std::string::npos;
    unsigned long long index = 0;
    char tail[8] = {};
    if (std::sscanf(n.c_str(), "shard-%llu%7s", &index, tail) == 2 && std::strcmp(tail, ".h5") == 0)
      stale = stale || index >= shards;
    if (stale && fs::remove(e.path(), ec)) ++removed;
  }
  return removed;
}

}  // namespace dsir
