#pragma once
// upscaled.h5 (docs/data-format.md) read a batch at a time: memory is one batch, not the set.
#include <torch/types.h>

#include <future>
#include <string>
#include <vector>

#include "pipeline/formats/upscaled_file.h"

namespace dsir {

class UpscaledSet : public UpscaledLayout {
 public:
  explicit UpscaledSet(const std::string& path);  // InputError naming what is missing
  // (n, 1, H, W) inputs and labels (× label_scale) for the given frame indices; runs of
  // consecutive indices are read with one HDF5 call each (validation reads whole ranges).
  std::pair<torch::Tensor, torch::Tensor> batch(const std::vector<uint64_t>& frames,
                                                double label_scale) const;

 private:
  UpscaledFileReader file_;
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
