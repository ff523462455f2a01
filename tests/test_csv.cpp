// Tests of pipeline/csv.h: reading ThunderSTORM, SMLM-challenge and DSIR localization CSVs,
// writing ThunderSTORM CSVs, and the HDF5 table form of emitters.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "pipeline/csv.h"
#include "pipeline/errors.h"
#include "pipeline/h5store.h"
#include "tests/shared_data.h"
#include "tests/temp_dir.h"
#include "tests/text_checks.h"

namespace fs = std::filesystem;
using dsir::CsvFormat;
using dsir::Emitter;
using dsir::InputError;
using dsir::read_localizations_csv;
using dsir::write_thunderstorm_csv;

namespace {

const std::string kDemoCsv = std::string(DSIR_SHARED_DIR) + "/data/deepstorm-demo1/positions_demo1.csv";
const std::string kSmlmCsv =
    std::string(DSIR_SHARED_DIR) + "/data/smlm2013-tubulins-frame20/tubulins1_00020.csv";
const std::string kThunderstormHeader =
    "\"id\",\"frame\",\"x [nm]\",\"y [nm]\",\"sigma [nm]\",\"intensity [photon]\","
    "\"offset [photon]\",\"bkgstd [photon]\"";

class CsvTest : public dsir::test::TempDirTest {
 protected:
  std::string write(const std::string& text, const std::string& name = "locs.csv") {
    const std::string path = (dir_ / name).string();
    std::ofstream(path, std::ios::binary) << text;
    return path;
  }

  // Reads `text` as a CSV, expecting an InputError; returns its message.
  std::string read_error(const std::string& text, const std::string& name = "bad.csv") {
    const std::string path = write(text, name);
    try {
      read_localizations_csv(path);
    } catch (const InputError& e) {
      return e.what();
    } catch (const std::exception& e) {
      ADD_FAILURE() << "expected dsir::InputError, got another exception: " << e.what();
      return "";
    }
    ADD_FAILURE() << "expected dsir::InputError for:\n" << text;
    return "";
  }
};

using dsir::test::contains;

std::string read_all(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream ss(text);
  std::string line;
  while (std::getline(ss, line)) out.push_back(line);
  return out;
}

Emitter make_emitter(int64_t frame, double x, double y, double sigma, double photons, double offset,
                     double bkgstd, double confidence = Emitter::nan) {
  Emitter e;
  e.frame = frame;
  e.x_nm = x;
  e.y_nm = y;
  e.sigma_nm = sigma;
  e.photons = photons;
  e.offset = offset;
  e.bkgstd = bkgstd;
  e.confidence = confidence;
  return e;
}

// NaN-aware equality for the optional fields.
void expect_same(double a, double b, double tol, const char* what, size_t i) {
  if (std::isnan(a) || std::isnan(b)) {
    EXPECT_TRUE(std::isnan(a) && std::isnan(b)) << what << " of emitter " << i << ": " << a << " vs " << b;
  } else {
    EXPECT_NEAR(a, b, tol) << what << " of emitter " << i;
  }
}

void expect_same_emitters(const std::vector<Emitter>& a, const std::vector<Emitter>& b, double tol) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].frame, b[i].frame) << "frame of emitter " << i;
    expect_same(a[i].x_nm, b[i].x_nm, tol, "x_nm", i);
    expect_same(a[i].y_nm, b[i].y_nm, tol, "y_nm", i);
    expect_same(a[i].sigma_nm, b[i].sigma_nm, tol, "sigma_nm", i);
    expect_same(a[i].photons, b[i].photons, tol, "photons", i);
    expect_same(a[i].offset, b[i].offset, tol, "offset", i);
    expect_same(a[i].bkgstd, b[i].bkgstd, tol, "bkgstd", i);
    expect_same(a[i].confidence, b[i].confidence, tol, "confidence", i);
    expect_same(a[i].uncertainty_nm, b[i].uncertainty_nm, tol, "uncertainty_nm", i);
    EXPECT_EQ(a[i].photometry_flags, b[i].photometry_flags) << "photometry_flags of emitter " << i;
  }
}

// ---------------------------------------------------------------------------------------------
// Reading the real files

