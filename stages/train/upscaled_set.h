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

 private:
  std::unique_ptr<UpscaledFileReader> file_;  // upscaled.h5
  std::unique_ptr<RawFileReader> raw_;        // or raw.h5 and its items
  std::unique_ptr<TrainingItems> items_;
};

// The input pipeline of training: the next batch is read on a thread of its own while the
// current step computes (one batch ahead, so memory holds two), in pinned memory when it is bound
// for a GPU. Only the reader touches the file while a read is outstanding; take() hands over.
class BatchPrefetcher {
 public:
  BatchPrefetcher(const UpscaledSet& set, double label_scale, bool pin_memory);
  ~BatchPrefetcher();  // waits for an outstanding read
  BatchPrefetcher(const BatchPrefetcher&) = delete;
  BatchPrefetcher& operator=(const BatchPrefetcher&) = delete;

  void request(std::vector<uint64_t> frames);      // starts reading these frames
  std::pair<torch::Tensor, torch::Tensor> take();  // the requested batch (rethrows read errors)
  void drain();                                    // waits for an outstanding read and drops it

 private:
  const UpscaledSet& set_;
  double label_scale_;
  bool pin_memory_;
  std::future<std::pair<torch::Tensor, torch::Tensor>> next_;
};

}  // namespace dsir
