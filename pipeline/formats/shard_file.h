#pragma once
// The inference shard file (docs/data-format.md, "Inference shards"): its one writer and reader,
// used by `infer` (writing, and deciding on a restart which shards to reuse) and by `reduce`.
// The datasets carry Fletcher-32 checksums (h5::Checksum) that every read verifies, so a
// corrupted shard is an error, never summed silently. No LibTorch here: reduce links this alone.
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "pipeline/csv.h"
#include "pipeline/h5store.h"

namespace dsir {

// Attribute names and values in docs/data-format.md's order (the identity first), so that a
// mismatch is reported by the first differing attribute in that order.
using ShardAttributes = std::vector<std::pair<std::string, std::string>>;

// A shard's attributes on "/".
struct ShardInfo {
  // Identity: all must match for a restarted infer to reuse the shard.
  std::string source_file, source_stat, model_checksum, settings_hash, frame_range;
  // Shared by every shard of one acquisition (with the identity less frame_range).
  std::string settings, bn_mode, threshold, acquisition, camera;
  uint64_t first_frame = 0, frames = 0, acquisition_frames = 0;
  double pixel_size_nm = 0;  // upscaled
  double raw_pixel_size_nm = 0;
  int raw_width = 0, raw_height = 0;

  ShardAttributes identity() const;
  // The attributes a folder's shards must agree on; reduce copies them into the reconstruction.
  ShardAttributes shared() const;
};

struct Shard {
  ShardInfo info;
  uint64_t height = 0, width = 0;  // of /sum (upscaled)
  std::vector<double> sum;         // emitters per pixel, summed over the shard's frames
  std::vector<Emitter> localizations;
  bool checksummed = true;  // false: written by a dsir without checksums; the data is unverified
};

void write_shard(const std::string& path, const h5::Attributes& provenance, const Shard& shard);

// Reads and verifies a shard: InputError naming the file and the cause (missing dataset or
// attribute, checksum mismatch).
Shard read_shard(const std::string& path);

// What a restarted infer finds at a shard's path.
enum class ShardState {
  complete,      // this identity, checksums verified: reuse
  absent,        // compute
  other,         // another source, model, settings or frame range: recompute
  unverifiable,  // no checksums (an older dsir): recompute
  corrupt,       // unreadable, incomplete or a checksum mismatch: recompute
};
struct ShardCheck {
  ShardState state = ShardState::absent;
  std::string reason;  // for unverifiable and corrupt
};
ShardCheck check_shard(const std::string& path, const ShardInfo& expected);

}  // namespace dsir
