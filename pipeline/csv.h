#pragma once
// Localization / ground-truth tables: one in-memory form (Emitter), read from ThunderSTORM,
// SMLM-challenge and DSIR CSVs, written in ThunderSTORM's format, and stored in HDF5 tables.
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "pipeline/h5store.h"

namespace dsir {

// Why a localization's photometry is not to be trusted: bits of Emitter::photometry_flags, set by
// infer's fit (stages/infer/photometry.h); 0 = the fit passed.
namespace photometry_flag {
constexpr int not_measured = -1;        // no fit was made (ground truth, other tools' files)
constexpr int no_fit = 1;               // window too small, degenerate or non-finite result
constexpr int nonpositive_photons = 2;  // photons <= 0
constexpr int negative_background = 4;  // background < 0
constexpr int sigma_at_bound = 8;       // PSF sigma at an end of the search interval
constexpr int all = 15;
}  // namespace photometry_flag

struct Emitter {
  static constexpr double nan = std::numeric_limits<double>::quiet_NaN();
  int64_t frame = 0;  // 0-based in memory and in HDF5; 1-based in CSV files
  double x_nm = 0;    // along image columns
  double y_nm = 0;    // along image rows
  double sigma_nm = nan;
  double photons = nan;
  double offset = nan;          // background level (photons)
  double bkgstd = nan;          // background noise (photons)
  double uncertainty_nm = nan;  // lateral localization precision (reduce: Mortensen, stages/reduce/exports.h)
  double confidence = nan;      // network confidence (predicted localizations only)
  double x_raw_nm = nan;        // before drift correction (reduce.drift); NaN when not corrected
  double y_raw_nm = nan;
  int photometry_flags = photometry_flag::not_measured;
  bool photometry_failed() const { return photometry_flags > 0; }
};

enum class CsvFormat { ThunderStorm, SmlmChallenge, Dsir };

struct LocalizationFile {
  CsvFormat format = CsvFormat::ThunderStorm;
  std::vector<Emitter> emitters;
};

// Recognises the format from the header. InputError naming the file and line on a missing
// column, an unparsable or non-finite number, or a frame < 1.
LocalizationFile read_localizations_csv(const std::string& path);

// A decimal number, the whole text: what CSV writers produce and what a config's number may be.
// Unlike std::stod, no hexadecimal ("0x10"), no leading blanks, no "inf" or "nan" (a leading '+'
// is allowed).
bool parse_decimal(const std::string& text, double& v);

// ThunderSTORM's exact header: "id","frame","x [nm]","y [nm]","sigma [nm]","intensity [photon]",
// "offset [photon]","bkgstd [photon]" (+ "uncertainty [nm]" when any emitter has one, + "confidence"
// when any has one, + "photometry_flags" when any was measured, + "x_raw [nm]", "y_raw [nm]" when
// drift-corrected). NaN is written as 0, as ThunderSTORM does. Atomic.
void write_thunderstorm_csv(const std::string& path, const std::vector<Emitter>& emitters);

// HDF5 table form (columns frame, x_nm, y_nm, sigma_nm, photons, offset, bkgstd, uncertainty_nm,
// confidence; photometry_flags when any emitter was measured; x_raw_nm, y_raw_nm when any emitter
// has them).
h5::Table emitters_to_table(const std::vector<Emitter>& emitters);
std::vector<Emitter> table_to_emitters(const h5::Table& table, const std::string& where);

}  // namespace dsir
