// A fault injector for tests, loaded with LD_PRELOAD: once DSIR_FAULT_ENOSPC_AFTER bytes have been
// written to regular files, every further write to a regular file fails with ENOSPC, as on a full
// disk (terminals, pipes and the standard streams are left alone, so the error can be read).
#include <dlfcn.h>
#include <errno.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#include <atomic>
#include <climits>
#include <cstdlib>

namespace {

std::atomic<long long> budget{-1};

// Whether a write of n bytes to fd finds the disk full (and, if not, takes them from the budget).
bool disk_full(int fd, size_t n) {
  if (budget.load() == -1) {
    const char* limit = std::getenv("DSIR_FAULT_ENOSPC_AFTER");
    long long expected = -1;
    budget.compare_exchange_strong(expected, limit ? std::atoll(limit) : LLONG_MAX);
  }
  struct stat st;
  if (fd <= 2 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) return false;
  if (budget.fetch_sub(static_cast<long long>(n)) < static_cast<long long>(n)) {
    budget.store(0);
    errno = ENOSPC;
    return true;
  }
  return false;
}

template <class F>
F real(const char* name) {
  return reinterpret_cast<F>(dlsym(RTLD_NEXT, name));
}

}  // namespace

extern "C" {

ssize_t write(int fd, const void* buf, size_t n) {
  static const auto next = real<ssize_t (*)(int, const void*, size_t)>("write");
  return disk_full(fd, n) ? -1 : next(fd, buf, n);
}

ssize_t pwrite(int fd, const void* buf, size_t n, off_t offset) {
  static const auto next = real<ssize_t (*)(int, const void*, size_t, off_t)>("pwrite");
  return disk_full(fd, n) ? -1 : next(fd, buf, n, offset);
}

ssize_t pwrite64(int fd, const void* buf, size_t n, off64_t offset) {
  static const auto next = real<ssize_t (*)(int, const void*, size_t, off64_t)>("pwrite64");
  return disk_full(fd, n) ? -1 : next(fd, buf, n, offset);
}

ssize_t writev(int fd, const struct iovec* iov, int count) {
  static const auto next = real<ssize_t (*)(int, const struct iovec*, int)>("writev");
  size_t n = 0;
  for (int i = 0; i < count; ++i) n += iov[i].iov_len;
  return disk_full(fd, n) ? -1 : next(fd, iov, count);
}

}  // extern "C"