TEST(CsvRealData, ReadsThunderstormDemoFile) {
  DSIR_NEED_SHARED_FILE(kDemoCsv);
  const auto file = read_localizations_csv(kDemoCsv);
  EXPECT_EQ(file.format, CsvFormat::ThunderStorm);
  ASSERT_EQ(file.emitters.size(), 4956u);
  const Emitter& e = file.emitters.front();
  EXPECT_EQ(e.frame, 0);  // 1 in the file
  EXPECT_DOUBLE_EQ(e.x_nm, 67.843);
  EXPECT_DOUBLE_EQ(e.y_nm, 2484.15594);
  EXPECT_DOUBLE_EQ(e.sigma_nm, 111.28713);
  EXPECT_DOUBLE_EQ(e.photons, 2458.46515);
  EXPECT_DOUBLE_EQ(e.offset, 50);
  EXPECT_DOUBLE_EQ(e.bkgstd, 4.47214);
  EXPECT_TRUE(std::isnan(e.confidence));
  const Emitter& last = file.emitters.back();
  EXPECT_EQ(last.frame, 19);
  EXPECT_DOUBLE_EQ(last.x_nm, 6384.35579);
  EXPECT_DOUBLE_EQ(last.y_nm, 5200.34775);
  // 20 frames, 0-based, non-decreasing.
  for (size_t i = 1; i < file.emitters.size(); ++i) {
    EXPECT_GE(file.emitters[i].frame, file.emitters[i - 1].frame);
    EXPECT_LE(file.emitters[i].frame, 19);
  }
}

TEST(CsvRealData, ReadsSmlmChallengeFileWithSpacesAfterCommas) {
  DSIR_NEED_SHARED_FILE(kSmlmCsv);
  const auto file = read_localizations_csv(kSmlmCsv);
  EXPECT_EQ(file.format, CsvFormat::SmlmChallenge);
  ASSERT_EQ(file.emitters.size(), 49u);
  for (const auto& e : file.emitters) EXPECT_EQ(e.frame, 19);
  const Emitter& e = file.emitters.front();
  EXPECT_DOUBLE_EQ(e.x_nm, 25713.33);
  EXPECT_DOUBLE_EQ(e.y_nm, 26788.90);
  EXPECT_DOUBLE_EQ(e.photons, 1655.48);
  EXPECT_TRUE(std::isnan(e.sigma_nm));
  EXPECT_TRUE(std::isnan(e.offset));
  EXPECT_DOUBLE_EQ(file.emitters[1].x_nm, 34162.07);
}

// ---------------------------------------------------------------------------------------------
// Header variants

TEST_F(CsvTest, ThunderstormColumnsInAnyOrderWithoutId) {
  const auto file =
      read_localizations_csv(write("y [nm],intensity [photon],frame,x [nm],sigma [nm]\n"
                                   "20.5,1000,3,10.25,150\n"
                                   "40,2000,1,30,120\n"));
  EXPECT_EQ(file.format, CsvFormat::ThunderStorm);
  ASSERT_EQ(file.emitters.size(), 2u);
  const Emitter& a = file.emitters[0];
  EXPECT_EQ(a.frame, 2);
  EXPECT_DOUBLE_EQ(a.x_nm, 10.25);
  EXPECT_DOUBLE_EQ(a.y_nm, 20.5);
  EXPECT_DOUBLE_EQ(a.photons, 1000);
  EXPECT_DOUBLE_EQ(a.sigma_nm, 150);
  EXPECT_TRUE(std::isnan(a.offset));  // column absent
  EXPECT_TRUE(std::isnan(a.bkgstd));
  EXPECT_EQ(file.emitters[1].frame, 0);
  EXPECT_DOUBLE_EQ(file.emitters[1].x_nm, 30);
}

TEST_F(CsvTest, ThunderstormQuotedHeaderWithExtraColumns) {
  const auto file =
      read_localizations_csv(write("\"frame\",\"x [nm]\",\"y [nm]\",\"uncertainty_xy [nm]\",\"chi2\"\n"
                                   "5,1.5,2.5,10,0.9\n"));
  EXPECT_EQ(file.format, CsvFormat::ThunderStorm);
  ASSERT_EQ(file.emitters.size(), 1u);
  EXPECT_EQ(file.emitters[0].frame, 4);
  EXPECT_DOUBLE_EQ(file.emitters[0].x_nm, 1.5);
  EXPECT_DOUBLE_EQ(file.emitters[0].y_nm, 2.5);
}

