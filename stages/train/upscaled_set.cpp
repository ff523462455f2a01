#include "stages/train/upscaled_set.h"

#include <ATen/ops/empty.h>
#include <ATen/ops/from_blob.h>

#include <cstdint>
#include <cstring>

#include "pipeline/errors.h"

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

std::pair<torch::Tensor, torch::Tensor> UpscaledSet::batch(const std::vector<uint64_t>& idx,
                                                           double label_scale) const {
  const int64_t n = static_cast<int64_t>(idx.size());
  torch::Tensor x = at::empty({n, 1, height, width}, torch::kFloat);
  torch::Tensor y = at::empty({n, 1, height, width}, torch::kFloat);
  const size_t frame = static_cast<size_t>(height * width);
  if (items_) {
    std::vector<float> pixels;  // the raw frame of the item before, kept for its other patches
    uint64_t have = UINT64_MAX;
    for (size_t i = 0; i < idx.size(); ++i) {
      const uint64_t f = idx[i] / items_->per_frame();
      if (f != have) pixels = raw_->read(f, 1);
      have = f;
      items_->render(idx[i], pixels.data(), x.data_ptr<float>() + i * frame, y.data_ptr<float>() + i * frame);
    }
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

BatchPrefetcher::BatchPrefetcher(const UpscaledSet& set, double label_scale, bool pin_memory)
    : set_(set), label_scale_(label_scale), pin_memory_(pin_memory) {}

BatchPrefetcher::~BatchPrefetcher() { drain(); }

void BatchPrefetcher::request(std::vector<uint64_t> frames) {
  if (next_.valid()) next_.wait();  // one read at a time: the file has one reader
  next_ = std::async(std::launch::async, [this, frames = std::move(frames)] {
    auto [x, y] = set_.batch(frames, label_scale_);
    if (pin_memory_) return std::make_pair(x.pin_memory(), y.pin_memory());
    return std::make_pair(x, y);
  });
}

std::pair<torch::Tensor, torch::Tensor> BatchPrefetcher::take() { return next_.get(); }

void BatchPrefetcher::drain() {
  if (next_.valid()) next_.wait();
  next_ = {};
}

}  // namespace dsir
