#include "pipeline/csv.h"

#include <cctype>
#include <charconv>
#include <cmath>
#include <fstream>
#include <sstream>

#include "pipeline/atomic_file.h"
#include "pipeline/errors.h"

namespace dsir {
namespace {

std::string trim(std::string s) {
  size_t b = s.find_first_not_of(" \t\r\n");
  size_t e = s.find_last_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  s = s.substr(b, e - b + 1);
  if (s.size() >= 2 && s.front() == '"' && s.back() == '"') s = s.substr(1, s.size() - 2);
  return s;
}

}  // namespace

bool parse_decimal(const std::string& text, double& v) {
  const char *first = text.data(), *last = first + text.size();
  if (first != last && *first == '+' && ++first != last && *first == '-') return false;
  const char* digits = first != last && *first == '-' ? first + 1 : first;
  if (digits == last || !(std::isdigit(static_cast<unsigned char>(*digits)) || *digits == '.')) return false;
  const auto [end, ec] = std::from_chars(first, last, v);
  return ec == std::errc() && end == last;
}

namespace {

bool valid_photometry_flags(double v) {
  return v >= photometry_flag::not_measured && v <= photometry_flag::all && v == std::floor(v);
}

// Frames are stored as int64 and computed with in double: beyond 2^53 neither is exact.
constexpr double kMaxFrame = 9007199254740992.0;

std::vector<std::string> split_line(const std::string& line) {
  std::vector<std::string> out;
  std::string cur;
  bool quoted = false;
  for (char c : line) {
    if (c == '"') quoted = !quoted;
    if (c == ',' && !quoted) {
      out.push_back(trim(cur));
      cur.clear();
    } else {
      cur += c;
    }
  }
  out.push_back(trim(cur));
  return out;
}

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// Column roles and the header names each format uses for them.
struct Role {
  const char* role;
  std::vector<const char*> names;
  bool required;
};

}  // namespace

LocalizationFile read_localizations_csv(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw InputError(path + ": cannot open localization CSV");
  std::string line;
  size_t line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (!trim(line).empty()) break;
  }
  if (trim(line).empty()) throw InputError(path + ": empty CSV (no header)");
  std::vector<std::string> header = split_line(line);
  std::vector<std::string> names;
  for (const auto& h : header) names.push_back(lower(h));

  LocalizationFile out;
  auto has = [&](const char* n) {
    for (const auto& x : names)
      if (x == n) return true;
    return false;
  };
  std::vector<Role> roles;
  if (has("xnano") || has("ground-truth")) {
    out.format = CsvFormat::SmlmChallenge;
    roles = {{"frame", {"frame"}, true},
             {"x", {"xnano"}, true},
             {"y", {"ynano"}, true},
             {"photons", {"intensity"}, false}};
  } else if (has("x [nm]")) {
    out.format = CsvFormat::ThunderStorm;
    roles = {{"frame", {"frame"}, true},
             {"x", {"x [nm]"}, true},
             {"y", {"y [nm]"}, true},
             {"sigma", {"sigma [nm]"}, false},
             {"photons", {"intensity [photon]"}, false},
             {"offset", {"offset [photon]"}, false},
             {"bkgstd", {"bkgstd [photon]"}, false},
             {"uncertainty", {"uncertainty [nm]", "uncertainty_xy [nm]"}, false},
             {"confidence", {"confidence"}, false},
             {"photometry_flags", {"photometry_flags"}, false},
             {"x_raw", {"x_raw [nm]"}, false},
             {"y_raw", {"y_raw [nm]"}, false}};
  } else if (has("x") && has("y")) {
    out.format = CsvFormat::Dsir;
    roles = {{"frame", {"frame"}, true}, {"x", {"x"}, true}, {"y", {"y"}, true}};
  } else {
    throw InputError(path + ":" + std::to_string(line_no) +
                     ": unrecognised CSV header; expected ThunderSTORM (\"x [nm]\", \"y [nm]\"), "
                     "SMLM challenge (xnano, ynano) or DSIR (frame, x, y) columns");
  }

  // Column index for each role, -1 when absent.
  std::vector<int> col(roles.size(), -1);
  for (size_t r = 0; r < roles.size(); ++r) {
    for (size_t c = 0; c < names.size(); ++c)
      for (const char* n : roles[r].names)
        if (names[c] == n) col[r] = static_cast<int>(c);
    if (col[r] < 0 && roles[r].required)
      throw InputError(path + ":" + std::to_string(line_no) + ": missing column '" + roles[r].names.front() +
                       "'");
  }

