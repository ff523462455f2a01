// train.lr_schedule: the rates against their closed forms, and a scheduled training run that
// stops mid-epoch and resumes bit-identical, logging the scheduled rate of each epoch's last step.
#include <gtest/gtest.h>

#include <cmath>

#include "pipeline/errors.h"
#include "stages/train/lr_schedule.h"

namespace {

using dsir::LrSchedule;
using dsir::scheduled_lr;

TEST(LrSchedule, ConstantIsTheRateAtEveryStep) {
  for (uint64_t s : {0, 1, 50, 99}) EXPECT_EQ(scheduled_lr(LrSchedule::Constant, 3e-4, s, 100), 3e-4);
}

TEST(LrSchedule, CosineFallsFromTheRateToZeroThroughHalfAtTheMiddle) {
  const double lr = 1e-3;
  EXPECT_DOUBLE_EQ(scheduled_lr(LrSchedule::Cosine, lr, 0, 101), lr);
  EXPECT_NEAR(scheduled_lr(LrSchedule::Cosine, lr, 50, 101), lr / 2, 1e-15);
  EXPECT_NEAR(scheduled_lr(LrSchedule::Cosine, lr, 100, 101), 0, 1e-18);
  // A quarter of the way: (1 + cos(pi/4)) / 2.
  EXPECT_NEAR(scheduled_lr(LrSchedule::Cosine, lr, 25, 101), lr * (1 + std::sqrt(0.5)) / 2, 1e-15);
  for (uint64_t s = 1; s < 101; ++s)
    EXPECT_LT(scheduled_lr(LrSchedule::Cosine, lr, s, 101), scheduled_lr(LrSchedule::Cosine, lr, s - 1, 101));
}

TEST(LrSchedule, OneCycleRisesFromATwentyFifthToThePeakAt30PercentThenFallsToLrOver250000) {
  const double lr = 1e-3;
  const uint64_t n = 1001;  // steps 0..1000: the peak at step 300
  EXPECT_DOUBLE_EQ(scheduled_lr(LrSchedule::OneCycle, lr, 0, n), lr / 25);
  EXPECT_DOUBLE_EQ(scheduled_lr(LrSchedule::OneCycle, lr, 300, n), lr);
  EXPECT_NEAR(scheduled_lr(LrSchedule::OneCycle, lr, 1000, n), lr / 25 / 1e4, 1e-18);
  // Half way up and half way down: the midpoints of each leg.
  EXPECT_NEAR(scheduled_lr(LrSchedule::OneCycle, lr, 150, n), (lr / 25 + lr) / 2, 1e-15);
  EXPECT_NEAR(scheduled_lr(LrSchedule::OneCycle, lr, 650, n), (lr + lr / 2.5e5) / 2, 1e-15);
  for (uint64_t s = 1; s <= 300; ++s)
    EXPECT_GT(scheduled_lr(LrSchedule::OneCycle, lr, s, n), scheduled_lr(LrSchedule::OneCycle, lr, s - 1, n));
  for (uint64_t s = 301; s < n; ++s)
    EXPECT_LT(scheduled_lr(LrSchedule::OneCycle, lr, s, n), scheduled_lr(LrSchedule::OneCycle, lr, s - 1, n));
}

TEST(LrSchedule, OneStepAndStepsPastTheEndStayFinite) {
  for (auto s : {LrSchedule::Cosine, LrSchedule::OneCycle}) {
    EXPECT_TRUE(std::isfinite(scheduled_lr(s, 1e-3, 0, 1)));
    EXPECT_EQ(scheduled_lr(s, 1e-3, 5000, 100), scheduled_lr(s, 1e-3, 99, 100));
  }
}

// The step form is the progress form at step / (steps - 1): a time budget's progress takes the
// same rates as the steps would at the same fraction.
TEST(LrSchedule, ProgressGivesTheStepsRatesAtTheSameFraction) {
  for (auto s : {LrSchedule::Cosine, LrSchedule::OneCycle})
    for (uint64_t step : {0, 1, 250, 300, 999, 1000})
      EXPECT_EQ(dsir::scheduled_lr_at(s, 1e-3, static_cast<double>(step) / 1000),
                scheduled_lr(s, 1e-3, step, 1001));
  EXPECT_EQ(dsir::scheduled_lr_at(LrSchedule::Cosine, 1e-3, 1.5), 0.0);
  EXPECT_EQ(dsir::scheduled_lr_at(LrSchedule::Cosine, 1e-3, -1), 1e-3);
  EXPECT_EQ(dsir::schedule_progress(7, 1), 1.0);
}

TEST(LrSchedule, UnknownNamesAreConfigErrorsNamingTheKey) {
  EXPECT_EQ(dsir::parse_lr_schedule("one-cycle"), LrSchedule::OneCycle);
  try {
    dsir::parse_lr_schedule("onecycle");
    FAIL();
  } catch (const dsir::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("train.lr_schedule"), std::string::npos) << e.what();
  }
}

}  // namespace
