#pragma once
// Logging: rank 0 prints (print/warn); all_print is for rank-specific messages and tags the rank.
// A run additionally mirrors everything rank 0 prints into <run dir>/dsir.log.
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdint>
#include <string>

namespace dsir::log {

void init(int rank, int size, bool verbose = false);
void add_file(const std::string& path);  // rank 0 only; appends
spdlog::logger& root();                  // writes on rank 0 only
spdlog::logger& every_rank();            // writes on every rank, tagged "[rank N]"

template <class... A>
void print(spdlog::format_string_t<A...> f, A&&... a) {
  root().info(f, std::forward<A>(a)...);
}
template <class... A>
void warn(spdlog::format_string_t<A...> f, A&&... a) {
  root().warn(f, std::forward<A>(a)...);
}
template <class... A>
void debug(spdlog::format_string_t<A...> f, A&&... a) {
  root().debug(f, std::forward<A>(a)...);
}
// Prints each non-empty line of `text` (rank 0 only), at info level or, with `debug`, as debug
// lines (shown with --verbose), each after `indent`.
void print_lines(const std::string& text, bool debug = false, const std::string& indent = "");

template <class... A>
void all_print(spdlog::format_string_t<A...> f, A&&... a) {
  every_rank().info(f, std::forward<A>(a)...);
}

}  // namespace dsir::log

namespace dsir {

// "ETA 3 min 12 s": the time left at the rate so far, for progress lines; "" before any work is
// done (no rate yet) or once all is.
std::string eta_text(uint64_t done, uint64_t total, double elapsed_s);

// Progress of long work, shown by rank 0: a bar on a terminal, otherwise a log line every
// `interval` seconds and at the end (Slurm logs stay readable).
class Progress {
 public:
  Progress(std::string label, uint64_t total, std::string unit = "frames");
  ~Progress();
  void add(uint64_t n = 1);  // counts this rank's own work, scaled by `scale` (see below)
  void set(uint64_t done);
  void finish();
  // Work split over R ranks advances R times faster than one rank sees; rank 0 multiplies.
  void set_scale(double scale) { scale_ = scale; }

 private:
  void show(bool final);
  std::string label_, unit_;
  uint64_t total_, done_ = 0;
  double scale_ = 1.0;
  bool tty_, active_, finished_ = false;
  std::chrono::steady_clock::time_point start_, last_;
};

}  // namespace dsir
