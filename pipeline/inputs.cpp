#include "pipeline/inputs.h"

#include <glob.h>

#include <algorithm>
#include <cctype>
#include <filesystem>

#include "pipeline/errors.h"
#include "pipeline/log.h"

namespace dsir {

std::string ingested_path(const std::string& stack, const std::string& folder) {
  return (std::filesystem::path(folder) / (std::filesystem::path(stack).stem().string() + ".h5")).string();
}

bool natural_less(const std::string& a, const std::string& b) {
  size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    if (std::isdigit(static_cast<unsigned char>(a[i])) && std::isdigit(static_cast<unsigned char>(b[j]))) {
      size_t i2 = i, j2 = j;
      while (i2 < a.size() && std::isdigit(static_cast<unsigned char>(a[i2]))) ++i2;
      while (j2 < b.size() && std::isdigit(static_cast<unsigned char>(b[j2]))) ++j2;
      std::string na = a.substr(i, i2 - i), nb = b.substr(j, j2 - j);
      na.erase(0, std::min(na.find_first_not_of('0'), na.size()));
      nb.erase(0, std::min(nb.find_first_not_of('0'), nb.size()));
      if (na.size() != nb.size()) return na.size() < nb.size();
      if (na != nb) return na < nb;
      i = i2;
      j = j2;
    } else {
      if (a[i] != b[j]) return a[i] < b[j];
      ++i;
      ++j;
    }
  }
  return a.size() - i < b.size() - j;
}

std::vector<std::string> expand_inputs(const std::vector<std::string>& patterns) {
  std::vector<std::string> out;
  for (const auto& p : patterns) {
    if (p.find_first_of("*?[") == std::string::npos) {
      out.push_back(p);
      continue;
    }
    glob_t g{};
    const int rc = ::glob(p.c_str(), 0, nullptr, &g);
    std::vector<std::string> matches;
    if (rc == 0)
      for (size_t i = 0; i < g.gl_pathc; ++i)
        if (std::filesystem::is_regular_file(g.gl_pathv[i])) matches.emplace_back(g.gl_pathv[i]);
    globfree(&g);
    if (rc != 0 && rc != GLOB_NOMATCH) throw InputError("'" + p + "': cannot expand the pattern");
    if (matches.empty()) throw InputError("'" + p + "': no file matches");
    std::sort(matches.begin(), matches.end(), natural_less);
    log::debug("inputs: '{}' matches {} file(s), {} first", p, matches.size(), matches.front());
    out.insert(out.end(), matches.begin(), matches.end());
  }
  return out;
}

}  // namespace dsir
