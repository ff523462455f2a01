#pragma once
// For tests of checksums: corrupts a file byte-wise where its bytes equal `data` (a dataset stored
// unfiltered but for a checksum holds its values as they are in memory), as a failing disk would.
#include <algorithm>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace dsir::test {

// Inverts the middle byte of the first occurrence of `data` in the file; false if absent.
template <class T>
bool flip_byte_inside(const std::string& path, const std::vector<T>& data) {
  std::vector<char> bytes;
  {
    std::ifstream in(path, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  const char* needle = reinterpret_cast<const char*>(data.data());
  const auto at = std::search(bytes.begin(), bytes.end(), needle, needle + data.size() * sizeof(T));
  if (at == bytes.end()) return false;
  const auto middle = (at - bytes.begin()) + static_cast<long>(data.size() * sizeof(T) / 2);
  bytes[static_cast<size_t>(middle)] = static_cast<char>(~bytes[static_cast<size_t>(middle)]);
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  return static_cast<bool>(out);
}

}  // namespace dsir::test