TEST_F(CsvTest, HeaderNamesAreCaseInsensitive) {
  const auto file = read_localizations_csv(write("Frame,X [NM],Y [nm]\n1,2,3\n"));
  EXPECT_EQ(file.format, CsvFormat::ThunderStorm);
  ASSERT_EQ(file.emitters.size(), 1u);
  EXPECT_DOUBLE_EQ(file.emitters[0].x_nm, 2);
}

TEST_F(CsvTest, ThunderstormConfidenceColumnIsRead) {
  const auto file =
      read_localizations_csv(write(kThunderstormHeader + ",\"confidence\"\n1,2,3.5,4.5,100,500,10,2,0.75\n"));
  ASSERT_EQ(file.emitters.size(), 1u);
  EXPECT_DOUBLE_EQ(file.emitters[0].confidence, 0.75);
  EXPECT_EQ(file.emitters[0].frame, 1);
}

TEST_F(CsvTest, ReadsDsirFormat) {
  const auto file = read_localizations_csv(write("frame,x,y\n1,100.5,200.25\n7,-3,4e3\n"));
  EXPECT_EQ(file.format, CsvFormat::Dsir);
  ASSERT_EQ(file.emitters.size(), 2u);
  EXPECT_EQ(file.emitters[0].frame, 0);
  EXPECT_DOUBLE_EQ(file.emitters[0].x_nm, 100.5);
  EXPECT_DOUBLE_EQ(file.emitters[0].y_nm, 200.25);
  EXPECT_TRUE(std::isnan(file.emitters[0].photons));
  EXPECT_EQ(file.emitters[1].frame, 6);
  EXPECT_DOUBLE_EQ(file.emitters[1].x_nm, -3);
  EXPECT_DOUBLE_EQ(file.emitters[1].y_nm, 4000);
}

TEST_F(CsvTest, SmlmChallengeHeaderWithoutGroundTruthColumn) {
  const auto file = read_localizations_csv(write("frame, xnano, ynano\n 2, 10.5, 20.5\n"));
  EXPECT_EQ(file.format, CsvFormat::SmlmChallenge);
  ASSERT_EQ(file.emitters.size(), 1u);
  EXPECT_EQ(file.emitters[0].frame, 1);
  EXPECT_DOUBLE_EQ(file.emitters[0].x_nm, 10.5);
  EXPECT_TRUE(std::isnan(file.emitters[0].photons));
}

TEST_F(CsvTest, WindowsLineEndingsAndBlankLinesAreAccepted) {
  const auto file = read_localizations_csv(
      write("\r\n" + kThunderstormHeader + "\r\n1,1,2,3,4,5,6,7\r\n\r\n2,2,8,9,10,11,12,13\r\n"));
  ASSERT_EQ(file.emitters.size(), 2u);
  EXPECT_DOUBLE_EQ(file.emitters[0].bkgstd, 7);
  EXPECT_EQ(file.emitters[1].frame, 1);
  EXPECT_DOUBLE_EQ(file.emitters[1].bkgstd, 13);
}

TEST_F(CsvTest, HeaderOnlyFileHasNoEmitters) {
  const auto file = read_localizations_csv(write(kThunderstormHeader + "\n"));
  EXPECT_EQ(file.format, CsvFormat::ThunderStorm);
  EXPECT_TRUE(file.emitters.empty());
}

TEST_F(CsvTest, FrameWrittenAsWholeFloatIsAccepted) {
  const auto file = read_localizations_csv(write("frame,x,y\n3.0,1,2\n"));
  ASSERT_EQ(file.emitters.size(), 1u);
  EXPECT_EQ(file.emitters[0].frame, 2);
}

// ---------------------------------------------------------------------------------------------
// Errors name the file and line

TEST_F(CsvTest, MissingRequiredColumnIsNamed) {
  const std::string msg = read_error("\"frame\",\"x [nm]\",\"sigma [nm]\"\n1,2,3\n");
  EXPECT_TRUE(contains(msg, "bad.csv:1:")) << msg;
  EXPECT_TRUE(contains(msg, "missing column 'y [nm]'")) << msg;
}

TEST_F(CsvTest, MissingFrameColumnIsNamed) {
  const std::string msg = read_error("x,y\n1,2\n");
  EXPECT_TRUE(contains(msg, "bad.csv:1:")) << msg;
  EXPECT_TRUE(contains(msg, "'frame'")) << msg;
}

