#pragma once
// picasso's localization file (docs/data-format.md, "picasso's localizations.hdf5"): a compound
// /locs table in camera pixels and a .yaml beside it with the field's size and pixel size. Written
// by reduce, read by evaluate (dsir's files and picasso's own).
#include <cstdint>
#include <string>
#include <vector>

#include "pipeline/csv.h"
#include "pipeline/h5store.h"

namespace dsir {

struct PicassoInfo {
  int width = 0, height = 0;  // camera pixels (0 when a read .yaml does not say)
  uint64_t frames = 0;
  double pixel_size_nm = 0;  // camera pixel
  std::string generated_by;
};

// picasso's /locs table: frame (uint32), x, y (camera pixels, x = x_nm / pixel size, as picasso's
// ThunderSTORM import), photons, sx, sy, bg, lpx, lpy (= uncertainty_nm / pixel size), confidence
// (float32), and photometry_flags (int32) when any localization was measured. Photometry that is
// NaN is written as 0, as in the CSV. Rows picasso would discard when loading (x, y or lpx not
// finite, outside (0, Width) x (0, Height), lpx <= 0) are left out and counted in `dropped`.
h5::Table picasso_table(const std::vector<Emitter>& locs, const PicassoInfo& info, size_t* dropped = nullptr);

// Writes `path` (.hdf5, dataset /locs) and the .yaml beside it, both atomically. Returns the
// number of rows written.
size_t write_picasso(const std::string& path, const std::vector<Emitter>& locs, const PicassoInfo& info,
                     const h5::Attributes& provenance);

struct PicassoFile {
  PicassoInfo info;
  std::vector<Emitter> emitters;  // nm, frames 0-based
};

// Reads a picasso localization file: /locs needs frame, x, y (other columns are optional: photons,
// sx, sy, bg, lpx, lpy, confidence, photometry_flags); the .yaml beside it (one or several YAML
// documents, as picasso appends them) needs Pixelsize (or "Pixel Size"), > 0. InputError naming
// the file and the column or key otherwise.
PicassoFile read_picasso(const std::string& path);

// Localizations from a picasso file (.hdf5 or .h5: read_picasso) or a CSV (read_localizations_csv:
// ThunderSTORM, SMLM challenge, DSIR), chosen by the extension.
std::vector<Emitter> read_localizations_file(const std::string& path);

// The .yaml that goes with a picasso .hdf5.
std::string picasso_yaml_path(const std::string& hdf5_path);

}  // namespace dsir
