#pragma once
// Raw frames -> emitter maps: DSIR's preprocessing (the upscale stage's function) on the fly,
// then the network, in batches, without gradients. Used by `infer` and `predict`.
#include <memory>
#include <string>
#include <vector>

#include "stages/train/checkpoint.h"

namespace dsir {

class Predictor {
 public:
  // bn: "checkpoint" (the mode stored with the model), "running" or "per-frame".
  Predictor(const std::string& checkpoint, const std::string& bn, int batch_size);
  const ModelMeta& meta() const { return meta_; }
  const std::string& checksum() const { return checksum_; }
  BnMode bn_mode() const;
  // `count` raw frames (height x width each) -> count x (f·height) x (f·width) network outputs.
  // The dataset statistics are used only by models trained with global normalisation.
  std::vector<float> predict(const float* raw, int64_t count, int height, int width,
                             double global_mean = 0, double global_std = 1);

 private:
  std::shared_ptr<EmitterNetImpl> model_;
  ModelMeta meta_;
  std::string checksum_;
  int batch_size_;
};

}  // namespace dsir
