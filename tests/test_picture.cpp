#include <gtest/gtest.h>
#include <png.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "pipeline/errors.h"
#include "pipeline/picture.h"
#include "tests/temp_dir.h"

namespace fs = std::filesystem;
using namespace dsir::picture;

namespace {

class PictureTest : public dsir::test::TempDirTest {
 protected:
  std::string file(const std::string& name) const { return (dir_ / name).string(); }
};

// A PNG read back with libpng's simplified API, as 8-bit RGB.
struct Image {
  int width = 0, height = 0;
  std::vector<uint8_t> rgb;
  Rgb at(int x, int y) const {
    const uint8_t* p = &rgb[(size_t(y) * width + x) * 3];
    return {p[0], p[1], p[2]};
  }
};

Image read_png(const std::string& path) {
  png_image img;
  std::memset(&img, 0, sizeof img);
  img.version = PNG_IMAGE_VERSION;
  Image out;
  EXPECT_TRUE(png_image_begin_read_from_file(&img, path.c_str())) << path << ": " << img.message;
  if (img.warning_or_error > 1) return out;
  img.format = PNG_FORMAT_RGB;
  out.width = int(img.width);
  out.height = int(img.height);
  out.rgb.resize(PNG_IMAGE_SIZE(img));
  EXPECT_TRUE(png_image_finish_read(&img, nullptr, out.rgb.data(), 0, nullptr)) << img.message;
  return out;
}

bool same(Rgb a, Rgb b) { return a.r == b.r && a.g == b.g && a.b == b.b; }
bool white(Rgb c) { return c.r > 230 && c.g > 230 && c.b > 230; }

// Pixels in [x0, x1) x [y0, y1) that satisfy `pred`.
template <class P>
int count(const Image& im, int x0, int y0, int x1, int y1, P pred) {
  int n = 0;
  for (int y = y0; y < y1; ++y)
    for (int x = x0; x < x1; ++x) n += pred(im.at(x, y)) ? 1 : 0;
  return n;
}

}  // namespace

TEST(Picture, To8bitMapsARampMonotonicallyFromZeroTo255) {
  std::vector<float> ramp(1000);
  for (size_t i = 0; i < ramp.size(); ++i) ramp[i] = float(i) * 0.5f - 20;
  auto v = to_8bit(ramp, 0, 100);
  ASSERT_EQ(v.size(), ramp.size());
  EXPECT_EQ(v.front(), 0);
  EXPECT_EQ(v.back(), 255);
  EXPECT_EQ(v[500], 128);  // 255 * 250/499.5 rounds to 128
  for (size_t i = 1; i < v.size(); ++i) ASSERT_GE(v[i], v[i - 1]);

  // Percentiles clip: everything below the 10th percentile is 0, above the 90th is 255.
  auto clipped = to_8bit(ramp, 10, 90);
  EXPECT_EQ(clipped[50], 0);
  EXPECT_EQ(clipped[100], 0);
  EXPECT_EQ(clipped[899], 255);
  EXPECT_EQ(clipped[999], 255);
  EXPECT_GT(clipped[500], 100);
  EXPECT_LT(clipped[500], 155);
}

TEST(Picture, To8bitIgnoresNanAndMapsConstantImagesToZero) {
  std::vector<float> img{NAN, 1, 2, 3, NAN, 5};
  auto v = to_8bit(img, 0, 100);
  EXPECT_EQ(v, (std::vector<uint8_t>{0, 0, 64, 128, 0, 255}));
  EXPECT_EQ(to_8bit(std::vector<float>(50, 7.5f), 0.5, 99.5), std::vector<uint8_t>(50, 0));
  EXPECT_EQ(to_8bit(std::vector<float>(4, NAN), 0.5, 99.5), std::vector<uint8_t>(4, 0));
  EXPECT_TRUE(to_8bit({}, 0.5, 99.5).empty());
}

TEST(Picture, To8bitKeepsSparseBrightPixelsVisible) {
  // A localisation image: 99.9% background, so the 99.5th percentile is the background.
  std::vector<float> img(10000, 0);
  img[123] = 4;
  img[4567] = 8;
  auto v = to_8bit(img, 0.5, 99.5);
  EXPECT_EQ(v[0], 0);
  EXPECT_EQ(v[123], 128);
  EXPECT_EQ(v[4567], 255);
}

TEST(Picture, Colormaps) {
  EXPECT_TRUE(same(colormap("gray", 128), {128, 128, 128}));
  EXPECT_TRUE(same(colormap("hot", 0), {0, 0, 0}));
  EXPECT_TRUE(same(colormap("hot", 85), {255, 0, 0}));
  EXPECT_TRUE(same(colormap("hot", 170), {255, 255, 0}));
  EXPECT_TRUE(same(colormap("hot", 255), {255, 255, 255}));
  EXPECT_TRUE(same(colormap("fire", 0), {0, 0, 0}));
  const Rgb purple = colormap("fire", 85), orange = colormap("fire", 170), top = colormap("fire", 255);
  EXPECT_GT(purple.b, purple.g);
  EXPECT_GT(purple.r, purple.g);
  EXPECT_GT(orange.r, orange.g);
  EXPECT_GT(orange.g, orange.b);
  EXPECT_GT(top.r, 240);
  EXPECT_GT(top.g, 200);
  EXPECT_THROW(colormap("viridis", 10), dsir::Error);
}

