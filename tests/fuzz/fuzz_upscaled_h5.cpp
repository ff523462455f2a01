// libFuzzer harness: upscaled.h5 as training opens it (stages/train/upscaled_layout: shapes and
// attributes, validated without LibTorch) and reads a batch's rows of /inputs and /labels.
#include "pipeline/errors.h"
#include "stages/train/upscaled_layout.h"
#include "tests/fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static dsir::fuzz::MemoryFile file("dsir-fuzz-upscaled-h5");
  try {
    const dsir::h5::File f = dsir::h5::File::open(file.hold(data, size));
    const dsir::UpscaledLayout l = dsir::read_upscaled_layout(f);
    // UpscaledSet::batch reads runs of rows like these.
    f.read_rows<float>("/inputs", 0, 1);
    f.read_rows<float>("/labels", l.frames - 1, 1);
    dsir::fuzz::report_read();
  } catch (const dsir::Error& e) {
    dsir::fuzz::report_refused(e.what());
  }
  return 0;
}
