#pragma once
// Localization / ground-truth tables: one in-memory form (Emitter), read from ThunderSTORM,
// SMLM-challenge and DSIR CSVs, written in ThunderSTORM's format, and stored in HDF5 tables.
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "pipeline/h5store.h"

namespace dsir {

struct Emitter {
  static constexpr double nan = std::numeric_limits<double>::quiet_NaN();
  int64_t frame = 0;  // 0-based in memory and in HDF5; 1-based in CSV files
  double x_nm = 0;    // along image columns
  double y_nm = 0;    // along image rows
  double sigma_nm = nan;
  double photons = nan;
  double offset = nan;      // background level (photons)
  double bkgstd = nan;      // background noise (photons)
  double confidence = nan;  // network confidence (predicted localizations only)
  double x_raw_nm = nan;    // before drift correction (reduce.drift); NaN when not corrected
  double y_raw_nm = nan;
};

enum class CsvFormat { ThunderStorm, SmlmChallenge, Dsir };

struct LocalizationFile {
  CsvFormat format = CsvFormat::ThunderStorm;
  std::vector<Emitter> emitters;
};

// Recognises the format from the header. InputError naming the file and line on a missing
// column, an unparsable or non-finite number, or a frame < 1.
LocalizationFile read_localizations_csv(const std::string& path);

// ThunderSTORM's exact header: "id","frame","x [nm]","y [nm]","sigma [nm]","intensity [photon]",
// "offset [photon]","bkgstd [photon]" (+ "confidence" when any emitter has one, + "x_raw [nm]",
// "y_raw [nm]" when drift-corrected). Atomic.
void write_thunderstorm_csv(const std::string& path, const std::vector<Emitter>& emitters);

// HDF5 table form (columns frame, x_nm, y_nm, sigma_nm, photons, offset, bkgstd, confidence, and
// x_raw_nm, y_raw_nm when any emitter has them).
h5::Table emitters_to_table(const std::vector<Emitter>& emitters);
std::vector<Emitter> table_to_emitters(const h5::Table& table, const std::string& where);

}  // namespace dsir
