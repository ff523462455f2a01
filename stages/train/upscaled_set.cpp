#include "stages/train/upscaled_set.h"

#include <ATen/ops/empty.h>
#include <ATen/ops/from_blob.h>
#include <ATen/ops/zeros.h>

#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <tuple>

#include "pipeline/errors.h"
#include "stages/train/models/batch_upscale.h"

namespace dsir {

UpscaledSet::UpscaledSet(const std::string& path, const ItemSpec& spec) {
  if (!h5::File::open(path).has("/frames")) {
    file_ = std::make_unique<UpscaledFileReader>(path);
    static_cast<UpscaledLayout&>(*this) = file_->layout();
    return;
  }
  raw_ = std::make_unique<RawFileReader>(path);
  if (!raw_->has_emitters())
    throw InputError(path + ": a raw.h5 without /emitters (ground truth) has no labels to train on");
  items_ = std::make_unique<TrainingItems>(*raw_, spec);
  frames = items_->count();
  height = items_->height();
  width = items_->width();
  factor = spec.factor;
  raw_pixel_size_nm = raw_->pixel_size_nm();
  normalize = to_string(spec.normalize);
}

std::optional<std::vector<Emitter>> UpscaledSet::emitters(uint64_t frame) const {
  if (!items_) return std::nullopt;
  return items_->emitters(frame);
}

template <class Fn>
void UpscaledSet::for_each_item_frame(const std::vector<uint64_t>& idx, Fn&& fn) const {
  std::vector<float> pixels;  // the raw frame of the item before, kept for its other patches
  uint64_t have = UINT64_MAX;
  for (size_t i = 0; i < idx.size(); ++i) {
    const uint64_t f = idx[i] / items_->per_frame();
    if (f != have) pixels = raw_->read(f, 1);
    have = f;
    fn(i, pixels.data());
  }
}

std::pair<torch::Tensor, torch::Tensor> UpscaledSet::batch(const std::vector<uint64_t>& idx,
                                                           double label_scale) const {
  const int64_t n = static_cast<int64_t>(idx.size());
  torch::Tensor x = at::empty({n, 1, height, width}, torch::kFloat);
  torch::Tensor y = at::empty({n, 1, height, width}, torch::kFloat);
  const size_t frame = static_cast<size_t>(height * width);
  if (items_) {
    for_each_item_frame(idx, [&](size_t i, const float* pixels) {
      items_->render(idx[i], pixels, x.data_ptr<float>() + i * frame, y.data_ptr<float>() + i * frame);
    });
    return {x, y * label_scale};
  }
  for (size_t i = 0; i < idx.size();) {
    size_t run = 1;
    while (i + run < idx.size() && idx[i + run] == idx[i] + run) ++run;
    const auto xs = file_->inputs(idx[i], run);
    const auto ys = file_->labels(idx[i], run);
    std::memcpy(x.data_ptr<float>() + i * frame, xs.data(), xs.size() * sizeof(float));
    std::memcpy(y.data_ptr<float>() + i * frame, ys.data(), ys.size() * sizeof(float));
    i += run;
  }
  return {x, y * label_scale};
}

CompactBatch UpscaledSet::compact_batch(const std::vector<uint64_t>& idx, double label_scale) const {
  if (!items_) throw std::logic_error("compact_batch: the training input is not a raw.h5");
  const int64_t n = static_cast<int64_t>(idx.size()), h = items_->raw_height(), w = items_->raw_width();
  torch::Tensor windows = at::empty({n, h, w}, torch::kFloat);
  const size_t window = static_cast<size_t>(h * w), frame = static_cast<size_t>(height * width);
  std::vector<float> label(frame);  // one item's map at a time; only its nonzero pixels are kept
  std::vector<int64_t> index;
  std::vector<float> value;
  for_each_item_frame(idx, [&](size_t i, const float* pixels) {
    items_->render_raw(idx[i], pixels, windows.data_ptr<float>() + i * window, label.data());
    for (size_t p = 0; p < frame; ++p)
      if (label[p] != 0) {
        index.push_back(static_cast<int64_t>(i * frame + p));
        value.push_back(label[p]);
      }
  });
  const int64_t k = static_cast<int64_t>(index.size());
  torch::Tensor label_index = at::empty({k}, torch::kLong), label_value = at::empty({k}, torch::kFloat);
  std::memcpy(label_index.data_ptr<int64_t>(), index.data(), index.size() * sizeof(int64_t));
  std::memcpy(label_value.data_ptr<float>(), value.data(), value.size() * sizeof(float));
  // batch() scales the whole map by label_scale; the zeros stay zeros, the rest scale alike.
  return {windows, label_index, label_value * label_scale};
}

std::pair<torch::Tensor, torch::Tensor> UpscaledSet::expand(const CompactBatch& b,
                                                            const torch::Device& device) const {
  if (!items_) throw std::logic_error("expand: the training input is not a raw.h5");
  const bool async = device.is_cuda();
  const torch::Tensor windows = b.windows.to(device, async);
  const int64_t n = windows.size(0);
  torch::Tensor x =
      upscale_batch(windows, factor, items_->spec().normalize, items_->global_mean(), items_->global_std());
  torch::Tensor y =
      at::zeros({n * height * width}, torch::TensorOptions().device(device).dtype(torch::kFloat));
  y.index_put_({b.label_index.to(device, async)}, b.label_value.to(device, async));
  return {x, y.view({n, 1, height, width})};
}

std::pair<torch::Tensor, torch::Tensor> UpscaledSet::batch_for(const std::vector<uint64_t>& frames,
                                                               double label_scale,
                                                               const torch::Device& device) const {
  if (upscales_on(device)) return expand(compact_batch(frames, label_scale), device);
  return batch(frames, label_scale);
}

BatchPrefetcher::BatchPrefetcher(const UpscaledSet& set, double label_scale, const torch::Device& device,
                                 bool compact)
    : set_(set), label_scale_(label_scale), device_(device), compact_(compact) {}

BatchPrefetcher::~BatchPrefetcher() { drain(); }

void BatchPrefetcher::request(std::vector<uint64_t> frames) {
  if (next_.valid()) next_.wait();  // one read at a time: the file has one reader
  next_ = std::async(std::launch::async, [this, frames = std::move(frames)] {
    Read r;
    const bool pin = device_.is_cuda();
    if (compact_) {
      r.compact = set_.compact_batch(frames, label_scale_);
      if (pin)
        for (torch::Tensor* t : {&r.compact.windows, &r.compact.label_index, &r.compact.label_value})
          *t = t->pin_memory();
    } else {
      std::tie(r.inputs, r.labels) = set_.batch(frames, label_scale_);
      if (pin) {
        r.inputs = r.inputs.pin_memory();
        r.labels = r.labels.pin_memory();
      }
    }
    return r;
  });
}

std::pair<torch::Tensor, torch::Tensor> BatchPrefetcher::take() {
  Read r = next_.get();
  if (compact_) return set_.expand(r.compact, device_);
  return {r.inputs, r.labels};
}

void BatchPrefetcher::drain() {
  if (next_.valid()) next_.wait();
  next_ = {};
}

}  // namespace dsir
