#pragma once
// Tests that compare against ../shared (DSIR's reference outputs, real demo data) skip where it is
// absent, but CI always has it: there `.ci/run` sets DSIR_REQUIRE_SHARED=1 and a missing file
// fails the test, so the DSIR-parity checks can never silently stop running.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>

namespace dsir::test {

inline bool shared_required() {
  const char* v = std::getenv("DSIR_REQUIRE_SHARED");
  return v != nullptr && std::strcmp(v, "") != 0 && std::strcmp(v, "0") != 0;
}

}  // namespace dsir::test

// In a test body: skip (or, under DSIR_REQUIRE_SHARED=1, fail) unless `file` exists.
#define DSIR_NEED_SHARED_FILE(file)                                                      \
  do {                                                                                   \
    const std::filesystem::path dsir_needed_(file);                                      \
    if (!std::filesystem::exists(dsir_needed_)) {                                        \
      if (::dsir::test::shared_required())                                               \
        FAIL() << "shared file missing under DSIR_REQUIRE_SHARED=1: " << dsir_needed_;   \
      GTEST_SKIP() << "shared file absent: " << dsir_needed_;                            \
    }                                                                                    \
  } while (0)
