#pragma once
// Outputs are written under a temporary name in the destination folder and renamed when
// complete, so a crash or an error never leaves a half-written file under the final name.
#include <string>

namespace dsir {

class AtomicPath {
 public:
  explicit AtomicPath(std::string final_path);  // creates the parent folder
  ~AtomicPath();                                // removes the temporary if not committed
  AtomicPath(const AtomicPath&) = delete;
  AtomicPath& operator=(const AtomicPath&) = delete;

  const std::string& tmp() const { return tmp_; }
  const std::string& final_path() const { return final_; }
  void commit();  // rename tmp -> final (atomic on POSIX within one filesystem)

 private:
  std::string final_;
  std::string tmp_;
  bool committed_ = false;
};

// Writes text to `path` atomically.
void write_text_file(const std::string& path, const std::string& text);
std::string read_text_file(const std::string& path);
void make_parent_dirs(const std::string& path);

// This machine's name, and whether a process of this machine has ended: how leftovers (temporary
// files, locks) of a killed process are told from those of a live one.
std::string host_name();
bool process_has_ended(long pid);

}  // namespace dsir
