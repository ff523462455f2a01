// libFuzzer harness: a model or checkpoint file's metadata (stages/train/model_meta), which
// load_model reads before LibTorch sees the file, and the optimizer attributes --resume reads.
// The tensors' own reading (load_state) needs LibTorch and is not fuzzed here; the HDF5 reads it
// makes (shape, read<float>) are the ones the other HDF5 harnesses exercise.
#include "pipeline/errors.h"
#include "pipeline/formats/checkpoint_meta.h"
#include "tests/fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static dsir::fuzz::MemoryFile file("dsir-fuzz-checkpoint-h5");
  try {
    const dsir::h5::File f = dsir::h5::File::open(file.hold(data, size));
    dsir::read_model_meta(f);
    if (f.has("/optimizer")) {
      f.attr_int("/optimizer", "step", 0, int64_t(1) << 53);
      f.attr_double("/optimizer", "lr");
    }
    dsir::fuzz::report_read();
  } catch (const dsir::Error& e) {
    dsir::fuzz::report_refused(e.what());
  }
  return 0;
}