TEST_F(CsvTest, UnparsableNumberNamesLineColumnAndText) {
  const std::string msg = read_error(
      "frame,x [nm],y [nm]\n"
      "1,2,3\n"
      "1,abc,3\n");
  EXPECT_TRUE(contains(msg, "bad.csv:3:")) << msg;
  EXPECT_TRUE(contains(msg, "abc")) << msg;
  EXPECT_TRUE(contains(msg, "x [nm]")) << msg;
}

TEST_F(CsvTest, NumberWithTrailingGarbageIsRejected) {
  const std::string msg = read_error("frame,x,y\n1,2.5nm,3\n");
  EXPECT_TRUE(contains(msg, "bad.csv:2:")) << msg;
  EXPECT_TRUE(contains(msg, "2.5nm")) << msg;
}

TEST_F(CsvTest, EmptyFieldIsRejected) {
  const std::string msg = read_error("frame,x,y\n1,,3\n");
  EXPECT_TRUE(contains(msg, "bad.csv:2:")) << msg;
  EXPECT_TRUE(contains(msg, "'x'")) << msg;
}

TEST_F(CsvTest, NaNValueIsRejected) {
  const std::string msg = read_error("frame,x [nm],y [nm],sigma [nm]\n1,2,3,4\n2,5,NaN,4\n");
  EXPECT_TRUE(contains(msg, "bad.csv:3:")) << msg;
  EXPECT_TRUE(contains(msg, "NaN")) << msg;
  EXPECT_TRUE(contains(msg, "not finite")) << msg;
}

TEST_F(CsvTest, InfiniteValueIsRejected) {
  const std::string msg = read_error("frame,x,y\n1,inf,3\n");
  EXPECT_TRUE(contains(msg, "bad.csv:2:")) << msg;
  EXPECT_TRUE(contains(msg, "not finite")) << msg;
}

TEST_F(CsvTest, HexadecimalIsNotADecimalNumber) {
  const std::string msg = read_error("frame,x,y\n1,0x10,3\n");
  EXPECT_TRUE(contains(msg, "bad.csv:2:")) << msg;
  EXPECT_TRUE(contains(msg, "cannot parse '0x10'")) << msg;
}

// 2^63 used to wrap to a negative frame (double -> int64 out of range) and pass in evaluate.
TEST_F(CsvTest, FrameBeyondTwoToThe53IsRejected) {
  const std::string msg = read_error("frame,x,y\n9223372036854775808,1,1\n");
  EXPECT_TRUE(contains(msg, "bad.csv:2:")) << msg;
  EXPECT_TRUE(contains(msg, "out of range")) << msg;
  EXPECT_EQ(
      dsir::read_localizations_csv(write("frame,x,y\n9007199254740992,1,1\n", "ok.csv")).emitters[0].frame,
      9007199254740991);
}

TEST_F(CsvTest, FrameZeroIsRejectedAsOneBased) {
  const std::string msg = read_error("frame,x,y\n1,1,1\n0,2,3\n");
  EXPECT_TRUE(contains(msg, "bad.csv:3:")) << msg;
  EXPECT_TRUE(contains(msg, ">= 1")) << msg;
}

TEST_F(CsvTest, NonIntegerFrameIsRejected) {
  const std::string msg = read_error("frame,x,y\n1.5,1,1\n");
  EXPECT_TRUE(contains(msg, "bad.csv:2:")) << msg;
  EXPECT_TRUE(contains(msg, "1.5")) << msg;
}

TEST_F(CsvTest, ShortRowReportsMissingValue) {
  const std::string msg = read_error("frame,x,y\n1,2\n");
  EXPECT_TRUE(contains(msg, "bad.csv:2:")) << msg;
  EXPECT_TRUE(contains(msg, "missing value")) << msg;
}

TEST_F(CsvTest, EmptyFileIsRejected) {
  const std::string msg = read_error("");
  EXPECT_TRUE(contains(msg, "bad.csv")) << msg;
  EXPECT_TRUE(contains(msg, "empty")) << msg;
}

TEST_F(CsvTest, WhitespaceOnlyFileIsRejected) {
  const std::string msg = read_error("\n  \n\t\n");
  EXPECT_TRUE(contains(msg, "bad.csv")) << msg;
  EXPECT_TRUE(contains(msg, "empty")) << msg;
}

