#pragma once
// The current time in UTC as text: provenance's created_utc and a lock's start (ISO 8601, the
// default), the report's "made" line.
#include <ctime>
#include <string>

namespace dsir {

inline std::string utc_now(const char* strftime_format = "%Y-%m-%dT%H:%M:%SZ") {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);  // not std::gmtime: its buffer is shared between threads
  char buf[64];
  std::strftime(buf, sizeof buf, strftime_format, &tm);
  return buf;
}

}  // namespace dsir
