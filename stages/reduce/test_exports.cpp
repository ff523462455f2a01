// Exports of reduce: picasso's localizations.hdf5 + .yaml, the precision picasso computes, and
// the nm calibration of reconstruction.tif.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <map>

#include "pipeline/atomic_file.h"
#include "pipeline/csv.h"
#include "pipeline/errors.h"
#include "pipeline/h5store.h"
#include "pipeline/tiff.h"
#include "stages/reduce/exports.h"
#include "stages/reduce/shard.h"

namespace fs = std::filesystem;

namespace dsir {
namespace {

// A shard's frame numbers and sizes are doubles in the file: NaN or 1e300 converted to uint64_t
// or int was undefined behaviour in reduce, and a /sum declared far beyond the raw frame was
// allocated as it came (found writing tests/fuzz/fuzz_shard_h5.cpp).
TEST(ShardHeader, ValuesOutOfRangeAreErrorsNamingTheAttribute) {
  const std::string dir = ::testing::TempDir() + "/dsir-shard-" + std::to_string(getpid());
  fs::create_directories(dir);
  const std::string path = dir + "/shard-00000.h5";
  struct Case {
    const char* key;
    double value;
    uint64_t sum_side;
    const char* expected;
  };
  const Case cases[] = {
      {"first_frame", std::nan(""), 8, "attribute 'first_frame' is nan"},
      {"frames", 1e300, 8, "attribute 'frames' is"},
      {"raw_width", 1e9, 8, "attribute 'raw_width' is"},
      {"frames", 5, 8, "frames 0 to 5 are beyond the acquisition's 4"},
      {"pixel_size_nm", -1, 8, "attribute 'pixel_size_nm' must be a finite number > 0"},
      {"frames", 4, 65, "/sum is 65 x 65, not an upscaled image of the 2 x 2 raw frame"},
      {"frames", 4, 8, nullptr},  // the good shard
  };
  for (const Case& c : cases) {
    h5::Attributes text;
    for (const char* key : kShardShared) text[key] = "x";
    {
      auto f = h5::File::create(path, text);
      f.write("/sum", std::vector<double>(c.sum_side * c.sum_side), {c.sum_side, c.sum_side});
      f.write_table("/localizations", emitters_to_table({}));
      const std::map<std::string, double> numbers = {
          {"first_frame", 0},         {"frames", 4},    {"acquisition_frames", 4}, {"pixel_size_nm", 25},
          {"raw_pixel_size_nm", 100}, {"raw_width", 2}, {"raw_height", 2}};
      for (const auto& [key, v] : numbers) f.set_attr("/", key, key == c.key ? c.value : v);
      f.commit();
    }
    const h5::File f = h5::File::open(path);
    if (c.expected == nullptr) {
      const ShardHeader h = read_shard_header(f);
      EXPECT_EQ(h.frames, 4u);
      EXPECT_EQ(h.height, 8u);
      EXPECT_EQ(h.raw_width, 2);
      ASSERT_EQ(h.shared.size(), 9u);
      EXPECT_EQ(h.shared.front().first, "source_file");  // kShardShared's order
      continue;
    }
    try {
      read_shard_header(f);
      ADD_FAILURE() << c.key << " = " << c.value << ": no error";
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(c.expected), std::string::npos) << e.what();
    }
  }
  fs::remove_all(dir);
}

TEST(Exports, LocalizationPrecisionIsMortensen) {
  // N = 1000, s = 1, b = 10: sa2 = 1 + 1/12, v = sa2 (16/9 + 8 pi sa2 b / N) / N.
  EXPECT_NEAR(localization_precision(1000, 1, 10, false), 0.04712628, 1e-8);
  EXPECT_NEAR(localization_precision(1000, 1, 10, true), 0.04712628 * std::sqrt(2.0), 1e-8);
  // No background: the shot-noise limit sqrt(16/9 sa2 / N).
  EXPECT_NEAR(localization_precision(400, 1.5, 0, false), std::sqrt(16.0 / 9.0 * (2.25 + 1.0 / 12) / 400),
              1e-12);
  EXPECT_TRUE(std::isnan(localization_precision(0, 1, 10, false)));
  EXPECT_TRUE(std::isnan(localization_precision(-5, 1, 10, false)));
}

std::vector<Emitter> sample_locs() {
  std::vector<Emitter> v(4);
  v[0].frame = 0, v[0].x_nm = 150, v[0].y_nm = 420, v[0].photons = 1000, v[0].sigma_nm = 100,
  v[0].offset = 10, v[0].confidence = 0.9;
  v[1].frame = 3, v[1].x_nm = 2999, v[1].y_nm = 10, v[1].photons = 400, v[1].sigma_nm = 150, v[1].offset = 0,
  v[1].confidence = 0.5;
  v[2] = v[0], v[2].photons = Emitter::nan;  // no photometry: picasso would drop it
  v[3] = v[0], v[3].x_nm = 3000;             // x = Width: outside
  return v;
}

PicassoInfo info() {
  PicassoInfo i;
  i.width = 30, i.height = 20, i.frames = 5, i.pixel_size_nm = 100, i.generated_by = "dsir test";
  return i;
}

TEST(Exports, PicassoTableIsInCameraPixelsAndDropsWhatPicassoWould) {
  size_t dropped = 0;
  const h5::Table t = picasso_table(sample_locs(), info(), &dropped);
  EXPECT_EQ(dropped, 2u);
  ASSERT_EQ(t.rows(), 2u);
  const std::vector<std::string> names = {"frame", "x",  "y",   "photons", "sx",
                                          "sy",    "bg", "lpx", "lpy",     "confidence"};
  ASSERT_EQ(t.columns.size(), names.size());
  for (size_t i = 0; i < names.size(); ++i) {
    EXPECT_EQ(t.columns[i].name, names[i]);
    EXPECT_EQ(t.columns[i].type, i == 0 ? h5::DType::u32 : h5::DType::f32) << names[i];
  }
  EXPECT_EQ(t["frame"].values[1], 3);
  EXPECT_DOUBLE_EQ(t["x"].values[0], 1.5);
  EXPECT_DOUBLE_EQ(t["y"].values[0], 4.2);
  EXPECT_DOUBLE_EQ(t["x"].values[1], 29.99);
  EXPECT_DOUBLE_EQ(t["sx"].values[1], 1.5);
  EXPECT_DOUBLE_EQ(t["sy"].values[1], 1.5);
  EXPECT_DOUBLE_EQ(t["bg"].values[0], 10);
  EXPECT_NEAR(t["lpx"].values[0], 0.04712628, 1e-8);
  EXPECT_DOUBLE_EQ(t["lpy"].values[0], t["lpx"].values[0]);
  EXPECT_DOUBLE_EQ(t["confidence"].values[1], 0.5);
}

TEST(Exports, WritesPicassoHdf5AndYaml) {
  const fs::path dir = fs::temp_directory_path() / ("dsir_exports_" + std::to_string(getpid()));
  fs::remove_all(dir);
  const std::string path = (dir / "localizations.hdf5").string();
  PicassoInfo i = info();
  i.em_gain = true;
  EXPECT_EQ(write_picasso(path, sample_locs(), i, {{"dsir_version", "test"}}), 2u);
  const h5::File f = h5::File::open(path);
  const h5::Table t = f.read_table("/locs");
  ASSERT_EQ(t.rows(), 2u);
  EXPECT_EQ(t["frame"].type, h5::DType::u32);
  EXPECT_EQ(t["x"].type, h5::DType::f32);
  EXPECT_FLOAT_EQ(float(t["x"].values[0]), 1.5f);
  EXPECT_FLOAT_EQ(float(t["lpx"].values[0]), float(0.04712628 * std::sqrt(2.0)));  // EM doubles the variance
  EXPECT_EQ(
      read_text_file((dir / "localizations.yaml").string()),
      "Frames: 5\nHeight: 20\nWidth: 30\nPixelsize: 100\nGenerated by: 'dsir test'\nLocalization: 'DSIR "
      "network maps (x, y, confidence); fixed-centre Gaussian fit on the raw frame (photons, sx = sy, bg); "
      "Mortensen precision (lpx = lpy)'\n");
  for (const auto& e : fs::directory_iterator(dir))
    EXPECT_EQ(e.path().filename().string().find(".tmp"), std::string::npos) << e.path();
  fs::remove_all(dir);
}

// Fiji shows nm for reconstruction.tif: ImageJ's own nm scheme, read back by dsir's reader.
TEST(Exports, ReconstructionTiffIsCalibratedInNanometres) {
  const fs::path dir = fs::temp_directory_path() / ("dsir_tif_" + std::to_string(getpid()));
  const std::string path = (dir / "r.tif").string();
  std::vector<float> img(6 * 4, 1.5f);
  tiff::Writer w(path, 6, 4, tiff::WriteFormat::F32, 12.5, 1);
  w.set_unit(tiff::Writer::Unit::Nanometre);
  w.write_frame(img.data());
  w.commit();
  tiff::Reader r(path);
  EXPECT_NEAR(r.info().pixel_size_nm, 12.5, 1e-6);
  EXPECT_NE(read_text_file(path).find("ImageJ=1.53t\nunit=nm\n"), std::string::npos);
  std::vector<float> back(img.size());
  r.read_frame(0, back.data());
  EXPECT_EQ(back, img);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace dsir
