#include "pipeline/atomic_file.h"

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "pipeline/errors.h"

namespace fs = std::filesystem;

namespace dsir {

void make_parent_dirs(const std::string& path) {
  fs::path parent = fs::path(path).parent_path();
  if (parent.empty()) return;
  std::error_code ec;
  fs::create_directories(parent, ec);
  if (ec) throw Error("cannot create folder '" + parent.string() + "': " + ec.message());
}

AtomicPath::AtomicPath(std::string final_path) : final_(std::move(final_path)) {
  make_parent_dirs(final_);
  fs::path p(final_);
  // Same folder as the destination (rename is atomic only within one filesystem); the pid keeps
  // ranks writing different files apart and marks leftovers of a killed process.
  tmp_ = (p.parent_path() / ("." + p.filename().string() + ".tmp" + std::to_string(getpid())))
             .string();
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
