#include "pipeline/formats/reconstruction_file.h"

#include <cmath>

#include "pipeline/errors.h"

namespace dsir {

void write_reconstruction(const std::string& path, const ReconstructionContent& r,
                          const h5::Attributes& attributes) {
  h5::File f = h5::File::create(path, attributes);
  const std::vector<uint64_t> dims{static_cast<uint64_t>(r.height), static_cast<uint64_t>(r.width)};
  f.write("/image", r.image, dims);
  f.set_attr("/image", "pixel_size_nm", r.pixel_size_nm);
  f.set_attr("/image", "unit", r.image_unit);
  f.set_attr("/image", "render", r.render);
  f.write("/network_sum", r.network_sum, dims);
  f.set_attr("/network_sum", "pixel_size_nm", r.pixel_size_nm);
  f.set_attr("/network_sum", "unit", kNetworkSumUnit);
  f.set_attr("/", "pixel_size_nm", r.pixel_size_nm);
  f.set_attr("/", "frames", static_cast<double>(r.frames));
  f.set_attr("/", "shards", static_cast<double>(r.shards));
  f.set_attr("/", "raw_pixel_size_nm", r.raw_pixel_size_nm);
  f.set_attr("/", "raw_width", static_cast<double>(r.raw_width));
  f.set_attr("/", "raw_height", static_cast<double>(r.raw_height));
  f.write_table("/localizations", emitters_to_table(r.localizations));
  f.commit();
}

namespace {

ReconstructionContent read_summary(const h5::File& f) {
  const std::string& path = f.path();
  if (!f.has("/image")) throw InputError(path + ": missing /image (not a reconstruction.h5?)");
  const h5::Dims d = f.shape("/image");
  // An image of at most 2^20 pixels a side (a 2^17-pixel camera upscaled x8), checked before the
  // narrowing to int.
  constexpr uint64_t kMaxSide = uint64_t(1) << 20;
  if (d.size() != 2 || d[0] == 0 || d[1] == 0 || d[0] > kMaxSide || d[1] > kMaxSide)
    throw InputError(path + ": /image must be a 2-D image of 1 to " + std::to_string(kMaxSide) +
                     " pixels a side");
  if (!f.has_attr("/", "pixel_size_nm")) throw InputError(path + ": missing attribute pixel_size_nm on /");
  ReconstructionContent r;
  r.height = static_cast<int>(d[0]);
  r.width = static_cast<int>(d[1]);
  r.pixel_size_nm = f.attr_double("/", "pixel_size_nm");
  if (!(r.pixel_size_nm > 0) || !std::isfinite(r.pixel_size_nm))
    throw InputError(path + ": attribute pixel_size_nm must be a finite number > 0, got " +
                     std::to_string(r.pixel_size_nm));
  return r;
}

}  // namespace

ReconstructionContent read_reconstruction_image(const std::string& path) {
  const h5::File f = h5::File::open(path);
  ReconstructionContent r = read_summary(f);
  r.image = f.read<float>("/image");
  return r;
}

ReconstructionContent read_reconstruction_summary(const std::string& path) {
  const h5::File f = h5::File::open(path);
  ReconstructionContent r = read_summary(f);
  constexpr int64_t kMaxCount = int64_t(1) << 53;
  if (f.has_attr("/", "frames")) r.frames = static_cast<uint64_t>(f.attr_int("/", "frames", 0, kMaxCount));
  if (f.has_attr("/", "shards")) r.shards = static_cast<uint64_t>(f.attr_int("/", "shards", 0, kMaxCount));
  if (f.has_attr("/", "raw_pixel_size_nm")) r.raw_pixel_size_nm = f.attr_double("/", "raw_pixel_size_nm");
  if (f.has_attr("/", "raw_width")) r.raw_width = static_cast<int>(f.attr_int("/", "raw_width", 0, 1 << 20));
  if (f.has_attr("/", "raw_height"))
    r.raw_height = static_cast<int>(f.attr_int("/", "raw_height", 0, 1 << 20));
  if (f.has_attr("/image", "render")) r.render = f.attr_string("/image", "render");
  if (f.has_attr("/", "source_file")) r.source_file = f.attr_string("/", "source_file");
  return r;
}

}  // namespace dsir
