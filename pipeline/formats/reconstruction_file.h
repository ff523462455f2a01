#pragma once
// reconstruction.h5 (docs/data-format.md, "reconstruction.h5"): its one writer (`reduce`) and its
// readers (`evaluate`'s image correlation, `report`'s captions).
#include <cstdint>
#include <string>
#include <vector>

#include "pipeline/csv.h"
#include "pipeline/h5store.h"

namespace dsir {

// What a pixel of /network_sum counts (and of /image when rendered as the sum).
inline constexpr const char* kNetworkSumUnit =
    "emitters per pixel (network output / label scale, summed over frames)";

struct ReconstructionContent {
  int width = 0, height = 0;  // of the images, on the upscaled grid
  double pixel_size_nm = 0;
  std::vector<float> image;        // as rendered (`render`)
  std::string render, image_unit;  // reduce.render's value; what a pixel of /image counts
  std::vector<float> network_sum;  // the network's maps summed over frames, whatever `render`
  std::vector<Emitter> localizations;
  uint64_t frames = 0, shards = 0;
  double raw_pixel_size_nm = 0;
  int raw_width = 0, raw_height = 0;
  std::string source_file;  // the acquisition's raw.h5 (read back only; written with the shards' attributes)
};

// Writes atomically; `attributes` (provenance and the shards' shared attributes) go on "/".
void write_reconstruction(const std::string& path, const ReconstructionContent& r,
                          const h5::Attributes& attributes);

// The rendered image and its pixel size (the rest of the content left empty): InputError naming
// the file and what is missing or malformed.
ReconstructionContent read_reconstruction_image(const std::string& path);
// The same without the image: its size, pixel sizes, frames, shards, render and source_file
// (the report's captions); what is absent stays empty or 0.
ReconstructionContent read_reconstruction_summary(const std::string& path);

}  // namespace dsir
