#include "stages/train/upscaled_layout.h"

#include <cmath>

#include "pipeline/errors.h"

namespace dsir {

UpscaledLayout read_upscaled_layout(const h5::File& file) {
  const std::string& path = file.path();
  for (const char* d : {"/inputs", "/labels"})
    if (!file.has(d))
      throw InputError(path + ": missing dataset " + std::string(d) + " (not an upscaled.h5?)");
  const h5::Dims d = file.shape("/inputs");
  if (d.size() != 3 || file.shape("/labels") != d)
    throw InputError(path + ": /inputs and /labels must both be frames x height x width");
  // A training frame is a patch of at most a few thousand pixels a side; the bound keeps
  // height * width (one frame, allocated per batch item) far from overflow.
  constexpr uint64_t kMaxSide = uint64_t(1) << 16;
  if (d[0] == 0 || d[1] == 0 || d[2] == 0 || d[1] > kMaxSide || d[2] > kMaxSide)
    throw InputError(path + ": /inputs is " + std::to_string(d[0]) + " x " + std::to_string(d[1]) + " x " +
                     std::to_string(d[2]) + "; expected frames of 1 to " + std::to_string(kMaxSide) +
                     " pixels a side");
  for (const char* a : {"factor", "raw_pixel_size_nm", "normalize"})
    if (!file.has_attr("/", a)) throw InputError(path + ": missing attribute " + std::string(a));
  UpscaledLayout l;
  l.frames = d[0];
  l.height = static_cast<int64_t>(d[1]);
  l.width = static_cast<int64_t>(d[2]);
  l.factor = static_cast<int>(file.attr_int("/", "factor", 1, 32));  // upscale.factor's range
  l.raw_pixel_size_nm = file.attr_double("/", "raw_pixel_size_nm");
  if (!(l.raw_pixel_size_nm > 0) || !std::isfinite(l.raw_pixel_size_nm))
    throw InputError(path + ": attribute raw_pixel_size_nm must be a finite number > 0, got " +
                     std::to_string(l.raw_pixel_size_nm));
  l.normalize = file.attr_string("/", "normalize");
  return l;
}

}  // namespace dsir
