#pragma once
// The learning rate as a function of how far training is (train.lr_schedule): of the step, so
// that a resumed run takes the same rates as an uninterrupted one, or, under a time limit, of the
// budget spent where that is further along (stages/train/README.md).
#include <cstdint>
#include <string>

namespace dsir {

enum class LrSchedule { Constant, Cosine, OneCycle };
LrSchedule parse_lr_schedule(const std::string& name);  // ConfigError naming train.lr_schedule

// The rate of step `step` (0-based) of `total_steps` for peak rate `lr`:
//   constant   lr
//   cosine     lr -> 0 along half a cosine (Loshchilov & Hutter, SGDR, ICLR 2017; no restarts)
//   one-cycle  lr/25 -> lr over the first 30 % of the steps, then -> lr/2.5e5, each along half a
//              cosine (Smith & Topin 2019; PyTorch's OneCycleLR defaults, without its momentum
//              cycling). The first step takes the start rate, the last the end rate.
double scheduled_lr(LrSchedule schedule, double lr, uint64_t step, uint64_t total_steps);

// How far step `step` of `total_steps` is along the schedule: 0 at the first step, 1 at the last.
double schedule_progress(uint64_t step, uint64_t total_steps);
// The rate at `progress` along the schedule (clamped to [0, 1]).
double scheduled_lr_at(LrSchedule schedule, double lr, double progress);

}  // namespace dsir
