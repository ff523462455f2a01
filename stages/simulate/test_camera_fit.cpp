// Tests of the camera fit (stages/simulate/camera_fit.h): it recovers cameras with known
// parameters from simulated frames, and explains ThunderSTORM's real demo frames with a
// normalised residual of mean 0 +- 0.1 and variance 1 +- 10 % (the criterion).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <iostream>
#include <vector>

#include "pipeline/csv.h"
#include "pipeline/errors.h"
#include "pipeline/tiff.h"
#include "stages/simulate/camera_fit.h"
#include "tests/shared_data.h"

namespace fs = std::filesystem;
using dsir::Emitter;
using namespace dsir::sim;

namespace {

struct Pixels {
  std::vector<double> expected, observed;
};

// Dense simulated frames (so the expected image spans 0 to ~1000 photons) through `cam`.
Pixels simulate(const Camera& cam, uint64_t seed, int frames = 60) {
  FieldSpec field;
  field.width = 32;
  field.height = 32;
  field.density_per_um2 = 3.0;
  EmitterRanges ranges;
  Pixels p;
  for (int64_t f = 0; f < frames; ++f) {
    Frame fr = simulate_frame(field, cam, ranges, nullptr, seed, f);
    auto expected = render_expected(fr.emitters, field.width, field.height, cam.pixel_size_nm);
    p.expected.insert(p.expected.end(), expected.begin(), expected.end());
    for (uint16_t v : fr.pixels) p.observed.push_back(v);
  }
  return p;
}

void print(const char* what, const CameraFit& f) {
  std::cout << "[ info ] " << what << ": a = " << f.adu_per_photon << " ADU/photon, c = " << f.intercept_adu
            << ", r = " << f.pearson << ", excess noise F^2 = " << f.excess_noise << " (EM "
            << (f.em_gain ? "on" : "off") << "), background " << f.background_photons << " (from variance "
            << f.background_from_variance << "), base " << f.base_level << "; camera e_per_adu "
            << f.camera.e_per_adu << ", em_gain " << f.camera.em_gain << "; z mean " << f.z_mean
            << ", z variance " << f.z_variance << " over " << f.pixels << " pixels\n";
}

TEST(CameraFit, RecoversAnEmCameraFromSimulatedFrames) {
  Camera cam;  // 2 ADU per photon through an EM register: gain 100, 50 e-/ADU
  cam.em_gain = 100;
  cam.e_per_adu = 50;
  cam.base_level = 100;
  cam.background_photons = 20;
  const Pixels p = simulate(cam, 7);
  CameraFit f = fit_camera(p.expected, p.observed);
  print("simulated EM camera, background estimated", f);
  EXPECT_NEAR(f.adu_per_photon, 2.0, 0.02);
  EXPECT_TRUE(f.em_gain);
  EXPECT_NEAR(f.excess_noise, 2.0, 0.15);
  EXPECT_NEAR(f.background_photons, 20.0, 2.0);
  EXPECT_NEAR(f.base_level, 100.0, 4.0);
  EXPECT_GT(f.pearson, 0.97);
  // Only the ADU per photon is identifiable: reported as gain 2 at 1 e-/ADU.
  EXPECT_NEAR(f.camera.em_gain / f.camera.e_per_adu, 2.0, 0.02);
  EXPECT_EQ(f.camera.e_per_adu, 1.0);
  EXPECT_NEAR(f.z_mean, 0.0, 0.03);
  EXPECT_NEAR(f.z_variance, 1.0, 0.05);

  // Knowing the background pins the base level down.
  CameraFitOptions known;
  known.background_photons = 20;
  CameraFit g = fit_camera(p.expected, p.observed, known);
  print("simulated EM camera, background given", g);
  EXPECT_EQ(g.background_photons, 20.0);
  EXPECT_NEAR(g.base_level, 100.0, 1.0);
  EXPECT_NEAR(g.z_mean, 0.0, 0.03);
  EXPECT_NEAR(g.z_variance, 1.0, 0.05);
}

TEST(CameraFit, RecoversAPlainCameraFromSimulatedFrames) {
  Camera cam;  // no EM register: 2 ADU per photon from 0.5 e-/ADU
  cam.e_per_adu = 0.5;
  cam.base_level = 300;
  cam.background_photons = 15;
  const Pixels p = simulate(cam, 8);
  CameraFit f = fit_camera(p.expected, p.observed);
  print("simulated plain camera", f);
  EXPECT_NEAR(f.adu_per_photon, 2.0, 0.02);
  EXPECT_FALSE(f.em_gain);
  EXPECT_NEAR(f.excess_noise, 1.0, 0.1);
  EXPECT_NEAR(f.background_photons, 15.0, 1.5);
  EXPECT_NEAR(f.base_level, 300.0, 3.0);
  EXPECT_EQ(f.camera.em_gain, 0.0);
  EXPECT_NEAR(f.camera.e_per_adu, 0.5, 0.005);
  EXPECT_NEAR(f.z_mean, 0.0, 0.03);
  EXPECT_NEAR(f.z_variance, 1.0, 0.05);
}

TEST(CameraFit, WrongNoiseModelShowsInTheResidual) {
  // EM frames judged with a given camera cannot pass; here: the fit of EM frames, then the
  // normalised residual of the same frames under the plain camera with that slope.
  Camera cam;
  cam.em_gain = 2;
  const Pixels p = simulate(cam, 9, 30);
  CameraFit f = fit_camera(p.expected, p.observed);
  ASSERT_TRUE(f.em_gain);
  Camera plain = f.camera;
  plain.em_gain = 0;
  plain.e_per_adu = 1.0 / f.adu_per_photon;
  double z2 = 0;
  for (size_t i = 0; i < p.expected.size(); ++i) {
    const double photons = p.expected[i] + f.background_photons;
    const double z = (p.observed[i] - (f.base_level + f.adu_per_photon * photons)) /
                     std::sqrt(model_variance_adu(photons, plain));
    z2 += z * z;
  }
  EXPECT_NEAR(z2 / static_cast<double>(p.expected.size()), 2.0, 0.15);  // the EM excess noise
}

TEST(CameraFit, RejectsMismatchedOrConstantInput) {
  EXPECT_THROW(fit_camera({1, 2, 3}, {1, 2}), dsir::Error);
  EXPECT_THROW(fit_camera({5, 5, 5, 5}, {100, 101, 99, 100}), dsir::Error);
  EXPECT_THROW(fit_camera({1, 2}, {1, 2}), dsir::Error);
}

// ---------------------------------------------------------------------------------------------
// ThunderSTORM's demo data (Deep-STORM's demo 1): real frames and their ground truth.

struct Demo {
  std::vector<std::vector<Emitter>> per_frame;
  std::vector<double> observed;
  double background = 0;  // bkgstd^2: ThunderSTORM writes sqrt(background photons) there
  int width = 0, height = 0;
};

bool load_demo(Demo& d) {
  const fs::path dir = fs::path(DSIR_SHARED_DIR) / "data" / "deepstorm-demo1";
  const fs::path csv = dir / "positions_demo1.csv", tif = dir / "ArtificialDataset_demo1.tif";
  if (!fs::exists(csv) || !fs::exists(tif)) return false;
  auto truth = dsir::read_localizations_csv(csv.string());
  dsir::tiff::Reader reader(tif.string());
  d.width = static_cast<int>(reader.info().width);
  d.height = static_cast<int>(reader.info().height);
  d.per_frame.resize(reader.info().frames);
  for (const Emitter& e : truth.emitters) d.per_frame.at(static_cast<size_t>(e.frame)).push_back(e);
  d.background = truth.emitters.front().bkgstd * truth.emitters.front().bkgstd;
  std::vector<float> frame(static_cast<size_t>(d.width * d.height));
  for (uint64_t f = 0; f < reader.info().frames; ++f) {
    reader.read_frame(f, frame.data());
    d.observed.insert(d.observed.end(), frame.begin(), frame.end());
  }
  return true;
}

CameraFit fit_demo(const Demo& d, PsfModel psf, bool background_known) {
  std::vector<double> expected;
  for (const auto& emitters : d.per_frame) {
    auto e = render_expected(emitters, d.width, d.height, 100.0, psf);
    expected.insert(expected.end(), e.begin(), e.end());
  }
  CameraFitOptions o;
  if (background_known) o.background_photons = d.background;
  return fit_camera(expected, d.observed, o);
}

TEST(ThunderStormDemo, FittedCameraExplainsTheFrames) {
  const fs::path dir = fs::path(DSIR_SHARED_DIR) / "data" / "deepstorm-demo1";
  DSIR_NEED_SHARED_FILE(dir / "positions_demo1.csv");
  DSIR_NEED_SHARED_FILE(dir / "ArtificialDataset_demo1.tif");
  Demo d;
  ASSERT_TRUE(load_demo(d));
  ASSERT_EQ(d.per_frame.size(), 20u);
  ASSERT_NEAR(d.background, 20.0, 1e-4);  // bkgstd 4.47214 = sqrt(20)

  // Our integrated PSF (the simulator's default) with the ground truth's background.
  CameraFit integrated = fit_demo(d, PsfModel::Integrated, true);
  print("demo1, integrated PSF, background 20", integrated);
  EXPECT_TRUE(integrated.em_gain);
  EXPECT_NEAR(integrated.z_mean, 0.0, 0.1);
  EXPECT_NEAR(integrated.z_variance, 1.0, 0.1);

  // ThunderSTORM's generator samples the Gaussian at pixel centres: the camera is then exactly
  // base level 100 ADU, 2 ADU per photon, EM gain on, background 20 photons.
  CameraFit sampled = fit_demo(d, PsfModel::Sampled, true);
  print("demo1, sampled PSF, background 20", sampled);
  EXPECT_TRUE(sampled.em_gain);
  EXPECT_NEAR(sampled.adu_per_photon, 2.0, 0.01);
  EXPECT_NEAR(sampled.base_level, 100.0, 0.5);
  EXPECT_NEAR(sampled.excess_noise, 2.0, 0.15);
  EXPECT_NEAR(sampled.z_mean, 0.0, 0.02);
  EXPECT_NEAR(sampled.z_variance, 1.0, 0.03);
  EXPECT_GT(sampled.pearson, integrated.pearson);  // the sampled rendering explains more

  // The background need not be given: the variance finds it.
  CameraFit free = fit_demo(d, PsfModel::Sampled, false);
  print("demo1, sampled PSF, background estimated", free);
  EXPECT_TRUE(free.em_gain);
  EXPECT_NEAR(free.background_photons, 20.0, 2.0);
  EXPECT_NEAR(free.z_mean, 0.0, 0.1);
  EXPECT_NEAR(free.z_variance, 1.0, 0.1);

  // Without EM excess noise the same frames fail the criterion: twice the variance.
  Camera plain = sampled.camera;
  plain.em_gain = 0;
  plain.e_per_adu = 1.0 / sampled.adu_per_photon;
  std::vector<double> expected;
  for (const auto& emitters : d.per_frame) {
    auto e = render_expected(emitters, d.width, d.height, 100.0, PsfModel::Sampled);
    expected.insert(expected.end(), e.begin(), e.end());
  }
  double z2 = 0;
  for (size_t i = 0; i < expected.size(); ++i) {
    const double photons = expected[i] + sampled.background_photons;
    const double z = (d.observed[i] - (sampled.base_level + sampled.adu_per_photon * photons)) /
                     std::sqrt(model_variance_adu(photons, plain));
    z2 += z * z;
  }
  const double z_var_plain = z2 / static_cast<double>(expected.size());
  std::cout << "[ info ] demo1 under the same camera without EM gain: z variance " << z_var_plain << "\n";
  EXPECT_NEAR(z_var_plain, 2.0, 0.15);
}

}  // namespace
