#pragma once
// Training data a batch at a time (memory is one batch, not the set): upscaled.h5
// (docs/data-format.md), or items rendered from a raw.h5 as they are needed.
#include <torch/types.h>

#include <future>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "pipeline/formats/upscaled_file.h"
#include "stages/upscale/upscale.h"

namespace dsir {

// A batch of items rendered from raw.h5 as it travels to a GPU: the items' raw windows (factor²
// times smaller than their upscaled inputs) and only the nonzero pixels of their label maps
// (a few per emitter). UpscaledSet::expand makes the dense batch on the device.
struct CompactBatch {
  torch::Tensor windows;      // (n, h, w) float: raw pixels
  torch::Tensor label_index;  // (k) int64: flat positions in the (n, 1, H, W) labels
  torch::Tensor label_value;  // (k) float: the labels there, x label_scale
};

class UpscaledSet : public UpscaledLayout {
 public:
  // upscaled.h5; or a raw.h5 with ground truth, whose items `spec` renders on the fly, as the
  // upscale stage would write them (the same bits). InputError naming what is missing.
  UpscaledSet(const std::string& path, const ItemSpec& spec);
  bool rendered_on_the_fly() const { return items_ != nullptr; }
  // Item `frame`'s emitters (nm from its corner) when the input is a raw.h5; upscaled.h5 keeps
  // only the label maps: nothing.
  std::optional<std::vector<Emitter>> emitters(uint64_t frame) const;
  // (n, 1, H, W) inputs and labels (× label_scale) for the given frame indices; runs of
  // consecutive indices are read with one HDF5 call each (validation reads whole ranges).
  std::pair<torch::Tensor, torch::Tensor> batch(const std::vector<uint64_t>& frames,
                                                double label_scale) const;
  // The same items, for a raw.h5 input only (rendered_on_the_fly()), as a CompactBatch; expand
  // turns it into batch()'s tensors on `device`: labels identical, inputs upscaled there by
  // upscale_batch (within 1e-5 of batch()'s: a device's float arithmetic, not the CPU's order).
  CompactBatch compact_batch(const std::vector<uint64_t>& frames, double label_scale) const;
  std::pair<torch::Tensor, torch::Tensor> expand(const CompactBatch& batch,
                                                 const torch::Device& device) const;
  // Whether batches bound for `device` travel compact: a GPU fed from raw.h5. On a CPU the
  // reader's own upscale is the same work and keeps training's bits.
  bool upscales_on(const torch::Device& device) const { return device.is_cuda() && rendered_on_the_fly(); }
  // batch() for `device`: compact and expanded there where upscales_on(device), else on the host.
  std::pair<torch::Tensor, torch::Tensor> batch_for(const std::vector<uint64_t>& frames, double label_scale,
                                                    const torch::Device& device) const;

 private:
  // fn(i, frame) for every idx[i] with its frame's raw pixels (a frame read once for its items in a row).
  template <class Fn>
  void for_each_item_frame(const std::vector<uint64_t>& idx, Fn&& fn) const;

  std::unique_ptr<UpscaledFileReader> file_;  // upscaled.h5
  std::unique_ptr<RawFileReader> raw_;        // or raw.h5 and its items
  std::unique_ptr<TrainingItems> items_;
};

// The input pipeline of training: the next batch is read on a thread of its own while the
// current step computes (one batch ahead, so memory holds two), in pinned memory when it is bound
// for a GPU. Only the reader touches the file while a read is outstanding; take() hands over.
// With `compact` (training passes set.upscales_on(device)) the reader renders CompactBatches and
// take() expands them on `device`; otherwise take() gives host tensors.
class BatchPrefetcher {
 public:
  BatchPrefetcher(const UpscaledSet& set, double label_scale, const torch::Device& device, bool compact);
  ~BatchPrefetcher();  // waits for an outstanding read
  BatchPrefetcher(const BatchPrefetcher&) = delete;
  BatchPrefetcher& operator=(const BatchPrefetcher&) = delete;

  void request(std::vector<uint64_t> frames);      // starts reading these frames
  std::pair<torch::Tensor, torch::Tensor> take();  // the requested batch (rethrows read errors)
  void drain();                                    // waits for an outstanding read and drops it

 private:
  const UpscaledSet& set_;
  double label_scale_;
  torch::Device device_;
  bool compact_;
  struct Read {
    torch::Tensor inputs, labels;  // a dense batch on the host
    CompactBatch compact;          // or a compact one
  };
  std::future<Read> next_;
};

}  // namespace dsir
