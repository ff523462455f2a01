// The upscale stage run in-process through its registration, as `dsir upscale` runs it.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <limits>

#include "pipeline/context.h"
#include "pipeline/csv.h"
#include "pipeline/errors.h"
#include "pipeline/formats/raw_file.h"
#include "pipeline/registry.h"
#include "stages/upscale/upscale.h"
#include "tests/temp_dir.h"

namespace fs = std::filesystem;

namespace {

class UpscaleStage : public dsir::test::TempDirTest {
 protected:
  // A 3-frame 16x16 raw.h5 with one emitter per frame.
  std::string make_raw(bool with_frames = true, bool with_pixel_size = true) {
    const std::string path = dir() + "/raw.h5";
    auto f = dsir::h5::File::create(path, {});
    std::vector<uint16_t> px(3 * 16 * 16);
    for (size_t i = 0; i < px.size(); ++i) px[i] = uint16_t(100 + (i * 7919) % 50);
    if (with_frames) f.write("/frames", px, {3, 16, 16}, {1, 16, 16}, 4);
    if (with_pixel_size) f.set_attr("/", "pixel_size_nm", 100.0);
    std::vector<dsir::Emitter> e(3);
    for (int i = 0; i < 3; ++i) e[i].frame = i, e[i].x_nm = 310 + 200 * i, e[i].y_nm = 820;
    f.write_table("/emitters", dsir::emitters_to_table(e));
    f.commit();
    frames_ = std::vector<float>(px.begin(), px.end());
    return path;
  }

  void run(const std::vector<std::string>& overrides) {
    dsir::Config cfg = dsir::Config::load("", overrides);
    dsir::Context ctx{cfg, dsir::MpiContext::get()};
    dsir::find_command("upscale")->run(ctx);
  }