TEST_F(CsvTest, UnrecognisedHeaderIsRejected) {
  const std::string msg = read_error("\nfoo,bar,baz\n1,2,3\n");
  EXPECT_TRUE(contains(msg, "bad.csv:2:")) << msg;
  EXPECT_TRUE(contains(msg, "unrecognised CSV header")) << msg;
}

TEST_F(CsvTest, MissingFileIsAnInputErrorNamingIt) {
  const std::string path = (dir_ / "nope.csv").string();
  try {
    read_localizations_csv(path);
    FAIL() << "expected dsir::InputError";
  } catch (const InputError& e) {
    EXPECT_TRUE(contains(e.what(), path)) << e.what();
  }
}

// ---------------------------------------------------------------------------------------------
// Writing ThunderSTORM CSVs

std::vector<Emitter> sample_emitters() {
  return {make_emitter(0, 67.843, 2484.15594, 111.28713, 2458.46515, 50, 4.47214),
          make_emitter(0, 1e-6, 123456.789012, 100, 1, 0, 0),
          make_emitter(4, 6400.5, 0.333333333, 150.25, 99999.5, 12.5, 3.25),
          make_emitter(123456, -12.5, -0.000004, 90, 10, 1, 1)};
}

TEST_F(CsvTest, WrittenThunderstormCsvReadsBackEqual) {
  const std::string path = (dir_ / "out.csv").string();
  const auto in = sample_emitters();
  write_thunderstorm_csv(path, in);
  const auto file = read_localizations_csv(path);
  EXPECT_EQ(file.format, CsvFormat::ThunderStorm);
  expect_same_emitters(file.emitters, in, 1e-5);
}

TEST_F(CsvTest, WrittenThunderstormCsvHasExactHeaderOneBasedFramesAndIds) {
  const std::string path = (dir_ / "out.csv").string();
  write_thunderstorm_csv(path, sample_emitters());
  const auto lines = lines_of(read_all(path));
  ASSERT_EQ(lines.size(), 5u);
  EXPECT_EQ(lines[0], kThunderstormHeader);
  EXPECT_EQ(lines[1].rfind("1,1,", 0), 0u) << lines[1];  // id 1, frame 0 -> 1
  EXPECT_EQ(lines[3].rfind("3,5,", 0), 0u) << lines[3];
  EXPECT_EQ(lines[4].rfind("4,123457,", 0), 0u) << lines[4];
  EXPECT_EQ(std::count(lines[1].begin(), lines[1].end(), ','), 7) << lines[1];
}

TEST_F(CsvTest, ConfidenceColumnOnlyWhenAnEmitterHasOne) {
  auto without = sample_emitters();
  const std::string p1 = (dir_ / "without.csv").string();
  write_thunderstorm_csv(p1, without);
  EXPECT_FALSE(contains(lines_of(read_all(p1))[0], "confidence"));
  EXPECT_TRUE(std::isnan(read_localizations_csv(p1).emitters[0].confidence));

  auto with = sample_emitters();
  for (size_t i = 0; i < with.size(); ++i) with[i].confidence = 0.25 * static_cast<double>(i);
  const std::string p2 = (dir_ / "with.csv").string();
  write_thunderstorm_csv(p2, with);
  const auto lines = lines_of(read_all(p2));
  EXPECT_EQ(lines[0], kThunderstormHeader + ",\"confidence\"");
  EXPECT_EQ(std::count(lines[1].begin(), lines[1].end(), ','), 8) << lines[1];
  expect_same_emitters(read_localizations_csv(p2).emitters, with, 1e-5);

  auto one = sample_emitters();
  one[2].confidence = 0.9;
  const std::string p3 = (dir_ / "one.csv").string();
  write_thunderstorm_csv(p3, one);
  EXPECT_TRUE(contains(lines_of(read_all(p3))[0], "\"confidence\""));
  EXPECT_DOUBLE_EQ(read_localizations_csv(p3).emitters[2].confidence, 0.9);
}

