#pragma once
// What reduce needs to know about one inference shard (docs/data-format.md) before reading its
// data: the attributes that tie it to its run and acquisition and the shape of /sum, validated.
// Without LibTorch, so that it is tested and fuzzed on its own (tests/fuzz).
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "pipeline/h5store.h"

namespace dsir {

struct ShardHeader {
  // The attributes every shard of an acquisition shares, in kShardShared's order (so that a
  // mismatch is reported on the same one every time).
  std::vector<std::pair<std::string, std::string>> shared;
  uint64_t first_frame = 0, frames = 0;
  uint64_t height = 0, width = 0;  // of /sum (upscaled pixels)
  double pixel_size_nm = 0, raw_pixel_size_nm = 0;
  uint64_t acquisition_frames = 0;
  int raw_width = 0, raw_height = 0;
};

// Attributes every shard of one acquisition must share (a folder mixing runs is refused), and
// that the reconstruction carries as provenance.
extern const char* const kShardShared[9];

// InputError naming the file and the attribute or dataset that is missing or out of range.
ShardHeader read_shard_header(const h5::File& file);

}  // namespace dsir
