#include "pipeline/formats/shard_file.h"

#include <cmath>
#include <filesystem>

#include "pipeline/errors.h"

namespace dsir {
namespace {

const char* const kSum = "/sum";
const char* const kLocalizations = "/localizations";

// Attribute names with the ShardInfo field each one holds, in docs/data-format.md's order.
struct TextField {
  const char* name;
  std::string ShardInfo::*field;
  bool identity;  // part of the identity a restart compares
  bool shared;    // the same in every shard of one acquisition
};
const TextField kText[] = {
    {"source_file", &ShardInfo::source_file, true, true},
    {"source_stat", &ShardInfo::source_stat, true, true},
    {"model_checksum", &ShardInfo::model_checksum, true, true},
    {"settings_hash", &ShardInfo::settings_hash, true, true},
    {"frame_range", &ShardInfo::frame_range, true, false},
    {"settings", &ShardInfo::settings, false, true},
    {"bn_mode", &ShardInfo::bn_mode, false, true},
    {"threshold", &ShardInfo::threshold, false, true},
    {"acquisition", &ShardInfo::acquisition, false, true},
    {"camera", &ShardInfo::camera, false, true},
};

[[noreturn]] void missing(const std::string& path, const std::string& what) {
  throw InputError(path + ": missing " + what + " (not a shard of this dsir version; rerun infer)");
}

std::string text(const h5::File& f, const char* key) {
  if (!f.has_attr("/", key)) missing(f.path(), std::string("attribute '") + key + "'");
  return f.attr_string("/", key);
}
double positive_number(const h5::File& f, const char* key) {
  if (!f.has_attr("/", key)) missing(f.path(), std::string("attribute '") + key + "'");
  const double v = f.attr_double("/", key);
  if (!(v > 0) || !std::isfinite(v))
    throw InputError(f.path() + ": attribute '" + key + "' must be a finite number > 0, got " +
                     std::to_string(v));
  return v;
}
// Frame counts and indices and frame sides are doubles in the file: whole numbers in range (a
// conversion of NaN or 1e300 to an integer would be undefined; found writing tests/fuzz).
int64_t whole_number(const h5::File& f, const char* key, int64_t min, int64_t max) {
  if (!f.has_attr("/", key)) missing(f.path(), std::string("attribute '") + key + "'");
  return f.attr_int("/", key, min, max);
}

ShardAttributes select(const ShardInfo& info, bool TextField::*which) {
  ShardAttributes out;
  for (const auto& t : kText)
    if (t.*which) out.emplace_back(t.name, info.*(t.field));
  return out;
}

}  // namespace

ShardAttributes ShardInfo::identity() const { return select(*this, &TextField::identity); }
ShardAttributes ShardInfo::shared() const { return select(*this, &TextField::shared); }

void write_shard(const std::string& path, const h5::Attributes& provenance, const Shard& shard) {
  h5::Attributes attrs = provenance;
  for (const auto& t : kText) attrs[t.name] = shard.info.*(t.field);
  h5::File out = h5::File::create(path, attrs, h5::Checksum::fletcher32);
  out.write(kSum, shard.sum, {shard.height, shard.width});
  out.write_table(kLocalizations, emitters_to_table(shard.localizations));
  const ShardInfo& i = shard.info;
  out.set_attr("/", "first_frame", static_cast<double>(i.first_frame));
  out.set_attr("/", "frames", static_cast<double>(i.frames));
  out.set_attr("/", "acquisition_frames", static_cast<double>(i.acquisition_frames));
  out.set_attr("/", "pixel_size_nm", i.pixel_size_nm);
  out.set_attr("/", "raw_pixel_size_nm", i.raw_pixel_size_nm);
  out.set_attr("/", "raw_width", static_cast<double>(i.raw_width));
  out.set_attr("/", "raw_height", static_cast<double>(i.raw_height));
  out.commit();
}

Shard read_shard(const std::string& path) {
  const h5::File f = h5::File::open(path);  // InputError naming the file when unreadable
  if (!f.has(kSum) || !f.has(kLocalizations))
    throw InputError(path + ": not a complete inference shard (missing /sum or /localizations)");
  Shard s;
  for (const auto& t : kText) s.info.*(t.field) = text(f, t.name);
  constexpr int64_t kMaxFrames = int64_t(1) << 53;
  s.info.first_frame = static_cast<uint64_t>(whole_number(f, "first_frame", 0, kMaxFrames));
  s.info.frames = static_cast<uint64_t>(whole_number(f, "frames", 0, kMaxFrames));
  s.info.acquisition_frames = static_cast<uint64_t>(whole_number(f, "acquisition_frames", 0, kMaxFrames));
  if (s.info.first_frame + s.info.frames > s.info.acquisition_frames)
    throw InputError(path + ": frames " + std::to_string(s.info.first_frame) + " to " +
                     std::to_string(s.info.first_frame + s.info.frames) + " are beyond the acquisition's " +
                     std::to_string(s.info.acquisition_frames));
  s.info.pixel_size_nm = positive_number(f, "pixel_size_nm");
  s.info.raw_pixel_size_nm = positive_number(f, "raw_pixel_size_nm");
  constexpr int64_t kMaxSide = int64_t(1) << 16;  // raw.h5's bound (pipeline/formats/raw_file.cpp)
  s.info.raw_width = static_cast<int>(whole_number(f, "raw_width", 1, kMaxSide));
  s.info.raw_height = static_cast<int>(whole_number(f, "raw_height", 1, kMaxSide));
  const h5::Dims d = f.shape(kSum);
  if (d.size() != 2) throw InputError(path + ": /sum must be 2-D");
  // The image is the raw frame upscaled by at most upscale.factor's 32: a larger declared /sum
  // would be allocated as it came.
  if (d[0] == 0 || d[1] == 0 || d[0] > uint64_t(s.info.raw_height) * 32 ||
      d[1] > uint64_t(s.info.raw_width) * 32)
    throw InputError(path + ": /sum is " + std::to_string(d[0]) + " x " + std::to_string(d[1]) +
                     ", not an upscaled image of the " + std::to_string(s.info.raw_height) + " x " +
                     std::to_string(s.info.raw_width) + " raw frame");
  s.height = d[0];
  s.width = d[1];
  s.checksummed = f.checksummed(kSum) && f.checksummed(kLocalizations);
  s.sum = f.read<double>(kSum);  // a checksum mismatch is an InputError naming file and dataset
  s.localizations = table_to_emitters(f.read_table(kLocalizations), path + ":/localizations");
  return s;
}

ShardCheck check_shard(const std::string& path, const ShardInfo& expected) {
  if (!std::filesystem::exists(path)) return {ShardState::absent, ""};
  Shard found;
  try {
    found = read_shard(path);
  } catch (const InputError& e) {
    return {ShardState::corrupt, e.what()};
  }
  if (found.info.identity() != expected.identity()) return {ShardState::other, ""};
  if (!found.checksummed)
    return {ShardState::unverifiable, path + ": no checksums (written by a dsir before they were added)"};
  return {ShardState::complete, ""};
}

}  // namespace dsir
