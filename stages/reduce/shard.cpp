#include "stages/reduce/shard.h"

#include <cmath>

#include "pipeline/errors.h"

namespace dsir {

const char* const kShardShared[9] = {"source_file",   "source_stat", "model_checksum",
                                     "settings_hash", "settings",    "bn_mode",
                                     "threshold",     "acquisition", "camera"};

namespace {

void require(const h5::File& f, const std::string& key) {
  if (!f.has_attr("/", key))
    throw InputError(f.path() + ": missing attribute '" + key +
                     "' (not a shard of this dsir version; rerun infer)");
}

double positive_number(const h5::File& f, const std::string& key) {
  require(f, key);
  const double v = f.attr_double("/", key);
  if (!(v > 0) || !std::isfinite(v))
    throw InputError(f.path() + ": attribute '" + key + "' must be a finite number > 0, got " +
                     std::to_string(v));
  return v;
}

// Frame counts and indices: whole numbers a double holds exactly (converting NaN or 1e300 to an
// integer would be undefined).
uint64_t count(const h5::File& f, const std::string& key) {
  require(f, key);
  return static_cast<uint64_t>(f.attr_int("/", key, 0, int64_t(1) << 53));
}

}  // namespace

ShardHeader read_shard_header(const h5::File& f) {
  const std::string& path = f.path();
  if (!f.has("/sum") || !f.has("/localizations"))
    throw InputError(path + ": not a complete inference shard (missing /sum or /localizations)");
  ShardHeader h;
  for (const char* key : kShardShared) {
    require(f, key);
    h.shared.emplace_back(key, f.attr_string("/", key));
  }
  h.first_frame = count(f, "first_frame");
  h.frames = count(f, "frames");
  h.acquisition_frames = count(f, "acquisition_frames");
  if (h.first_frame + h.frames > h.acquisition_frames)
    throw InputError(path + ": frames " + std::to_string(h.first_frame) + " to " +
                     std::to_string(h.first_frame + h.frames) + " are beyond the acquisition's " +
                     std::to_string(h.acquisition_frames));
  // raw.h5's bound on a frame's side (stages/upscale/raw_stack.cpp).
  constexpr int64_t kMaxSide = int64_t(1) << 16;
  require(f, "raw_width");
  require(f, "raw_height");
  h.raw_width = static_cast<int>(f.attr_int("/", "raw_width", 1, kMaxSide));
  h.raw_height = static_cast<int>(f.attr_int("/", "raw_height", 1, kMaxSide));
  h.pixel_size_nm = positive_number(f, "pixel_size_nm");
  h.raw_pixel_size_nm = positive_number(f, "raw_pixel_size_nm");
  const h5::Dims d = f.shape("/sum");
  if (d.size() != 2) throw InputError(path + ": /sum must be 2-D");
  // The image is the raw frame upscaled by at most upscale.factor's 32.
  if (d[0] == 0 || d[1] == 0 || d[0] > uint64_t(h.raw_height) * 32 || d[1] > uint64_t(h.raw_width) * 32)
    throw InputError(path + ": /sum is " + std::to_string(d[0]) + " x " + std::to_string(d[1]) +
                     ", not an upscaled image of the " + std::to_string(h.raw_height) + " x " +
                     std::to_string(h.raw_width) + " raw frame");
  h.height = d[0];
  h.width = d[1];
  return h;
}

}  // namespace dsir