// reduce's columns: ThunderSTORM's "uncertainty [nm]" after bkgstd, and the photometry flags.
TEST_F(CsvTest, UncertaintyAndPhotometryFlagsRoundTrip) {
  auto in = sample_emitters();
  for (size_t i = 0; i < in.size(); ++i) {
    in[i].uncertainty_nm = 5.5 + static_cast<double>(i);
    in[i].confidence = 0.5;
    in[i].photometry_flags =
        i == 2 ? (dsir::photometry_flag::nonpositive_photons | dsir::photometry_flag::sigma_at_bound) : 0;
  }
  const std::string path = (dir_ / "flags.csv").string();
  write_thunderstorm_csv(path, in);
  const auto lines = lines_of(read_all(path));
  EXPECT_EQ(lines[0], kThunderstormHeader + ",\"uncertainty [nm]\",\"confidence\",\"photometry_flags\"");
  EXPECT_TRUE(contains(lines[3], ",7.50000,0.50000,10")) << lines[3];
  expect_same_emitters(read_localizations_csv(path).emitters, in, 1e-5);
  // ThunderSTORM's 3D name for the lateral uncertainty reads too.
  const auto file = read_localizations_csv(
      write(kThunderstormHeader + ",\"uncertainty_xy [nm]\"\n1,2,3.5,4.5,100,500,10,2,12.25\n"));
  EXPECT_DOUBLE_EQ(file.emitters[0].uncertainty_nm, 12.25);
  EXPECT_EQ(file.emitters[0].photometry_flags, dsir::photometry_flag::not_measured);
  // Neither column without the data: ground truth keeps ThunderSTORM's eight.
  write_thunderstorm_csv(path, sample_emitters());
  EXPECT_EQ(lines_of(read_all(path))[0], kThunderstormHeader);
}

TEST_F(CsvTest, BadPhotometryFlagNamesLineAndColumn) {
  for (const char* bad : {"16", "-2", "1.5"}) {
    const std::string message =
        read_error(kThunderstormHeader + ",\"photometry_flags\"\n1,2,3.5,4.5,100,500,10,2," + bad + "\n");
    EXPECT_TRUE(contains(message, "bad.csv:2: column 'photometry_flags': '" + std::string(bad) +
                                      "' is not a photometry flag value"))
        << message;
  }
}

TEST_F(CsvTest, EmittersWithoutOptionalFieldsWriteAReadableFile) {
  Emitter e;  // sigma, photons, offset, bkgstd, confidence are NaN
  e.frame = 2;
  e.x_nm = 5;
  e.y_nm = 6;
  const std::string path = (dir_ / "minimal.csv").string();
  write_thunderstorm_csv(path, {e});
  const auto file = read_localizations_csv(path);
  ASSERT_EQ(file.emitters.size(), 1u);
  EXPECT_EQ(file.emitters[0].frame, 2);
  EXPECT_DOUBLE_EQ(file.emitters[0].x_nm, 5);
  EXPECT_DOUBLE_EQ(file.emitters[0].y_nm, 6);
}

TEST_F(CsvTest, WritingNoEmittersGivesHeaderOnly) {
  const std::string path = (dir_ / "empty.csv").string();
  write_thunderstorm_csv(path, {});
  EXPECT_EQ(read_all(path), kThunderstormHeader + "\n");
  EXPECT_TRUE(read_localizations_csv(path).emitters.empty());
}

TEST_F(CsvTest, WriteIsAtomicAndCreatesParentFolders) {
  const std::string path = (dir_ / "sub" / "dir" / "out.csv").string();
  write_thunderstorm_csv(path, sample_emitters());
  EXPECT_TRUE(fs::is_regular_file(path));
  size_t n = 0;
  for (const auto& entry : fs::directory_iterator(dir_ / "sub" / "dir")) {
    EXPECT_EQ(entry.path().filename(), "out.csv");  // no temporary left behind
    ++n;
  }
  EXPECT_EQ(n, 1u);
}

TEST_F(CsvTest, RealDemoFileSurvivesWriteAndRead) {
  DSIR_NEED_SHARED_FILE(kDemoCsv);
  const auto in = read_localizations_csv(kDemoCsv).emitters;
  const std::string path = (dir_ / "demo_copy.csv").string();
  write_thunderstorm_csv(path, in);
  expect_same_emitters(read_localizations_csv(path).emitters, in, 1e-5);
}

// ---------------------------------------------------------------------------------------------
// HDF5 table form

