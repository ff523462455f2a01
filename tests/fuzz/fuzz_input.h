#pragma once
// The readers take file names, so a fuzz input becomes a file: one on tmpfs (/dev/shm, else
// $TMPDIR or /tmp), rewritten for each input, that libtiff, HDF5 and std::ifstream open like any
// path, and removed when the fuzzer ends. Not a memfd: HDF5 1.10 resolves the real path of the
// file it opens (H5F__build_actual_name), and a memfd's /proc/self/fd/N leads to
// "/memfd:NAME (deleted)", so every HDF5 open failed and the HDF5 targets only ever fuzzed the
// refusal (tests/fuzz/check_seeds.sh now guards against that).
#include <fcntl.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace dsir::fuzz {

class MemoryFile {
 public:
  explicit MemoryFile(const char* name) {
    const char* tmp = std::getenv("TMPDIR");
    const std::string folder = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : (tmp && *tmp ? tmp : "/tmp");
    path_ = folder + "/" + name + "." + std::to_string(getpid());
    fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd_ < 0) {
      std::perror(path_.c_str());
      std::abort();
    }
  }
  ~MemoryFile() {
    ::close(fd_);
    ::unlink(path_.c_str());
  }
  MemoryFile(const MemoryFile&) = delete;
  MemoryFile& operator=(const MemoryFile&) = delete;

  // Replaces the content with `size` bytes and returns the file's name.
  const std::string& hold(const uint8_t* data, size_t size) {
    if (ftruncate(fd_, 0) != 0) std::abort();
    for (size_t done = 0; done < size;) {
      const ssize_t n = pwrite(fd_, data + done, size - done, static_cast<off_t>(done));
      if (n <= 0) std::abort();
      done += static_cast<size_t>(n);
    }
    return path_;
  }
  const std::string& hold(const std::string& text) {
    return hold(reinterpret_cast<const uint8_t*>(text.data()), text.size());
  }

 private:
  int fd_ = -1;
  std::string path_;
};

// With DSIR_FUZZ_VERBOSE set, each input's outcome goes to stderr: "dsir-fuzz: read" when the
// reader went to its end, "dsir-fuzz: refused: WHY" when it threw dsir's error. check_seeds.sh
// counts them, so that seeds which never get past the first check cannot go unnoticed.
inline bool verbose() {
  static const bool on = std::getenv("DSIR_FUZZ_VERBOSE") != nullptr;
  return on;
}
inline void report_read() {
  if (verbose()) std::fprintf(stderr, "dsir-fuzz: read\n");
}
inline void report_refused(const char* why) {
  if (verbose()) std::fprintf(stderr, "dsir-fuzz: refused: %s\n", why);
}

}  // namespace dsir::fuzz
