#include "stages/train/models/checkpoint.h"

#include <ATen/ops/from_blob.h>
#include <torch/csrc/autograd/grad_mode.h>

#include <cstdio>
#include <cstring>

#include "pipeline/errors.h"
#include "pipeline/log.h"
#include "stages/train/adam.h"
#include "stages/train/models/model_registry.h"

namespace dsir {
namespace {

h5::Dims dims_of(const torch::Tensor& t) {
  h5::Dims d;
  for (auto s : t.sizes()) d.push_back(static_cast<uint64_t>(s));
  if (d.empty()) d.push_back(1);
  return d;
}

void write_tensor(h5::File& f, const std::string& name, const torch::Tensor& t) {
  torch::Tensor c = t.detach().to(torch::kCPU).contiguous();
  if (c.scalar_type() == torch::kLong) {
    std::vector<int64_t> v(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel());
    f.write(name, v, dims_of(c));
  } else {
    c = c.to(torch::kFloat);
    std::vector<float> v(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
    f.write(name, v, dims_of(c));
  }
}

void read_into(const h5::File& f, const std::string& name, torch::Tensor& t) {
  if (!f.has(name)) throw InputError(f.path() + ": missing dataset " + name);
  h5::Dims d = f.shape(name);
  uint64_t n = 1;
  for (auto v : d) n *= v;
  if (n != static_cast<uint64_t>(t.numel()))
    throw InputError(f.path() + ": " + name + " has " + std::to_string(n) + " values, the model expects " +
                     std::to_string(t.numel()));
  torch::NoGradGuard no_grad;
  if (t.scalar_type() == torch::kLong) {
    auto v = f.read<int64_t>(name);
    t.copy_(at::from_blob(v.data(), t.sizes(), torch::kLong));
  } else {
    auto v = f.read<float>(name);
    t.copy_(at::from_blob(v.data(), t.sizes(), torch::kFloat).to(t.device()));
  }
}

}  // namespace

void save_checkpoint(const std::string& path, EmitterNetImpl& model, Adam* optimizer, const ModelMeta& meta,
                     const h5::Attributes& provenance) {
  // Checksummed: a corrupted model or checkpoint is an error naming it when read, never weights
  // silently changed.
  h5::File f = h5::File::create(path, provenance, h5::Checksum::fletcher32);
  for (const auto& p : model.named_parameters()) write_tensor(f, "/state/" + p.key(), p.value());
  for (const auto& b : model.named_buffers()) write_tensor(f, "/state/" + b.key(), b.value());
  if (optimizer) {
    auto params = model.named_parameters();
    for (size_t i = 0; i < params.size(); ++i) {
      write_tensor(f, "/optimizer/exp_avg/" + params[i].key(), optimizer->exp_avg()[i]);
      write_tensor(f, "/optimizer/exp_avg_sq/" + params[i].key(), optimizer->exp_avg_sq()[i]);
    }
    f.set_attr("/optimizer", "step", static_cast<double>(optimizer->steps()));
    f.set_attr("/optimizer", "lr", optimizer->options().lr);
  }
  f.set_attr("/", "arch", meta.arch);
  f.set_attr("/", "bn_mode", meta.bn_mode);
  f.set_attr("/", "label_scale", meta.label_scale);
  f.set_attr("/", "factor", static_cast<double>(meta.factor));
  f.set_attr("/", "raw_pixel_size_nm", meta.raw_pixel_size_nm);
  f.set_attr("/", "normalize", meta.normalize);
  f.set_attr("/", "epoch", static_cast<double>(meta.epoch));
  f.set_attr("/", "step", static_cast<double>(meta.step));
  f.set_attr("/", "val_loss", meta.val_loss);
  f.set_attr("/", "step_in_epoch", static_cast<double>(meta.step_in_epoch));
  f.set_attr("/", "epoch_loss_sum", meta.epoch_loss_sum);
  f.set_attr("/", "best_val_loss", meta.best_val_loss);
  f.set_attr("/", "epochs_since_best", static_cast<double>(meta.epochs_since_best));
  f.set_attr("/", "schedule_progress", meta.schedule_progress);
  f.set_attr("/", "localize_threshold", meta.localize_threshold);
  f.set_attr("/", "localize_emitter_mass", meta.localize_emitter_mass);
  f.set_attr("/", "model_checksum", model_checksum(model));
  f.commit();
}

void load_state(const h5::File& f, const std::string& group, EmitterNetImpl& model) {
  for (auto& p : model.named_parameters()) read_into(f, group + "/" + p.key(), p.value());
  for (auto& b : model.named_buffers()) {
    // Files exported from PyTorch may lack num_batches_tracked; it does not affect outputs.
    if (b.key().find("num_batches_tracked") != std::string::npos && !f.has(group + "/" + b.key())) continue;
    read_into(f, group + "/" + b.key(), b.value());
  }
}

std::shared_ptr<EmitterNetImpl> load_model(const std::string& path, ModelMeta* meta) {
  h5::File f = h5::File::open(path);
  const ModelMeta m = read_model_meta(f);
  auto model = make_model(m.arch);
  load_state(f, "/state", *model);  // verifies the checksums
  const auto params = model->named_parameters();
  if (!params.is_empty() && !f.checksummed("/state/" + params[0].key()))
    log::warn("{}: no checksums (written by a dsir before they were added), so its data is not verified",
              path);
  model->set_bn_mode(parse_bn_mode(m.bn_mode));
  if (meta) *meta = m;
  return model;
}

void load_optimizer(const std::string& path, EmitterNetImpl& model, Adam& optimizer) {
  h5::File f = h5::File::open(path);
  if (!f.has("/optimizer")) throw InputError(path + ": no optimizer state to resume from");
  // The optimizer's tensors follow the model's parameter order, as save_checkpoint wrote them.
  auto params = model.named_parameters();
  for (size_t i = 0; i < params.size(); ++i) {
    read_into(f, "/optimizer/exp_avg/" + params[i].key(), optimizer.exp_avg()[i]);
    read_into(f, "/optimizer/exp_avg_sq/" + params[i].key(), optimizer.exp_avg_sq()[i]);
  }
  optimizer.set_steps(f.attr_int("/optimizer", "step", 0, int64_t(1) << 53));
}

std::string model_checksum(EmitterNetImpl& model) {
  uint64_t h = 1469598103934665603ull;
  auto mix = [&h](const torch::Tensor& t) {
    torch::Tensor c = t.detach().to(torch::kCPU).contiguous();
    const auto* bytes = static_cast<const unsigned char*>(c.data_ptr());
    for (size_t i = 0; i < static_cast<size_t>(c.nbytes()); ++i) {
      h ^= bytes[i];
      h *= 1099511628211ull;
    }
  };
  for (const auto& p : model.named_parameters()) mix(p.value());
  for (const auto& b : model.named_buffers()) mix(b.value());
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

}  // namespace dsir
