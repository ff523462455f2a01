#pragma once
// A lock file that keeps two jobs from writing one output folder at once (infer's shards). It
// records its holder (host, PID, start time) for the message the second job gets. The kernel
// lock (flock) ends with its process, so a killed holder never blocks the folder: its recorded
// PID has ended and the next job of that host takes the lock over, saying so. A lock recorded by
// another host cannot be checked from here and is refused with advice.
#include <string>

namespace dsir {

class FolderLock {
 public:
  // Takes the lock file `path` for `job` (e.g. "dsir infer"), creating its folder. Error naming
  // the lock file, its holder and what to do when another job holds it.
  FolderLock(const std::string& path, const std::string& job);
  ~FolderLock();  // removes the lock file
  FolderLock(const FolderLock&) = delete;
  FolderLock& operator=(const FolderLock&) = delete;

  // The holder whose lock was taken over (a process of this host that had ended), '' if none.
  const std::string& took_over() const { return took_over_; }

 private:
  std::string path_;
  int fd_ = -1;
  std::string took_over_;
};

}  // namespace dsir
