#pragma once
// Checkpoints and models in HDF5 (docs/data-format.md): /state/<pytorch key> for parameters and
// buffers, /optimizer/{exp_avg,exp_avg_sq}/<key>, metadata as attributes. Readable by h5py,
// independent of the LibTorch version.
#include <memory>
#include <string>

#include "pipeline/h5store.h"
#include "stages/train/models/emitter_net.h"

namespace dsir {

class Adam;

struct ModelMeta {
  std::string arch = "dsir";
  std::string bn_mode = "running";  // default BatchNorm mode at inference
  double label_scale = 1.0;
  int factor = 8;
  double raw_pixel_size_nm = 100;   // camera pixel size the model was trained for
  std::string normalize = "per-frame";
  int64_t epoch = 0, step = 0;     // complete epochs; optimizer steps
  int64_t step_in_epoch = 0;        // steps into the next epoch (a checkpoint taken on a signal)
  double epoch_loss_sum = 0;        // that partial epoch's training-loss sum
  double best_val_loss = 0;         // best validation loss so far (checkpoints)
  int64_t epochs_since_best = 0;    // reduce-on-plateau bookkeeping (checkpoints)
  double val_loss = 0;
};

void save_checkpoint(const std::string& path, EmitterNetImpl& model, Adam* optimizer,
                     const ModelMeta& meta, const h5::Attributes& provenance);

// Creates the model named in the file, loads /state (or `group`), returns it with its metadata.
std::shared_ptr<EmitterNetImpl> load_model(const std::string& path, ModelMeta* meta);
// Loads parameters and buffers from `group` (one dataset per PyTorch key) into `model`;
// InputError naming the key on a missing dataset or a shape mismatch.
void load_state(const h5::File& file, const std::string& group, EmitterNetImpl& model);
void load_optimizer(const std::string& path, EmitterNetImpl& model, Adam& optimizer);

// A stable checksum of the model's parameters and buffers (hex), for shard provenance.
std::string model_checksum(EmitterNetImpl& model);

}  // namespace dsir