TEST(CsvTable, EmittersToTableHasNamedTypedColumns) {
  const auto in = sample_emitters();
  const auto t = dsir::emitters_to_table(in);
  EXPECT_EQ(t.rows(), in.size());
  const std::vector<std::string> names = {"frame",  "x_nm",   "y_nm",           "sigma_nm",  "photons",
                                          "offset", "bkgstd", "uncertainty_nm", "confidence"};
  ASSERT_EQ(t.columns.size(), names.size());
  for (size_t i = 0; i < names.size(); ++i) EXPECT_EQ(t.columns[i].name, names[i]);
  EXPECT_EQ(t["frame"].type, dsir::h5::DType::i64);
  EXPECT_EQ(t["x_nm"].type, dsir::h5::DType::f64);
  EXPECT_EQ(t["frame"].values[3], 123456);
  EXPECT_EQ(t["y_nm"].values[1], 123456.789012);
  EXPECT_TRUE(std::isnan(t["confidence"].values[0]));
}

TEST(CsvTable, EmittersTableRoundTripInMemory) {
  auto in = sample_emitters();
  in[1].confidence = 0.5;
  expect_same_emitters(dsir::table_to_emitters(dsir::emitters_to_table(in), "test"), in, 0);
  // Measured emitters bring their flags (int32) and uncertainty.
  in[0].photometry_flags = 0, in[1].photometry_flags = dsir::photometry_flag::no_fit;
  in[0].uncertainty_nm = 8.5;
  const auto t = dsir::emitters_to_table(in);
  EXPECT_EQ(t["photometry_flags"].type, dsir::h5::DType::i32);
  expect_same_emitters(dsir::table_to_emitters(t, "test"), in, 0);
  auto bad = t;
  for (auto& c : bad.columns)
    if (c.name == "photometry_flags") c.values[1] = 99;
  try {
    dsir::table_to_emitters(bad, "f.h5:/localizations");
    ADD_FAILURE() << "flags 99 accepted";
  } catch (const InputError& e) {
    EXPECT_TRUE(contains(e.what(), "f.h5:/localizations: row 1: photometry_flags")) << e.what();
  }
}

TEST(CsvTable, TableWithoutOptionalColumnsGivesNaN) {
  dsir::h5::Table t;
  t.columns.push_back({"frame", dsir::h5::DType::i64, {3, 4}});
  t.columns.push_back({"x_nm", dsir::h5::DType::f64, {1, 2}});
  t.columns.push_back({"y_nm", dsir::h5::DType::f64, {5, 6}});
  const auto out = dsir::table_to_emitters(t, "test");
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[1].frame, 4);
  EXPECT_EQ(out[1].x_nm, 2);
  EXPECT_EQ(out[1].y_nm, 6);
  EXPECT_TRUE(std::isnan(out[1].sigma_nm));
  EXPECT_TRUE(std::isnan(out[1].confidence));
  EXPECT_TRUE(dsir::table_to_emitters(dsir::h5::Table{}, "test").empty());
}

TEST(CsvTable, FrameOutsideTheIntegersIsAnErrorNamingTheRow) {
  for (double bad : {-1.0, 0.5, std::nan(""), 1e300}) {
    dsir::h5::Table t;
    t.columns.push_back({"frame", dsir::h5::DType::f64, {3, bad}});
    t.columns.push_back({"x_nm", dsir::h5::DType::f64, {1, 2}});
    t.columns.push_back({"y_nm", dsir::h5::DType::f64, {5, 6}});
    try {
      dsir::table_to_emitters(t, "f.h5:/emitters");
      ADD_FAILURE() << "frame " << bad << " accepted";
    } catch (const InputError& e) {
      EXPECT_TRUE(std::string(e.what()).find("f.h5:/emitters: row 1: frame") != std::string::npos)
          << e.what();
    }
  }
}

TEST_F(CsvTest, EmittersTableRoundTripThroughHdf5File) {
  auto in = sample_emitters();
  in[0].confidence = 0.125;
  const std::string path = (dir_ / "emitters.h5").string();
  {
    auto f = dsir::h5::File::create(path, {});
    f.write_table("/emitters", dsir::emitters_to_table(in));
    f.commit();
  }
  const auto f = dsir::h5::File::open(path);
  const auto t = f.read_table("/emitters");
  EXPECT_EQ(t["frame"].type, dsir::h5::DType::i64);
  expect_same_emitters(dsir::table_to_emitters(t, "test"), in, 0);
}

}  // namespace
