#pragma once
// Localization tables in the formats users' tools open: picasso's localizations.hdf5 + .yaml
// (ThunderSTORM's CSV is written by pipeline/csv.h).
#include <cstdint>
#include <string>
#include <vector>

#include "pipeline/csv.h"
#include "pipeline/h5store.h"

namespace dsir {

// Lateral localization precision (Mortensen et al. 2010, as picasso computes lpx/lpy), in the
// units of `sigma`: photons N, PSF sigma s, background b photons per pixel (pixel size 1 in those
// units), doubled variance with EM gain. NaN when N <= 0.
double localization_precision(double photons, double sigma, double background, bool em_gain);

struct PicassoInfo {
  int width = 0, height = 0;  // camera pixels
  uint64_t frames = 0;
  double pixel_size_nm = 0;  // camera pixel
  bool em_gain = false;
  std::string generated_by;
};

// picasso's /locs table: frame (uint32), x, y (camera pixels, x = x_nm / pixel size, as picasso's
// ThunderSTORM import), photons, sx, sy, bg, lpx, lpy (float32), plus dsir's confidence. Rows
// picasso would discard when loading (not finite, outside (0, Width) x (0, Height), lpx <= 0)
// are left out and counted in `dropped`.
h5::Table picasso_table(const std::vector<Emitter>& locs, const PicassoInfo& info, size_t* dropped = nullptr);

// Writes `path` (.hdf5, dataset /locs) and the .yaml beside it, both atomically. Returns the
// number of rows written.
size_t write_picasso(const std::string& path, const std::vector<Emitter>& locs, const PicassoInfo& info,
                     const h5::Attributes& provenance);

}  // namespace dsir
