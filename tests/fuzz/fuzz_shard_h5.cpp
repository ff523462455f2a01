// libFuzzer harness: an inference shard as `dsir infer` checks it before reusing it
// (shard_complete) and as `dsir reduce` reads it (read_shard_header, then /sum and the
// localization table).
#include "pipeline/csv.h"
#include "pipeline/errors.h"
#include "stages/infer/plan.h"
#include "stages/reduce/shard.h"
#include "tests/fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static dsir::fuzz::MemoryFile file("dsir-fuzz-shard-h5");
  const std::string& path = file.hold(data, size);
  // The identity of the seed shards (tests/fuzz/make_seeds.py), so that the fuzzer can reach
  // the "complete" answer too.
  static const dsir::h5::Attributes identity = {{"source_file", "/data/raw.h5"},
                                                {"source_stat", "100 bytes, modified 1.0"},
                                                {"model_checksum", "0123456789abcdef"},
                                                {"settings_hash", "fedcba9876543210"},
                                                {"frame_range", "0:4"}};
  dsir::shard_complete(path, identity);  // false for anything unreadable, never an exception
  try {
    const dsir::h5::File f = dsir::h5::File::open(path);
    const dsir::ShardHeader h = dsir::read_shard_header(f);
    if (h.height * h.width <= (uint64_t(1) << 20)) f.read<double>("/sum");
    dsir::table_to_emitters(f.read_table("/localizations"), path + ":/localizations");
  } catch (const dsir::Error&) {
  }
  return 0;
}
