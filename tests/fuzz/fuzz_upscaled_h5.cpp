// libFuzzer harness: upscaled.h5 as training opens it (pipeline/formats/upscaled_file: shapes and
// attributes, validated without LibTorch) and reads a batch's rows of /inputs and /labels.
#include "pipeline/errors.h"
#include "pipeline/formats/upscaled_file.h"
#include "tests/fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static dsir::fuzz::MemoryFile file("dsir-fuzz-upscaled-h5");
  try {
    const dsir::UpscaledFileReader f(file.hold(data, size));
    // UpscaledSet::batch reads runs of rows like these.
    f.inputs(0, 1);
    f.labels(f.layout().frames - 1, 1);
    dsir::fuzz::report_read();
  } catch (const dsir::Error& e) {
    dsir::fuzz::report_refused(e.what());
  }
  return 0;
}
