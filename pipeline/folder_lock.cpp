#include "pipeline/folder_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <map>
#include <sstream>

#include "pipeline/atomic_file.h"
#include "pipeline/errors.h"
#include "pipeline/utc_time.h"

namespace dsir {
namespace {

// The lock file's text: "host=H\npid=P\nstarted=T\n".
std::map<std::string, std::string> parse(const std::string& text) {
  std::map<std::string, std::string> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    const size_t eq = line.find('=');
    if (eq != std::string::npos) out[line.substr(0, eq)] = line.substr(eq + 1);
  }
  return out;
}

std::string describe(const std::map<std::string, std::string>& holder) {
  auto get = [&](const char* k) {
    auto it = holder.find(k);
    return it == holder.end() || it->second.empty() ? std::string("?") : it->second;
  };
  return "host " + get("host") + ", PID " + get("pid") + ", started " + get("started");
}

std::string read_all(int fd) {
  std::string text;
  char buf[512];
  ssize_t n;
  off_t at = 0;
  while ((n = pread(fd, buf, sizeof buf, at)) > 0) {
    text.append(buf, static_cast<size_t>(n));
    at += n;
  }
  return text;
}

}  // namespace

FolderLock::FolderLock(const std::string& path, const std::string& job) : path_(path) {
  make_parent_dirs(path);
  const std::string advice = "wait for it to end or write to another folder";
  // A holder that ends removes the file; the loop makes sure the file locked is the one at `path`.
  for (int attempt = 0;; ++attempt) {
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) throw Error(path + ": cannot create the lock file: " + std::strerror(errno));
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
      const int err = errno;
      const std::string holder = describe(parse(read_all(fd)));
      ::close(fd);
      if (err == EWOULDBLOCK)
        throw Error(path + ": the folder is in use by another " + job + " (" + holder + "); " + advice);
      throw Error(path + ": cannot lock the file: " + std::strerror(err));
    }
    struct stat held {
    }, named{};
    if (fstat(fd, &held) == 0 && ::stat(path.c_str(), &named) == 0 && held.st_ino == named.st_ino &&
        held.st_dev == named.st_dev) {
      fd_ = fd;
      break;
    }
    ::close(fd);
    if (attempt == 100) throw Error(path + ": cannot take the lock (the file keeps being replaced)");
  }
  // The kernel lock is ours; a recorded holder is a process that ended without removing the file,
  // unless the filesystem does not share locks between hosts.
  const auto holder = parse(read_all(fd_));
  if (!holder.empty()) {
    const bool this_host = holder.count("host") && holder.at("host") == host_name();
    const long pid = holder.count("pid") ? std::atol(holder.at("pid").c_str()) : 0;
    if (this_host && process_has_ended(pid)) {
      took_over_ = describe(holder);
    } else {
      ::close(fd_);
      fd_ = -1;
      throw Error(path + ": the folder is locked by another " + job + " (" + describe(holder) + ")" +
                  (this_host ? "" : ", which cannot be checked from host " + host_name()) +
                  "; if that job is no longer running, remove the lock file, else " + advice);
    }
  }
  const std::string text =
      "host=" + host_name() + "\npid=" + std::to_string(getpid()) + "\nstarted=" + utc_now() + "\n";
  if (ftruncate(fd_, 0) != 0 ||
      pwrite(fd_, text.data(), text.size(), 0) != static_cast<ssize_t>(text.size())) {
    const std::string reason = std::strerror(errno);
    ::unlink(path.c_str());
    ::close(fd_);
    fd_ = -1;
    throw Error(path + ": cannot write the lock file: " + reason);
  }
}

FolderLock::~FolderLock() {
  if (fd_ < 0) return;
  ::unlink(path_.c_str());  // before unlocking: a waiting job then creates a fresh file
  ::close(fd_);
}

}  // namespace dsir
