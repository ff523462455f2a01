#include "pipeline/log.h"

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <exception>

namespace dsir::log {
namespace {
std::shared_ptr<spdlog::logger> g_root, g_all;
int g_rank = 0;

void ensure() {
  if (!g_root) init(0, 1);
}
}  // namespace

void init(int rank, int size, bool verbose) {
  g_rank = rank;
  // Separate sinks: a sink holds the formatter, and the two loggers format differently.
  g_root = std::make_shared<spdlog::logger>("dsir", std::make_shared<spdlog::sinks::stderr_sink_mt>());
  g_root->set_pattern("[%Y-%m-%d %H:%M:%S] %^%l%$: %v");
  g_root->set_level(rank == 0 ? (verbose ? spdlog::level::debug : spdlog::level::info) : spdlog::level::off);
  g_all = std::make_shared<spdlog::logger>("dsir-all", std::make_shared<spdlog::sinks::stderr_sink_mt>());
  g_all->set_pattern(fmt::format("[%Y-%m-%d %H:%M:%S] [rank {}/{}] %^%l%$: %v", rank, size));
  g_all->set_level(spdlog::level::info);
}

void add_file(const std::string& path) {
  ensure();
  if (g_rank != 0) return;
  auto file = std::make_shared<spdlog::sinks::basic_file_sink_mt>(path, false);
  file->set_pattern("[%Y-%m-%d %H:%M:%S] %l: %v");
  g_root->sinks().push_back(file);
  auto tagged = std::make_shared<spdlog::sinks::basic_file_sink_mt>(path, false);
  tagged->set_pattern(fmt::format("[%Y-%m-%d %H:%M:%S] [rank {}] %l: %v", g_rank));
  g_all->sinks().push_back(tagged);
}

void print_lines(const std::string& text, bool debug, const std::string& indent) {
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    if (end > start)
      root().log(debug ? spdlog::level::debug : spdlog::level::info, "{}{}", indent,
                 text.substr(start, end - start));
    start = end + 1;
  }
}

spdlog::logger& root() {
  ensure();
  return *g_root;
}
spdlog::logger& every_rank() {
  ensure();
  return *g_all;
}

}  // namespace dsir::log

namespace dsir {

Progress::Progress(std::string label, uint64_t total, std::string unit)
    : label_(std::move(label)), unit_(std::move(unit)), total_(total) {
  active_ = log::root().should_log(spdlog::level::info);
  tty_ = active_ && isatty(STDERR_FILENO);
  start_ = last_ = std::chrono::steady_clock::now();
}

Progress::~Progress() {
  // Unwinding from an error: say how far it got, not 100%.
  if (!finished_ && std::uncaught_exceptions() == 0) finish();
}

void Progress::add(uint64_t n) { set(done_ + n); }

void Progress::set(uint64_t done) {
  done_ = done;
  if (!active_) return;
  auto now = std::chrono::steady_clock::now();
  double since = std::chrono::duration<double>(now - last_).count();
  if ((tty_ && since > 0.1) || (!tty_ && since >= 10.0)) {
    last_ = now;
    show(false);
  }
}

void Progress::finish() {
  if (finished_) return;
  finished_ = true;
  if (!active_) return;
  show(true);
}

std::string eta_text(uint64_t done, uint64_t total, double elapsed_s) {
  if (done == 0 || done >= total || !(elapsed_s > 0)) return "";
  const double left = elapsed_s * static_cast<double>(total - done) / static_cast<double>(done);
  const auto s = static_cast<uint64_t>(std::llround(std::min(left, 1e9)));
  if (s < 60) return fmt::format("ETA {} s", s);
  if (s < 3600) return fmt::format("ETA {} min {:02d} s", s / 60, s % 60);
  return fmt::format("ETA {} h {:02d} min", s / 3600, (s % 3600) / 60);
}

void Progress::show(bool final) {
  double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  uint64_t shown = std::min<uint64_t>(total_, static_cast<uint64_t>(done_ * scale_ + 0.5));
  if (final) shown = total_;
  double frac = total_ ? static_cast<double>(shown) / static_cast<double>(total_) : 1.0;
  double rate = elapsed > 0 ? static_cast<double>(shown) / elapsed : 0.0;
  if (tty_) {
    const int width = 30;
    int filled = static_cast<int>(frac * width);
    std::string bar(static_cast<size_t>(filled), '#');
    bar.resize(width, '.');
    // While running: the time left; at the end: the time taken. Trailing spaces clear what a
    // longer previous line left on the terminal.
    const std::string eta = final ? "" : eta_text(shown, total_, elapsed);
    const std::string tail =
        final ? fmt::format(", {:.1f} s\n", elapsed) : (eta.empty() ? "" : ", " + eta) + "   ";
    std::fprintf(stderr, "\r%-10s [%s] %3.0f%% %llu/%llu %s, %.1f %s/s%s", label_.c_str(), bar.c_str(),
                 frac * 100, static_cast<unsigned long long>(shown), static_cast<unsigned long long>(total_),
                 unit_.c_str(), rate, unit_.c_str(), tail.c_str());
    std::fflush(stderr);
    if (final) {
      // The terminal already showed the bar; keep the log file complete too.
      for (auto& sink : log::root().sinks())
        if (dynamic_cast<spdlog::sinks::stderr_sink_mt*>(sink.get()) == nullptr)
          sink->log(spdlog::details::log_msg("dsir", spdlog::level::info,
                                             fmt::format("{}: {} {} in {:.1f} s ({:.1f} {}/s)", label_, shown,
                                                         unit_, elapsed, rate, unit_)));
    }
  } else {
    const std::string eta = final ? "" : eta_text(shown, total_, elapsed);
    log::print("{}: {}/{} {} ({:.0f}%), {:.1f} {}/s, {:.1f} s{}{}", label_, shown, total_, unit_, frac * 100,
               rate, unit_, elapsed, eta.empty() ? "" : ", ", eta);
  }
}

}  // namespace dsir
