// Exports of reduce: picasso's localizations.hdf5 + .yaml, the uncertainty (the precision picasso
// computes) every export shares, failed photometry flagged or dropped, and the nm calibration of
// reconstruction.tif.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>

#include "pipeline/atomic_file.h"
#include "pipeline/errors.h"
#include "pipeline/formats/picasso_file.h"
#include "pipeline/tiff.h"
#include "stages/reduce/exports.h"

namespace fs = std::filesystem;

namespace dsir {
namespace {

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

// Mortensen's formula in nm as the paper writes it (a: pixel size, s: PSF sigma, b: background
// photons per pixel): var = (s^2 + a^2/12) / N * (16/9 + 8 pi (s^2 + a^2/12) b / (N a^2)).
double mortensen_nm(double n, double s, double b, double a) {
  const double sa2 = s * s + a * a / 12;
  return std::sqrt(sa2 / n * (16.0 / 9 + 8 * M_PI * sa2 * b / (n * a * a)));
}

TEST(Exports, UncertaintyIsMortensenInNanometresAndTheMedianForFailedFits) {
  std::vector<Emitter> v(5);
  const double photons[] = {1000, 400, 2500, -50, 800};
  for (size_t i = 0; i < v.size(); ++i)
    v[i].photons = photons[i], v[i].sigma_nm = 110 + 10 * double(i), v[i].offset = 12,
    v[i].photometry_flags = 0;
  v[3].photometry_flags = photometry_flag::nonpositive_photons;
  v[4].photometry_flags = photometry_flag::sigma_at_bound;  // its numbers are fine, the fit is not
  assign_uncertainty(v, 100, false);
  for (size_t i : {0, 1, 2})
    EXPECT_NEAR(v[i].uncertainty_nm, mortensen_nm(photons[i], v[i].sigma_nm, 12, 100), 1e-9);
  // The failed ones get the median of the passed ones (the 1000-photon one).
  EXPECT_DOUBLE_EQ(v[3].uncertainty_nm, v[0].uncertainty_nm);
  EXPECT_DOUBLE_EQ(v[4].uncertainty_nm, v[0].uncertainty_nm);
  // EM gain doubles the variance.
  assign_uncertainty(v, 100, true);
  EXPECT_NEAR(v[1].uncertainty_nm, std::sqrt(2.0) * mortensen_nm(400, 120, 12, 100), 1e-9);
  // Nothing measured (shards of an older dsir): no uncertainty to give.
  std::vector<Emitter> unmeasured(2);
  unmeasured[0].photons = 1000, unmeasured[0].sigma_nm = 100, unmeasured[0].offset = 1;
  assign_uncertainty(unmeasured, 100, false);
  EXPECT_TRUE(std::isnan(unmeasured[0].uncertainty_nm));
  EXPECT_TRUE(std::isnan(unmeasured[1].uncertainty_nm));
}

TEST(Exports, FailedPhotometryIsCountedByCauseAndDroppedOnRequest) {
  std::vector<Emitter> v(6);
  const int flags[] = {0,
                       photometry_flag::no_fit,
                       photometry_flag::nonpositive_photons | photometry_flag::sigma_at_bound,
                       0,
                       photometry_flag::negative_background,
                       photometry_flag::not_measured};
  for (size_t i = 0; i < v.size(); ++i) v[i].photometry_flags = flags[i], v[i].frame = int64_t(i);
  std::vector<Emitter> kept = v;
  const PhotometryFailures c = apply_failed_photometry(kept, FailedPhotometry::Flag);
  EXPECT_EQ(kept.size(), 6u);
  EXPECT_EQ(c.failed, 3u);
  EXPECT_EQ(c.of, 6u);
  EXPECT_EQ(c.no_fit, 1u);
  EXPECT_EQ(c.nonpositive_photons, 1u);
  EXPECT_EQ(c.negative_background, 1u);
  EXPECT_EQ(c.sigma_at_bound, 1u);
  EXPECT_EQ(c.not_measured, 1u);
  EXPECT_EQ(
      c.summary(),
      "3 of 6 localizations failed photometry (1 no fit, 1 photons <= 0, 1 background < 0, 1 sigma at a "
      "search bound); 1 not checked (no photometry flags: shards of an older dsir)");
  std::vector<Emitter> dropped = v;
  apply_failed_photometry(dropped, FailedPhotometry::Drop);
  ASSERT_EQ(dropped.size(), 3u);
  EXPECT_EQ(dropped[0].frame, 0);
  EXPECT_EQ(dropped[1].frame, 3);
  EXPECT_EQ(dropped[2].frame, 5);
  EXPECT_EQ(failed_photometry_from_name("drop"), FailedPhotometry::Drop);
  EXPECT_THROW(failed_photometry_from_name("hide"), ConfigError);
}

std::vector<Emitter> sample_locs() {
  std::vector<Emitter> v(4);
  v[0].frame = 0, v[0].x_nm = 150, v[0].y_nm = 420, v[0].photons = 1000, v[0].sigma_nm = 100,
  v[0].offset = 10, v[0].confidence = 0.9, v[0].uncertainty_nm = 4.712628;
  v[1].frame = 3, v[1].x_nm = 2999, v[1].y_nm = 10, v[1].photons = 400, v[1].sigma_nm = 150, v[1].offset = 0,
  v[1].confidence = 0.5, v[1].uncertainty_nm = 9.5;
  v[2] = v[0], v[2].uncertainty_nm = Emitter::nan;  // no uncertainty: picasso would drop it
  v[3] = v[0], v[3].x_nm = 3000;                    // x = Width: outside
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
  EXPECT_EQ(t.find("photometry_flags"), nullptr);  // none measured
  // Measured: a flags column; a failed fit's NaN photometry is 0, as in the CSV, and the row stays.
  std::vector<Emitter> flagged = sample_locs();
  flagged[0].photometry_flags = 0;
  flagged[1].photometry_flags = photometry_flag::no_fit;
  flagged[1].photons = flagged[1].sigma_nm = flagged[1].offset = Emitter::nan;
  const h5::Table f = picasso_table(flagged, info(), &dropped);
  ASSERT_EQ(f.rows(), 2u);
  EXPECT_EQ(f["photometry_flags"].type, h5::DType::i32);
  EXPECT_EQ(f["photometry_flags"].values[0], 0);
  EXPECT_EQ(f["photometry_flags"].values[1], photometry_flag::no_fit);
  EXPECT_EQ(f["photons"].values[1], 0);
  EXPECT_EQ(f["sx"].values[1], 0);
  EXPECT_NEAR(f["lpx"].values[1], 0.095, 1e-9);
}

TEST(Exports, WritesPicassoHdf5AndYaml) {
  const fs::path dir = fs::temp_directory_path() / ("dsir_exports_" + std::to_string(getpid()));
  fs::remove_all(dir);
  const std::string path = (dir / "localizations.hdf5").string();
  EXPECT_EQ(write_picasso(path, sample_locs(), info(), {{"dsir_version", "test"}}), 2u);
  const h5::File f = h5::File::open(path);
  const h5::Table t = f.read_table("/locs");
  ASSERT_EQ(t.rows(), 2u);
  EXPECT_EQ(t["frame"].type, h5::DType::u32);
  EXPECT_EQ(t["x"].type, h5::DType::f32);
  EXPECT_FLOAT_EQ(float(t["x"].values[0]), 1.5f);
  EXPECT_FLOAT_EQ(float(t["lpx"].values[0]), float(0.04712628));
  EXPECT_EQ(
      read_text_file((dir / "localizations.yaml").string()),
      "Frames: 5\nHeight: 20\nWidth: 30\nPixelsize: 100\nGenerated by: 'dsir test'\nLocalization: 'DSIR "
      "network maps (x, y, confidence); fixed-centre Gaussian fit on the raw frame (photons, sx = sy, bg; "
      "photometry_flags > 0: the fit failed); Mortensen precision (lpx = lpy)'\n");
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
