// libFuzzer harness: raw.h5 (pipeline/formats/raw_file: RawFileReader) on arbitrary bytes, as `dsir upscale`
// reads it: the shape and pixel size, the ground-truth table, frames and their statistics. Only dsir's typed
// errors may come out.
#include <algorithm>

#include "pipeline/errors.h"
#include "pipeline/formats/raw_file.h"
#include "tests/fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static dsir::fuzz::MemoryFile file("dsir-fuzz-raw-h5");
  try {
    dsir::RawFileReader raw(file.hold(data, size));
    raw.emitters();
    // Frames up to what a test can hold; mean_std reads every frame, so only for small stacks.
    const uint64_t frame = uint64_t(raw.height()) * uint64_t(raw.width());
    if (frame > (uint64_t(1) << 20)) return 0;
    raw.read(0, 1);
    raw.read(raw.frames() - 1, 1);
    if (raw.frames() * frame <= (uint64_t(1) << 20)) raw.mean_std();
    dsir::fuzz::report_read();
  } catch (const dsir::Error& e) {
    dsir::fuzz::report_refused(e.what());
  }
  return 0;
}
