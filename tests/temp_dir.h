#pragma once
// The temporary folder of a test that writes files: one per test and process (ctest runs each
// test of a binary in a process of its own, several at once), made empty before the test and
// removed after it. Fixtures derive from TempDirTest and write under dir_.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>

namespace dsir::test {

class TempDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* test = ::testing::UnitTest::GetInstance()->current_test_info();
    std::string name = std::string(test->test_suite_name()) + "_" + test->name();
    for (char& c : name)
      if (c == '/') c = '_';  // parameterized tests are named Suite/Name/N
    dir_ = std::filesystem::path(::testing::TempDir()) / ("dsir_" + name + "_" + std::to_string(getpid()));
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string dir() const { return dir_.string(); }
  std::string in_dir(const std::string& name) const { return (dir_ / name).string(); }

  std::filesystem::path dir_;
};

}  // namespace dsir::test
