#pragma once
// Checkpoints and models in HDF5 (docs/data-format.md): /state/<pytorch key> for parameters and
// buffers, /optimizer/{exp_avg,exp_avg_sq}/<key>, metadata as attributes. Readable by h5py,
// independent of the LibTorch version.
#include <memory>
#include <string>

#include "pipeline/formats/checkpoint_meta.h"
#include "pipeline/h5store.h"
#include "stages/train/models/emitter_net.h"

namespace dsir {

class Adam;

void save_checkpoint(const std::string& path, EmitterNetImpl& model, Adam* optimizer, const ModelMeta& meta,
                     const h5::Attributes& provenance);

// Creates the model named in the file, loads /state (or `group`), returns it with its metadata.
std::shared_ptr<EmitterNetImpl> load_model(const std::string& path, ModelMeta* meta);
// Loads parameters and buffers from `group` (one dataset per PyTorch key) into `model`;
// InputError naming the key on a missing dataset or a shape mismatch.
void load_state(const h5::File& file, const std::string& group, EmitterNetImpl& model);
void load_optimizer(const std::string& path, EmitterNetImpl& model, Adam& optimizer);

// A stable checksum of the model's parameters and buffers (hex), for shard provenance.
std::string model_checksum(EmitterNetImpl& model);

}  // namespace dsir
