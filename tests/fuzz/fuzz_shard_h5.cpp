// libFuzzer harness: an inference shard as a restarted `dsir infer` checks it before reusing it
// (check_shard) and as `dsir reduce` reads it (read_shard: attributes, /sum, the localizations).
#include "pipeline/errors.h"
#include "pipeline/formats/shard_file.h"
#include "tests/fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static dsir::fuzz::MemoryFile file("dsir-fuzz-shard-h5");
  const std::string& path = file.hold(data, size);
  // The identity of the seed shards (tests/fuzz/make_seeds.cpp), so that the fuzzer can reach
  // the "complete" answer too.
  static const dsir::ShardInfo expected = [] {
    dsir::ShardInfo i;
    i.source_file = "/data/raw.h5";
    i.source_stat = "100 bytes, modified 1.0";
    i.model_checksum = "0123456789abcdef";
    i.settings_hash = "fedcba9876543210";
    i.frame_range = "0:4";
    return i;
  }();
  const dsir::ShardCheck check = dsir::check_shard(path, expected);  // a state, never an exception
  try {
    dsir::read_shard(path);
    if (check.state == dsir::ShardState::complete)
      dsir::fuzz::report_read();
    else
      dsir::fuzz::report_refused(("read, but check_shard: " + check.reason).c_str());
  } catch (const dsir::Error& e) {
    dsir::fuzz::report_refused(e.what());
  }
  return 0;
}
