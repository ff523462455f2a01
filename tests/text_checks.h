#pragma once
// Checks on the text of error messages, shared by the test files of one binary (a unity build
// compiles them as one translation unit, so each helper is defined once, here).
#include <string>

namespace dsir::test {

inline bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

}  // namespace dsir::test
