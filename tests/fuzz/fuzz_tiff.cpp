// libFuzzer harness: dsir::tiff::Reader on arbitrary bytes. It must either read frames or throw
// dsir's typed errors; anything else (a crash, a sanitizer report, another exception) is a finding.
#include <algorithm>
#include <vector>

#include "pipeline/errors.h"
#include "pipeline/tiff.h"
#include "tests/fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static dsir::fuzz::MemoryFile file("dsir-fuzz-tiff");
  try {
    dsir::tiff::Reader reader(file.hold(data, size));
    const dsir::tiff::StackInfo& info = reader.info();
    // The caller allocates the frame (ingest does so for any size the file declares, and an
    // impossible one is its out-of-memory report): here only frames a test can afford.
    const uint64_t pixels = uint64_t(info.width) * info.height;
    if (pixels > (uint64_t(1) << 22)) return 0;
    std::vector<float> frame(pixels);
    // In order (libtiff's next-directory path), then back to the last and the first (its seek).
    const uint64_t n = std::min<uint64_t>(info.frames, 3);
    for (uint64_t k = 0; k < n; ++k) reader.read_frame(k, frame.data());
    reader.read_frame(info.frames - 1, frame.data());
    reader.read_frame(0, frame.data());
    dsir::fuzz::report_read();
  } catch (const dsir::Error& e) {
    dsir::fuzz::report_refused(e.what());
  }
  return 0;
}
