#include "pipeline/atomic_file.h"

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>

#include "pipeline/errors.h"
#include "pipeline/log.h"

namespace fs = std::filesystem;

namespace dsir {

void make_parent_dirs(const std::string& path) {
  fs::path parent = fs::path(path).parent_path();
  if (parent.empty()) return;
  std::error_code ec;
  fs::create_directories(parent, ec);
  if (ec) throw Error("cannot create folder '" + parent.string() + "': " + ec.message());
}

std::string host_name() {
  char name[256] = {};
  if (gethostname(name, sizeof name - 1) != 0) return "unknown-host";
  return name;
}

bool process_has_ended(long pid) {
  return pid > 0 && kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH;
}

namespace {

// Removes the temporary files that processes of this host left in folder when they died (killed,
// or out of memory): ".NAME.tmp.HOST.PID" with this host's name and a PID no process has. Files
// of other hosts (a shared filesystem) and of live processes are left alone. Once per folder per
// process.
void remove_stale_temporaries(const fs::path& folder) {
  static std::mutex mutex;
  static std::set<std::string> done;
  {
    const std::lock_guard<std::mutex> lock(mutex);
    if (!done.insert(folder.string()).second) return;
  }
  const std::string mark = ".tmp." + host_name() + ".";
  std::error_code ec;
  for (fs::directory_iterator it(folder.empty() ? "." : folder, ec), end; !ec && it != end;
       it.increment(ec)) {
    const std::string name = it->path().filename().string();
    const size_t at = name.rfind(mark);
    if (name.empty() || name[0] != '.' || at == std::string::npos) continue;
    const std::string pid_text = name.substr(at + mark.size());
    if (pid_text.empty() || pid_text.find_first_not_of("0123456789") != std::string::npos) continue;
    const pid_t pid = static_cast<pid_t>(std::stol(pid_text));
    if (pid == getpid() || !process_has_ended(pid)) continue;
    std::error_code removed;
    if (fs::remove(it->path(), removed))
      log::all_print("removed {}, a temporary file left by process {} of this host, which has ended",
                     it->path().string(), pid);
  }
}

}  // namespace

AtomicPath::AtomicPath(std::string final_path) : final_(std::move(final_path)) {
  make_parent_dirs(final_);
  fs::path p(final_);
  remove_stale_temporaries(p.parent_path());
  // Same folder as the destination (rename is atomic only within one filesystem); host and pid
  // keep ranks writing different files apart and mark the leftovers of a process that died.
  const std::string suffix = ".tmp." + host_name() + "." + std::to_string(getpid());
  tmp_ = (p.parent_path() / ("." + p.filename().string() + suffix)).string();
}

AtomicPath::~AtomicPath() {
  if (!committed_) std::remove(tmp_.c_str());
}

void AtomicPath::commit() {
  std::error_code ec;
  fs::rename(tmp_, final_, ec);
  if (ec) throw Error("cannot rename '" + tmp_ + "' to '" + final_ + "': " + ec.message());
  committed_ = true;
}

void write_text_file(const std::string& path, const std::string& text) {
  AtomicPath out(path);
  {
    std::ofstream f(out.tmp(), std::ios::binary);
    f << text;
    f.close();
    if (!f) throw Error("cannot write '" + path + "'");
  }
  out.commit();
}

std::string read_text_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw InputError("cannot open '" + path + "'");
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

}  // namespace dsir