  while (std::getline(in, line)) {
    ++line_no;
    if (trim(line).empty()) continue;
    std::vector<std::string> cells = split_line(line);
    Emitter e;
    for (size_t r = 0; r < roles.size(); ++r) {
      if (col[r] < 0) continue;
      const std::string where =
          path + ":" + std::to_string(line_no) + ": column '" + header[static_cast<size_t>(col[r])] + "'";
      if (static_cast<size_t>(col[r]) >= cells.size())
        throw InputError(where + ": missing value (line has " + std::to_string(cells.size()) + " fields)");
      const std::string& text = cells[static_cast<size_t>(col[r])];
      double v;
      if (!parse_decimal(text, v)) {
        const size_t unsigned_at = text.find_first_not_of("+-");
        const std::string word = lower(unsigned_at == std::string::npos ? text : text.substr(unsigned_at));
        if (word == "nan" || word == "inf" || word == "infinity")
          throw InputError(where + ": value '" + text + "' is not finite");
        throw InputError(where + ": cannot parse '" + text + "' as a decimal number");
      }
      if (!std::isfinite(v)) throw InputError(where + ": value '" + text + "' is not finite");
      std::string role = roles[r].role;
      if (role == "frame") {
        if (v < 1 || v != std::floor(v))
          throw InputError(where + ": frame '" + text + "' must be an integer >= 1 (1-based)");
        if (v > kMaxFrame) throw InputError(where + ": frame '" + text + "' is out of range (at most 2^53)");
        e.frame = static_cast<int64_t>(v) - 1;
      } else if (role == "x") {
        e.x_nm = v;
      } else if (role == "y") {
        e.y_nm = v;
      } else if (role == "sigma") {
        e.sigma_nm = v;
      } else if (role == "photons") {
        e.photons = v;
      } else if (role == "offset") {
        e.offset = v;
      } else if (role == "bkgstd") {
        e.bkgstd = v;
      } else if (role == "uncertainty") {
        e.uncertainty_nm = v;
      } else if (role == "confidence") {
        e.confidence = v;
      } else if (role == "photometry_flags") {
        if (!valid_photometry_flags(v))
          throw InputError(where + ": '" + text + "' is not a photometry flag value (an integer in [-1, " +
                           std::to_string(photometry_flag::all) + "])");
        e.photometry_flags = static_cast<int>(v);
      } else if (role == "x_raw") {
        e.x_raw_nm = v;
      } else if (role == "y_raw") {
        e.y_raw_nm = v;
      }
    }
    out.emitters.push_back(e);
  }
  return out;
}

void write_thunderstorm_csv(const std::string& path, const std::vector<Emitter>& emitters) {
  bool uncertainty = false, confidence = false, flags = false, raw = false;
  for (const auto& e : emitters) {
    uncertainty = uncertainty || !std::isnan(e.uncertainty_nm);
    confidence = confidence || !std::isnan(e.confidence);
    flags = flags || e.photometry_flags != photometry_flag::not_measured;
    raw = raw || !std::isnan(e.x_raw_nm) || !std::isnan(e.y_raw_nm);
  }
  AtomicPath out(path);
  {
    std::ofstream f(out.tmp());
    f << "\"id\",\"frame\",\"x [nm]\",\"y [nm]\",\"sigma [nm]\",\"intensity [photon]\","
         "\"offset [photon]\",\"bkgstd [photon]\""
      << (uncertainty ? ",\"uncertainty [nm]\"" : "") << (confidence ? ",\"confidence\"" : "")
      << (flags ? ",\"photometry_flags\"" : "") << (raw ? ",\"x_raw [nm]\",\"y_raw [nm]\"" : "") << "\n";
    char buf[512];
    auto num = [](double v) {
      if (std::isnan(v)) return std::string("0");
      char b[64];
      std::snprintf(b, sizeof b, "%.5f", v);
      return std::string(b);
    };
    for (size_t i = 0; i < emitters.size(); ++i) {
      const Emitter& e = emitters[i];
      std::snprintf(buf, sizeof buf, "%zu,%lld,%s,%s,%s,%s,%s,%s", i + 1, static_cast<long long>(e.frame + 1),
                    num(e.x_nm).c_str(), num(e.y_nm).c_str(), num(e.sigma_nm).c_str(), num(e.photons).c_str(),
                    num(e.offset).c_str(), num(e.bkgstd).c_str());
      f << buf;
      if (uncertainty) f << "," << num(e.uncertainty_nm);
      if (confidence) f << "," << num(e.confidence);
      if (flags) f << "," << e.photometry_flags;
      if (raw) f << "," << num(e.x_raw_nm) << "," << num(e.y_raw_nm);
      f << "\n";
    }
    f.close();
    if (!f) throw Error(path + ": write failed");
  }
  out.commit();
}

