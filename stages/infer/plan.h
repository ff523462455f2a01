#pragma once
// The work of `infer`: which acquisitions (files, lists, globs of an archive), how they split
// into shards, where each shard goes, and the identity that lets a restarted job skip shards
// already complete. Rank 0 scans the inputs once and sends the plan to the other ranks.
#include <cstdint>
#include <string>
#include <vector>

#include "pipeline/formats/shard_file.h"

namespace dsir {

struct Acquisition {
  std::string name;  // folder under infer.output, and under reduce.output for archives
  std::string path;  // absolute
  uint64_t frames = 0;
  int height = 0, width = 0;
  double pixel_size_nm = 0;
  std::string camera;  // raw.h5's `camera` attribute (JSON), '' when absent
  std::string stat;    // size and modification time: a replaced source invalidates its shards
};

struct ShardTask {
  size_t acquisition = 0;  // index into the acquisition list
  uint64_t index = 0;      // within the acquisition: shard-NNNNN
  uint64_t first = 0, count = 0;
};

// The files named by infer.input entries, in order: globs expanded as everywhere
// (pipeline/inputs.h: natural order), paths absolute, repeats dropped (reported in `repeated`).
// ConfigError naming the key for a glob matching nothing or a missing file.
std::vector<std::string> resolve_inputs(const std::vector<std::string>& entries,
                                        std::vector<std::string>* repeated = nullptr);

// Output names: the file stems; when stems collide (archive/day1/raw.h5, archive/day2/raw.h5),
// the paths relative to their common folder, extension dropped, '/' -> '_' (day1_raw, day2_raw).
std::vector<std::string> acquisition_names(const std::vector<std::string>& paths);

// Shards of `shard_frames` frames, acquisition by acquisition, in frame order.
std::vector<ShardTask> make_shards(const std::vector<Acquisition>& acquisitions, uint64_t shard_frames);

std::string shard_path(const std::string& out_dir, const std::string& acquisition, uint64_t index);
// "SIZE bytes, modified SECONDS.NANOSECONDS"; InputError when the file cannot be examined.
std::string file_stat(const std::string& path);

// The plan as bytes for MPI_Bcast, and back.
std::string pack(const std::vector<Acquisition>& acquisitions);
std::vector<Acquisition> unpack(const std::string& bytes);

// FNV-1a 64 of `text`, hex: names a set of settings in an attribute.
std::string settings_hash(const std::string& text);

// A shard's identity (the ShardInfo fields that must all match for a shard on disk to be reused;
// check_shard in shard_file.h compares them).
ShardInfo shard_identity(const Acquisition& acquisition, const ShardTask& shard,
                         const std::string& model_checksum, const std::string& settings);

// Removes what a killed or differently-sharded earlier run left in an acquisition's folder:
// temporaries (.shard-*.tmpPID) and shards numbered `shards` or higher. Returns how many.
size_t remove_stale_shards(const std::string& folder, uint64_t shards);

}  // namespace dsir
