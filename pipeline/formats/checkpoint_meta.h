#pragma once
// A model's or checkpoint's metadata (the root attributes, docs/data-format.md), read without
// LibTorch so that it can be validated, tested and fuzzed on its own (tests/fuzz).
#include <cstdint>
#include <string>

#include "pipeline/h5store.h"

namespace dsir {

struct ModelMeta {
  std::string arch = "dsir";
  std::string bn_mode = "running";  // default BatchNorm mode at inference
  double label_scale = 1.0;
  int factor = 8;
  double raw_pixel_size_nm = 100;  // camera pixel size the model was trained for
  std::string normalize = "per-frame";
  int64_t epoch = 0, step = 0;    // complete epochs; optimizer steps
  int64_t step_in_epoch = 0;      // steps into the next epoch (a checkpoint taken on a signal)
  double epoch_loss_sum = 0;      // that partial epoch's training-loss sum
  double best_val_loss = 0;       // best validation loss so far (checkpoints)
  int64_t epochs_since_best = 0;  // reduce-on-plateau bookkeeping (checkpoints)
  // How far train.time_limit_min's budget had moved train.lr_schedule, in [0, 1] (checkpoints;
  // 0 without a time limit).
  double schedule_progress = 0;
  double val_loss = 0;
  // The localization threshold chosen at training from validation items (stages/train/threshold.h);
  // 0: none (imported weights, checkpoints, models from upscaled.h5).
  double localize_threshold = 0;
  // One emitter's mass in a peak's window, chosen with the threshold (stages/infer/localize.h);
  // 0: one localization per peak (and models without the attribute).
  double localize_emitter_mass = 0;
};

// The root attributes of a model or checkpoint file. InputError naming the file and attribute
// when one is missing or out of range (a factor of NaN or 1e300 is not converted to int).
ModelMeta read_model_meta(const h5::File& file);

}  // namespace dsir