h5::Table emitters_to_table(const std::vector<Emitter>& emitters) {
  h5::Table t;
  auto column = [&](const char* name, h5::DType type, auto get) {
    h5::Column c{name, type, {}};
    c.values.reserve(emitters.size());
    for (const auto& e : emitters) c.values.push_back(get(e));
    t.columns.push_back(std::move(c));
  };
  column("frame", h5::DType::i64, [](const Emitter& e) { return static_cast<double>(e.frame); });
  column("x_nm", h5::DType::f64, [](const Emitter& e) { return e.x_nm; });
  column("y_nm", h5::DType::f64, [](const Emitter& e) { return e.y_nm; });
  column("sigma_nm", h5::DType::f64, [](const Emitter& e) { return e.sigma_nm; });
  column("photons", h5::DType::f64, [](const Emitter& e) { return e.photons; });
  column("offset", h5::DType::f64, [](const Emitter& e) { return e.offset; });
  column("bkgstd", h5::DType::f64, [](const Emitter& e) { return e.bkgstd; });
  column("uncertainty_nm", h5::DType::f64, [](const Emitter& e) { return e.uncertainty_nm; });
  column("confidence", h5::DType::f64, [](const Emitter& e) { return e.confidence; });
  // Tables of emitters no fit has measured (ground truth) keep their layout.
  bool measured = false;
  for (const auto& e : emitters) measured = measured || e.photometry_flags != photometry_flag::not_measured;
  if (measured)
    column("photometry_flags", h5::DType::i32, [](const Emitter& e) { return double(e.photometry_flags); });
  // Only drift-corrected tables carry the raw coordinates: other tables keep their layout.
  bool raw = false;
  for (const auto& e : emitters) raw = raw || !std::isnan(e.x_raw_nm) || !std::isnan(e.y_raw_nm);
  if (raw) {
    column("x_raw_nm", h5::DType::f64, [](const Emitter& e) { return e.x_raw_nm; });
    column("y_raw_nm", h5::DType::f64, [](const Emitter& e) { return e.y_raw_nm; });
  }
  return t;
}

std::vector<Emitter> table_to_emitters(const h5::Table& t, const std::string& where) {
  std::vector<Emitter> out(t.rows());
  if (const h5::Column* c = t.find("frame"))
    for (size_t i = 0; i < out.size(); ++i) {
      const double v = c->values[i];
      if (!(v >= 0 && v <= kMaxFrame && v == std::floor(v)))
        throw InputError(where + ": row " + std::to_string(i) + ": frame " + std::to_string(v) +
                         " is not an integer in [0, 2^53]");
    }
  auto fill = [&](const char* name, auto set) {
    if (const h5::Column* c = t.find(name))
      for (size_t i = 0; i < out.size(); ++i) set(out[i], c->values[i]);
  };
  fill("frame", [](Emitter& e, double v) { e.frame = static_cast<int64_t>(v); });
  fill("x_nm", [](Emitter& e, double v) { e.x_nm = v; });
  fill("y_nm", [](Emitter& e, double v) { e.y_nm = v; });
  fill("sigma_nm", [](Emitter& e, double v) { e.sigma_nm = v; });
  fill("photons", [](Emitter& e, double v) { e.photons = v; });
  fill("offset", [](Emitter& e, double v) { e.offset = v; });
  fill("bkgstd", [](Emitter& e, double v) { e.bkgstd = v; });
  fill("uncertainty_nm", [](Emitter& e, double v) { e.uncertainty_nm = v; });
  fill("confidence", [](Emitter& e, double v) { e.confidence = v; });
  if (const h5::Column* c = t.find("photometry_flags"))
    for (size_t i = 0; i < out.size(); ++i) {
      if (!valid_photometry_flags(c->values[i]))
        throw InputError(where + ": row " + std::to_string(i) + ": photometry_flags " +
                         std::to_string(c->values[i]) + " is not an integer in [-1, " +
                         std::to_string(photometry_flag::all) + "]");
      out[i].photometry_flags = static_cast<int>(c->values[i]);
    }
  fill("x_raw_nm", [](Emitter& e, double v) { e.x_raw_nm = v; });
  fill("y_raw_nm", [](Emitter& e, double v) { e.y_raw_nm = v; });
  return out;
}

}  // namespace dsir
