// libFuzzer harness: a YAML config through dsir::Config::load, the schema's validation included
// (pipeline/config.cpp's own sections have a key of every type: int, float, bool, string, choice,
// float list, string list). Comment lines "#=key=value" become command-line overrides. What loads
// must round-trip: the effective config that dsir writes beside every run (to_yaml) loads back to
// the same config, since --resume and sweeps read it again.
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "pipeline/config.h"
#include "pipeline/errors.h"
#include "tests/fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static dsir::fuzz::MemoryFile file("dsir-fuzz-config");
  static dsir::fuzz::MemoryFile written("dsir-fuzz-config-effective");
  const std::string text(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> overrides;
  for (size_t at = 0; at < text.size();) {
    size_t end = text.find('\n', at);
    if (end == std::string::npos) end = text.size();
    if (text.compare(at, 2, "#=") == 0) overrides.push_back(text.substr(at + 2, end - at - 2));
    at = end + 1;
  }
  std::string effective;
  try {
    effective = dsir::Config::load(file.hold(data, size), overrides).to_yaml();
  } catch (const dsir::Error& e) {
    dsir::fuzz::report_refused(e.what());
    return 0;
  }
  dsir::fuzz::report_read();
  try {
    const std::string again = dsir::Config::load(written.hold(effective)).to_yaml();
    if (again == effective) return 0;
    std::fprintf(stderr, "the effective config does not load back the same:\n%s\n--- loads as ---\n%s\n",
                 effective.c_str(), again.c_str());
  } catch (const dsir::Error& e) {
    std::fprintf(stderr, "the effective config does not load back: %s\n%s\n", e.what(), effective.c_str());
  }
  std::abort();
}
