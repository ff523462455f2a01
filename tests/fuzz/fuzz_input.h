#pragma once
// The readers take file names, so a fuzz input becomes a file: an in-memory one (memfd), named
// /proc/self/fd/N, which libtiff, HDF5 and std::ifstream open like any path. Nothing touches disk,
// and a process reuses its files, so millions of runs leave nothing behind.
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace dsir::fuzz {

class MemoryFile {
 public:
  explicit MemoryFile(const char* name) : fd_(memfd_create(name, 0)) {
    if (fd_ < 0) {
      std::perror("memfd_create");
      std::abort();
    }
    path_ = "/proc/self/fd/" + std::to_string(fd_);
  }
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
  int fd_;
  std::string path_;
};

}  // namespace dsir::fuzz
