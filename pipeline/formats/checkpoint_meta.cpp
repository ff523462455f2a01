#include "pipeline/formats/checkpoint_meta.h"

#include <fmt/format.h>

#include <cmath>
#include <limits>

#include "pipeline/errors.h"

namespace dsir {

ModelMeta read_model_meta(const h5::File& f) {
  if (!f.has("/state") || !f.has_attr("/", "arch"))
    throw InputError(f.path() + ": not a dsir model/checkpoint (missing /state or the arch attribute)");
  // Counts beyond 2^53 cannot come from a run; the bound keeps the int64 conversions defined.
  constexpr int64_t kMaxCount = int64_t(1) << 53;
  ModelMeta m;
  m.arch = f.attr_string("/", "arch");
  m.bn_mode = f.attr_string("/", "bn_mode");
  m.label_scale = f.attr_double("/", "label_scale");
  m.factor = static_cast<int>(f.attr_int("/", "factor", 1, 32));  // upscale.factor's range
  m.raw_pixel_size_nm = f.attr_double("/", "raw_pixel_size_nm");
  if (!(m.raw_pixel_size_nm > 0) || !std::isfinite(m.raw_pixel_size_nm))
    throw InputError(f.path() + ": attribute raw_pixel_size_nm must be a finite number > 0, got " +
                     std::to_string(m.raw_pixel_size_nm));
  m.normalize = f.attr_string("/", "normalize");
  m.epoch = f.attr_int("/", "epoch", 0, kMaxCount);
  m.step = f.attr_int("/", "step", 0, kMaxCount);
  m.val_loss = f.attr_double("/", "val_loss");
  // Absent in imported models.
  if (f.has_attr("/", "step_in_epoch")) m.step_in_epoch = f.attr_int("/", "step_in_epoch", 0, kMaxCount);
  if (f.has_attr("/", "epoch_loss_sum")) m.epoch_loss_sum = f.attr_double("/", "epoch_loss_sum");
  if (f.has_attr("/", "best_val_loss")) m.best_val_loss = f.attr_double("/", "best_val_loss");
  if (f.has_attr("/", "epochs_since_best"))
    m.epochs_since_best = f.attr_int("/", "epochs_since_best", 0, kMaxCount);
  // Absent in older models and imported weights: 0 (none).
  const auto optional_in_range = [&f](const char* name, double& value, double max) {
    if (!f.has_attr("/", name)) return;
    value = f.attr_double("/", name);
    if (!(value >= 0 && value <= max) || !std::isfinite(value))
      throw InputError(fmt::format("{}: attribute {} must be a finite number in [0, {}], got {}", f.path(),
                                   name, max, value));
  };
  constexpr double kUnbounded = std::numeric_limits<double>::infinity();
  optional_in_range("localize_threshold", m.localize_threshold, kUnbounded);
  optional_in_range("localize_emitter_mass", m.localize_emitter_mass, kUnbounded);
  optional_in_range("schedule_progress", m.schedule_progress, 1);
  return m;
}

}  // namespace dsir
