// libFuzzer harness: the localization CSV reader, every dialect it recognises from the header
// (ThunderSTORM, SMLM challenge, DSIR); the seeds hold files of each. What it accepts must keep
// the reader's promises: frames >= 0 (0-based) and finite coordinates.
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "pipeline/csv.h"
#include "pipeline/errors.h"
#include "tests/fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static dsir::fuzz::MemoryFile file("dsir-fuzz-csv");
  dsir::LocalizationFile read;
  try {
    read = dsir::read_localizations_csv(file.hold(data, size));
  } catch (const dsir::Error& e) {
    dsir::fuzz::report_refused(e.what());
    return 0;
  }
  dsir::fuzz::report_read();
  for (const dsir::Emitter& e : read.emitters)
    if (e.frame < 0 || !std::isfinite(e.x_nm) || !std::isfinite(e.y_nm)) {
      std::fprintf(stderr, "accepted an emitter with frame %lld, x %g, y %g\n",
                   static_cast<long long>(e.frame), e.x_nm, e.y_nm);
      std::abort();
    }
  return 0;
}
