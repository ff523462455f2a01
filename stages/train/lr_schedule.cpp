#include "stages/train/lr_schedule.h"

#include <algorithm>
#include <cmath>

#include "pipeline/errors.h"

namespace dsir {

LrSchedule parse_lr_schedule(const std::string& name) {
  if (name == "constant") return LrSchedule::Constant;
  if (name == "cosine") return LrSchedule::Cosine;
  if (name == "one-cycle") return LrSchedule::OneCycle;
  throw ConfigError("train.lr_schedule: '" + name + "': expected constant, cosine or one-cycle");
}

namespace {

// From `from` at p = 0 to `to` at p = 1 along half a cosine.
double cosine_between(double from, double to, double p) {
  return to + (from - to) * 0.5 * (1 + std::cos(M_PI * std::clamp(p, 0.0, 1.0)));
}

}  // namespace

double schedule_progress(uint64_t step, uint64_t total_steps) {
  const double last = total_steps > 1 ? static_cast<double>(total_steps - 1) : 1.0;
  return std::min(static_cast<double>(step), last) / last;
}

double scheduled_lr_at(LrSchedule schedule, double lr, double progress) {
  const double p = std::clamp(progress, 0.0, 1.0);
  switch (schedule) {
    case LrSchedule::Constant:
      return lr;
    case LrSchedule::Cosine:
      return cosine_between(lr, 0.0, p);
    case LrSchedule::OneCycle: {
      const double start = lr / 25, end = start / 1e4, peak_at = 0.3;
      return p <= peak_at ? cosine_between(start, lr, p / peak_at)
                          : cosine_between(lr, end, (p - peak_at) / (1 - peak_at));
    }
  }
  return lr;
}

double scheduled_lr(LrSchedule schedule, double lr, uint64_t step, uint64_t total_steps) {
  return scheduled_lr_at(schedule, lr, schedule_progress(step, total_steps));
}

}  // namespace dsir
