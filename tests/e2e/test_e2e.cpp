// Checks on the outputs of the test-size pipeline run by run_pipeline.sh: under mpirun -np 2
// into DSIR_E2E_DIR, and its data stages again with one rank into DSIR_E2E_DIR_NP1 (with the
// upscale stage, also run under 2 ranks into DSIR_E2E_DIR_UPSCALE).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "pipeline/atomic_file.h"
#include "pipeline/csv.h"
#include "pipeline/h5store.h"
#include "stages/evaluate/metrics.h"

namespace fs = std::filesystem;

namespace {

std::string dir(const char* var) {
  const char* v = std::getenv(var);
  return v ? v : "";
}

struct Image {
  std::vector<float> pixels;
  int width = 0, height = 0;
  double pixel_size_nm = 0;
};

Image reconstruction(const std::string& d) {
  auto f = dsir::h5::File::open(d + "/reconstruction.h5");
  Image im;
  im.pixels = f.read<float>("/image");
  auto s = f.shape("/image");
  im.height = int(s[0]);
  im.width = int(s[1]);
  im.pixel_size_nm = f.attr_double("/", "pixel_size_nm");
  return im;
}

std::vector<dsir::metrics::Point> truth(const std::string& d) {
  auto f = dsir::h5::File::open(d + "/data/acquisition.h5");
  std::vector<dsir::metrics::Point> p;
  for (const auto& e : dsir::table_to_emitters(f.read_table("/emitters"), "ground truth"))
    p.push_back({e.frame, e.x_nm, e.y_nm});
  return p;
}

TEST(EndToEnd, WritesEveryOutput) {
  const std::string d = dir("DSIR_E2E_DIR");
  for (const char* f : {"reconstruction.h5", "reconstruction.tif", "reconstruction.png", "localizations.csv",
                        "metrics.json", "dsir.log", "config.yaml", "provenance.json", "train/loss.png",
                        "train/model.h5", "train/metrics.jsonl", "data/acquisition.h5", "data/train.h5",
                        "sim/acquisition.tif", "sim/acquisition.csv"})
    EXPECT_TRUE(fs::exists(d + "/" + f)) << f;
  // The pipeline's training read the raw frames: the default run.stages has no upscale stage.
  EXPECT_FALSE(fs::exists(d + "/data/train-upscaled.h5"));
  EXPECT_NE(dsir::read_text_file(d + "/dsir.log").find("items upscaled from raw.h5 as read"),
            std::string::npos);
  // No temporary files left anywhere.
  for (const auto& e : fs::recursive_directory_iterator(d))
    EXPECT_EQ(e.path().filename().string().find(".tmp"), std::string::npos) << e.path();
}

TEST(EndToEnd, EveryHdf5FileCarriesProvenance) {
  const std::string d = dir("DSIR_E2E_DIR");
  int files = 0;
  for (const auto& e : fs::recursive_directory_iterator(d)) {
    if (e.path().extension() != ".h5") continue;
    auto f = dsir::h5::File::open(e.path().string());
    for (const char* a :
         {"dsir_version", "config", "config_hash", "hdf5_version", "mpi_version", "libtorch_version"})
      EXPECT_TRUE(f.has_attr("/", a)) << e.path() << " lacks " << a;
    ++files;
  }
  EXPECT_GE(files, 8);
}

// The reconstruction must beat controls that carry no information about the structure: a blank
// image and the same pixels shuffled.
TEST(EndToEnd, ReconstructionBeatsBlankAndShuffledControls) {
  const std::string d = dir("DSIR_E2E_DIR");
  const Image im = reconstruction(d);
  const auto gt = truth(d);
  const double r = dsir::metrics::image_correlation(im.pixels, im.width, im.height, im.pixel_size_nm, gt, 20);
  std::vector<float> shuffled = im.pixels;
  std::shuffle(shuffled.begin(), shuffled.end(), std::mt19937(5));
  const double r_shuffled =
      dsir::metrics::image_correlation(shuffled, im.width, im.height, im.pixel_size_nm, gt, 20);
  const double r_blank = dsir::metrics::image_correlation(std::vector<float>(im.pixels.size(), 1.0f),
                                                          im.width, im.height, im.pixel_size_nm, gt, 20);
  std::cout << "[ info ] image Pearson " << r << ", shuffled " << r_shuffled << ", blank " << r_blank << "\n";
  EXPECT_GT(r, 0.3);
  EXPECT_GT(r, r_shuffled + 0.2);
  EXPECT_GT(r, r_blank + 0.2);

  // metrics.json says the same, and has JI/RMSE at 50 and 250 nm.
  auto j = nlohmann::json::parse(dsir::read_text_file(d + "/metrics.json"));
  EXPECT_NEAR(j["image"]["pearson"].get<double>(), r, 1e-9);
  ASSERT_EQ(j["matching"].size(), 2u);
  EXPECT_EQ(j["matching"][0]["tolerance_nm"].get<double>(), 50);
  EXPECT_EQ(j["matching"][1]["tolerance_nm"].get<double>(), 250);
  EXPECT_GT(j["matching"][1]["hungarian"]["jaccard"].get<double>(), 0.0);
}

// Mean of the even columns (rows) against the odd ones, relative to their average.
double parity_imbalance(const std::vector<float>& pixels, int width, int height, bool rows) {
  double sum[2] = {0, 0}, count[2] = {0, 0};
  for (int r = 0; r < height; ++r)
    for (int c = 0; c < width; ++c) {
      const int k = (rows ? r : c) % 2;
      sum[k] += pixels[static_cast<size_t>(r) * width + c];
      count[k] += 1;
    }
  const double even = sum[0] / count[0], odd = sum[1] / count[1];
  return std::abs(even - odd) / (0.5 * (even + odd));
}

// The default reconstruction (rendered from localizations) carries no transposed-convolution
// checkerboard: even and odd rows, and even and odd columns, have means within 5 %. The network's
// summed maps, kept as /network_sum, are reported for comparison.
TEST(EndToEnd, ReconstructionHasNoCheckerboard) {
  const std::string d = dir("DSIR_E2E_DIR");
  const Image im = reconstruction(d);
  const double columns = parity_imbalance(im.pixels, im.width, im.height, false);
  const double rows = parity_imbalance(im.pixels, im.width, im.height, true);
  const auto sum = dsir::h5::File::open(d + "/reconstruction.h5").read<float>("/network_sum");
  std::cout << "[ info ] even/odd imbalance: image columns " << columns << ", rows " << rows
            << "; network sum columns " << parity_imbalance(sum, im.width, im.height, false) << ", rows "
            << parity_imbalance(sum, im.width, im.height, true) << "\n";
  EXPECT_LT(columns, 0.05);
  EXPECT_LT(rows, 0.05);
}

bool same_dataset(const std::string& a, const std::string& b, const std::string& name) {
  auto fa = dsir::h5::File::open(a), fb = dsir::h5::File::open(b);
  return fa.shape(name) == fb.shape(name) && fa.read<double>(name) == fb.read<double>(name);
}

// Same config and seed: the data stages give the same bits with 1 and 2 ranks.
TEST(EndToEnd, DataStagesAreBitIdenticalAcrossRankCounts) {
  const std::string a = dir("DSIR_E2E_DIR"), b = dir("DSIR_E2E_DIR_NP1");
  if (b.empty()) GTEST_SKIP() << "DSIR_E2E_DIR_NP1 not set";
  for (const char* f :
       {"sim/train.tif", "sim/train.csv", "sim/acquisition.tif", "sim/acquisition.csv", "localizations.csv"})
    EXPECT_EQ(dsir::read_text_file(a + "/" + f), dsir::read_text_file(b + "/" + f)) << f;
  EXPECT_TRUE(same_dataset(a + "/data/train.h5", b + "/data/train.h5", "/frames"));
  EXPECT_TRUE(same_dataset(a + "/data/acquisition.h5", b + "/data/acquisition.h5", "/frames"));
  // The upscale stage: under 2 ranks (e2e_upscale_np2, from the 2-rank run's train.h5) and 1.
  const std::string up = dir("DSIR_E2E_DIR_UPSCALE") + "/data/train-upscaled.h5";
  EXPECT_TRUE(same_dataset(up, b + "/data/train-upscaled.h5", "/inputs"));
  EXPECT_TRUE(same_dataset(up, b + "/data/train-upscaled.h5", "/labels"));
  EXPECT_TRUE(same_dataset(a + "/reconstruction.h5", b + "/reconstruction.h5", "/image"));
}

}  // namespace