TEST_F(PictureTest, CanvasFillRectSavesAsPng) {
  Canvas cv(40, 30);
  const Rgb red{200, 10, 20};
  cv.fill_rect(5, 6, 10, 8, red);
  cv.fill_rect(35, 25, 100, 100, {0, 0, 255});  // clipped at the border
  cv.set(-1, 3, red);                           // ignored
  EXPECT_TRUE(same(cv.get(5, 6), red));
  EXPECT_TRUE(same(cv.get(100, 100), {}));
  cv.save_png(file("canvas.png"));
  EXPECT_EQ(std::distance(fs::directory_iterator(dir_), fs::directory_iterator()), 1);

  Image im = read_png(file("canvas.png"));
  ASSERT_EQ(im.width, 40);
  ASSERT_EQ(im.height, 30);
  EXPECT_EQ(count(im, 5, 6, 15, 14, [&](Rgb c) { return same(c, red); }), 80);
  EXPECT_EQ(count(im, 0, 0, 40, 30, [&](Rgb c) { return same(c, red); }), 80);
  EXPECT_TRUE(same(im.at(39, 29), {0, 0, 255}));
  EXPECT_TRUE(same(im.at(0, 0), {255, 255, 255}));
}

TEST_F(PictureTest, TextDrawsInsideItsBoxOnly) {
  EXPECT_EQ(Canvas::text_width("ab"), 11);
  EXPECT_EQ(Canvas::text_width("ab", 3), 33);
  EXPECT_EQ(Canvas::text_width(""), 0);
  Canvas cv(200, 40);
  const std::string s = "Hi 0.5 um ~{}H";
  cv.text(10, 12, s, {0, 0, 0}, 2);
  cv.save_png(file("text.png"));
  Image im = read_png(file("text.png"));
  auto ink = [](Rgb c) { return !same(c, {255, 255, 255}); };
  const int x1 = 10 + Canvas::text_width(s, 2), y1 = 12 + 14;
  EXPECT_GT(count(im, 10, 12, x1, y1, ink), 100);
  EXPECT_EQ(count(im, 0, 0, 200, 40, ink), count(im, 10, 12, x1, y1, ink));
  // Ink reaches every edge of the box (the 'H' spans the full height).
  EXPECT_GT(count(im, 10, 12, 12, y1, ink), 0);
  EXPECT_GT(count(im, x1 - 2, 12, x1, y1, ink), 0);
  EXPECT_GT(count(im, 10, 12, x1, 14, ink), 0);
  EXPECT_GT(count(im, 10, y1 - 2, x1, y1, ink), 0);
}

TEST_F(PictureTest, LinesHaveTheirThicknessAndEndpoints) {
  Canvas cv(50, 50);
  const Rgb c{0, 100, 0};
  cv.line(5, 10, 45, 10, c, 3);
  for (int x = 5; x <= 45; ++x)
    for (int y = 9; y <= 11; ++y) ASSERT_TRUE(same(cv.get(x, y), c)) << x << "," << y;
  EXPECT_FALSE(same(cv.get(25, 8), c));
  EXPECT_FALSE(same(cv.get(25, 12), c));
  cv.line(0, 49, 49, 20, c);
  EXPECT_TRUE(same(cv.get(0, 49), c));
  EXPECT_TRUE(same(cv.get(49, 20), c));
  cv.line(-1e9, 30, 1e9, 30, c);  // clipped, not a billion steps
  EXPECT_TRUE(same(cv.get(0, 30), c));
  EXPECT_TRUE(same(cv.get(49, 30), c));
  cv.line(NAN, 1, 2, 3, {1, 2, 3});  // ignored
}

TEST_F(PictureTest, ImagePngIsEnlargedAndHasAScaleBar) {
  // 64x64 at 10 nm: 640 nm wide, so the bar is 100 nm = 10 px, 80 px after the 8x zoom.
  std::vector<float> img(64 * 64);
  for (int y = 0; y < 64; ++y)
    for (int x = 0; x < 64; ++x) img[y * 64 + x] = x < 32 ? float(x + y) : 0;
  save_image_png(file("recon.png"), img, 64, 64, 10.0);
  Image im = read_png(file("recon.png"));
  ASSERT_EQ(im.width, 512);
  ASSERT_EQ(im.height, 512);
  // The longest white run in the lower right corner is the bar.
  int longest = 0, bar_y = -1;
  for (int y = 440; y < 512; ++y) {
    int run = 0;
    for (int x = 256; x < 512; ++x) {
      run = white(im.at(x, y)) ? run + 1 : 0;
      if (run > longest) {
        longest = run;
        bar_y = y;
      }
    }
  }
  EXPECT_EQ(longest, 80);
  EXPECT_GE(bar_y, 512 - 8 - 6);
  EXPECT_LT(bar_y, 512 - 8);
  EXPECT_TRUE(white(im.at(512 - 8 - 40, 512 - 8 - 2)));
  // The "100 nm" label is above the bar.
  EXPECT_GT(count(im, 400, 470, 512, 497, white), 20);
  EXPECT_THROW(save_image_png(file("bad.png"), img, 63, 64, 10.0), dsir::Error);
}