  std::vector<float> frames_;
};

TEST_F(UpscaleStage, WholeFramesMatchTheUpscaleFunctionAndLabels) {
  const std::string raw = make_raw();
  run({"upscale.input=" + raw, "upscale.output=" + dir() + "/up.h5", "upscale.factor=4"});
  auto f = dsir::h5::File::open(dir() + "/up.h5");
  EXPECT_EQ(f.shape("/inputs"), (dsir::h5::Dims{3, 64, 64}));
  EXPECT_EQ(f.attr_double("/", "pixel_size_nm"), 25.0);
  const auto inputs = f.read<float>("/inputs");
  std::vector<float> expected(64 * 64);
  dsir::upscale_frame(frames_.data() + 2 * 256, 16, 16, 4, dsir::Normalization::PerFrame, 0, 1,
                      expected.data());
  EXPECT_EQ(std::vector<float>(inputs.begin() + 2 * 4096, inputs.end()), expected);
  const auto labels = f.read<float>("/labels");
  // Frame 1's emitter at (510, 820) nm -> column int(510 * 4 / 100) = 20, row 32.
  EXPECT_EQ(labels[4096 + 32 * 64 + 20], 1.0f);
  double total = 0;
  for (float v : labels) total += v;
  EXPECT_EQ(total, 3.0);
}

TEST_F(UpscaleStage, PatchesAreCropsOfTheFramesWithShiftedLabels) {
  const std::string raw = make_raw();
  run({"upscale.input=" + raw, "upscale.output=" + dir() + "/up.h5", "upscale.factor=2",
       "upscale.patch_size=8", "upscale.patches_per_frame=4", "run.seed=5"});
  auto f = dsir::h5::File::open(dir() + "/up.h5");
  ASSERT_EQ(f.shape("/inputs"), (dsir::h5::Dims{12, 16, 16}));
  const auto inputs = f.read<float>("/inputs");
  const auto labels = f.read<float>("/labels");
  const auto origins = dsir::patch_origins(5, 1, 16, 16, 8, 4);
  std::vector<float> window(64), expected(256);
  for (int k = 0; k < 4; ++k) {
    const auto [r0, c0] = origins[k];
    dsir::crop(frames_.data() + 256, 16, r0, c0, 8, 8, window.data());
    dsir::upscale_frame(window.data(), 8, 8, 2, dsir::Normalization::PerFrame, 0, 1, expected.data());
    const size_t item = 4 + k;  // frame 1's patches follow frame 0's four
    EXPECT_EQ(std::vector<float>(inputs.begin() + item * 256, inputs.begin() + (item + 1) * 256), expected);
    // Frame 1's emitter at (510, 820) nm is in the patch iff it lies inside the window.
    const double x = 510 - c0 * 100.0, y = 820 - r0 * 100.0;
    const bool inside = x >= 0 && y >= 0 && x < 800 && y < 800;
    double total = 0;
    for (size_t i = item * 256; i < (item + 1) * 256; ++i) total += labels[i];
    EXPECT_EQ(total, inside ? 1.0 : 0.0) << "patch " << k;
    if (inside) {
      EXPECT_EQ(labels[item * 256 + int(y * 2 / 100) * 16 + int(x * 2 / 100)], 1.0f);
    }
  }
}

TEST_F(UpscaleStage, MissingFramesOrPixelSizeAreNamedAndLeaveNoOutput) {
  const std::string raw = make_raw(false, true);
  try {
    run({"upscale.input=" + raw, "upscale.output=" + dir() + "/up.h5"});
    FAIL() << "expected an error";
  } catch (const dsir::InputError& e) {
    EXPECT_NE(std::string(e.what()).find("/frames"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(raw), std::string::npos) << e.what();
  }
  const std::string raw2 = make_raw(true, false);
  try {
    run({"upscale.input=" + raw2, "upscale.output=" + dir() + "/up.h5"});
    FAIL() << "expected an error";
  } catch (const dsir::InputError& e) {
    EXPECT_NE(std::string(e.what()).find("pixel_size_nm"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(dir() + "/up.h5"));
  const std::string good = make_raw();
  EXPECT_THROW(run({"upscale.input=" + good, "upscale.output=" + dir() + "/up.h5", "upscale.patch_size=32"}),
               dsir::ConfigError);
  EXPECT_FALSE(fs::exists(dir() + "/up.h5"));
}

// Inputs that used to pass and give wrong outputs (issue 13): each is an error naming the file and
// the cause, and no output is written.
TEST_F(UpscaleStage, InconsistentRawFilesAreErrorsNamingTheCause) {
  struct Case {
    const char* name;
    uint64_t frames;
    float pixel;           // every pixel's value
    double pixel_size_nm;  // the attribute
    int64_t emitter_frame;
    const char* expected;
  };
  const Case cases[] = {
      {"inf-pixel-size", 2, 100, std::numeric_limits<double>::infinity(), 0,
       "pixel_size_nm must be a finite"},
      {"no-frames", 0, 100, 100, 0, "/frames is empty"},
      {"nan-frames", 2, std::nanf(""), 100, 0, "frame 0 has a non-finite pixel"},
      {"emitter-beyond", 2, 100, 100, 5, "row 0: frame 5 is beyond the stack's 2 frames"},
  };
  for (const Case& c : cases) {
    const std::string path = dir() + "/" + c.name + ".h5";
    {
      auto f = dsir::h5::File::create(path, {});
      f.write("/frames", std::vector<float>(c.frames * 16 * 16, c.pixel), {c.frames, 16, 16});
      f.set_attr("/", "pixel_size_nm", c.pixel_size_nm);
      std::vector<dsir::Emitter> e(1);
      e[0].frame = c.emitter_frame, e[0].x_nm = 500, e[0].y_nm = 500;
      f.write_table("/emitters", dsir::emitters_to_table(e));
      f.commit();
    }
    try {
      run({"upscale.input=" + path, "upscale.output=" + dir() + "/up.h5"});
      ADD_FAILURE() << c.name << ": no error";
    } catch (const dsir::InputError& e) {
      EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(c.expected), std::string::npos) << c.name << ": " << e.what();
    }
    EXPECT_FALSE(fs::exists(dir() + "/up.h5")) << c.name;
  }
}

// A /frames side beyond int: 2^32 + 5 rows were read as 5 (the narrowing to int), 2^32 as 0
// ("empty"). Found writing the fuzz harness of raw.h5 (tests/fuzz/fuzz_raw_h5.cpp).
TEST_F(UpscaleStage, FrameSidesBeyondTheLimitAreErrors) {
  const std::string path = dir() + "/wide.h5";
  {
    auto f = dsir::h5::File::create(path, {});
    // Chunked: a file of a few KB may declare this much.
    f.create_dataset("/frames", dsir::h5::DType::f32, {1, (uint64_t(1) << 32) + 5, 1}, {1, 1, 1}, 0);
    f.set_attr("/", "pixel_size_nm", 100.0);
    f.commit();
  }
  try {
    dsir::RawFileReader raw(path);
    ADD_FAILURE() << "opened as " << raw.height() << " x " << raw.width() << " pixels";
  } catch (const dsir::InputError& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("4294967301 x 1 pixels; at most 65536 a side"), std::string::npos)
        << e.what();
  }
}

}  // namespace