TEST_F(PictureTest, LinePlotOfADecay) {
  Series s{"exp(-x)", {}, {}};
  for (int i = 0; i <= 50; ++i) {
    s.x.push_back(i * 0.1);
    s.y.push_back(std::exp(-i * 0.1));
  }
  Series flat{"", {0, 5}, {0.5, 0.5}};
  for (bool log_y : {false, true}) {
    const std::string path = file(log_y ? "log.png" : "lin.png");
    save_line_plot(path, "Loss", "epoch", "loss", {s, flat}, log_y, 640, 400);
    Image im = read_png(path);
    ASSERT_EQ(im.width, 640);
    ASSERT_EQ(im.height, 400);
    // The series colour (first palette entry, blue) appears inside the plot area.
    auto blue = [](Rgb c) { return c.b > 150 && c.r < 100; };
    EXPECT_GT(count(im, 80, 40, 620, 350, blue), 200) << path;
    auto orange = [](Rgb c) { return c.r > 200 && c.g > 100 && c.g < 160 && c.b < 60; };
    EXPECT_GT(count(im, 80, 40, 620, 350, orange), 200) << path;
    // Tick labels and axis labels are drawn left of and below the axes.
    auto dark = [](Rgb c) { return c.r < 100 && c.g < 100 && c.b < 100; };
    EXPECT_GT(count(im, 0, 36, 70, 352, dark), 50) << path;
    EXPECT_GT(count(im, 72, 354, 624, 400, dark), 50) << path;
  }
}

TEST_F(PictureTest, LinePlotSurvivesEmptyNanAndSinglePointSeries) {
  save_line_plot(file("empty.png"), "nothing", "x", "y", {}, false, 300, 200);
  Image im = read_png(file("empty.png"));
  EXPECT_EQ(im.width, 300);
  EXPECT_EQ(im.height, 200);

  Series nan{"nan", {1, 2, 3}, {NAN, NAN, NAN}};
  Series negative{"neg", {1, 2}, {-1, 0}};
  save_line_plot(file("nan.png"), "nan", "x", "y", {nan, negative}, true, 300, 200);
  EXPECT_EQ(read_png(file("nan.png")).width, 300);

  Series one{"", {2}, {3}};  // unnamed: no legend
  save_line_plot(file("one.png"), "single", "x", "y", {one}, false, 300, 200);
  im = read_png(file("one.png"));
  auto blue = [](Rgb c) { return c.b > 150 && c.r < 100; };
  EXPECT_EQ(count(im, 0, 0, 300, 200, blue), 25);  // the 5x5 marker

  EXPECT_THROW(save_line_plot(file("bad.png"), "t", "x", "y", {Series{"a", {1, 2}, {1}}}), dsir::Error);
}

TEST_F(PictureTest, PanelsAreScaledToACommonHeight) {
  Panel a{"input", std::vector<float>(32 * 32), 32, 32};
  Panel b{"prediction", std::vector<float>(64 * 32), 64, 32};
  for (size_t i = 0; i < a.image.size(); ++i) a.image[i] = float(i % 32);
  for (size_t i = 0; i < b.image.size(); ++i) b.image[i] = i % 64 < 32 ? 0.f : 1000.f;
  save_panels_png(file("panels.png"), {a, b}, 64);
  Image im = read_png(file("panels.png"));
  EXPECT_EQ(im.width, 8 + 64 + 8 + 128 + 8);
  const int top = im.height - 8 - 64;  // panels end 8 px above the bottom
  ASSERT_GT(top, 8);
  // Panel a: a left-to-right ramp; panel b: black left half, white right half.
  EXPECT_TRUE(same(im.at(8, top + 10), {0, 0, 0}));
  EXPECT_TRUE(same(im.at(8 + 63, top + 10), {255, 255, 255}));
  EXPECT_LT(im.at(8 + 20, top).r, im.at(8 + 40, top).r);
  EXPECT_TRUE(same(im.at(80 + 10, top + 63), {0, 0, 0}));
  EXPECT_TRUE(same(im.at(80 + 127, top), {255, 255, 255}));
  // Titles are dark text on the white band above the panels.
  auto dark = [](Rgb c) { return c.r < 100; };
  EXPECT_GT(count(im, 8, 0, 72, top, dark), 10);
  EXPECT_GT(count(im, 80, 0, 208, top, dark), 10);
  EXPECT_THROW(save_panels_png(file("none.png"), {}), dsir::Error);
}

TEST_F(PictureTest, SavePngFailureNamesTheFile) {
  std::ofstream(file("blocker")) << "x";
  const std::string path = file("blocker") + "/out.png";  // parent is a file
  try {
    Canvas(4, 4).save_png(path);
    FAIL() << "no error";
  } catch (const dsir::Error& e) {
    EXPECT_NE(std::string(e.what()).find("blocker"), std::string::npos) << e.what();
  }
}
