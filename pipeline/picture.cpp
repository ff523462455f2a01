#include "pipeline/picture.h"

#include <png.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <csetjmp>
#include <cstdio>
#include <cstring>

#include "pipeline/atomic_file.h"
#include "pipeline/errors.h"

namespace dsir::picture {
namespace {

// Classic 5x7 LCD font for ASCII 32..126: 5 columns per glyph, bit r of a column = row r (top 0).
constexpr uint8_t kFont[][5] = {
    {0x00, 0x00, 0x00, 0x00, 0x00}, {0x00, 0x00, 0x5F, 0x00, 0x00}, {0x00, 0x07, 0x00, 0x07, 0x00},
    {0x14, 0x7F, 0x14, 0x7F, 0x14}, {0x24, 0x2A, 0x7F, 0x2A, 0x12}, {0x23, 0x13, 0x08, 0x64, 0x62},
    {0x36, 0x49, 0x55, 0x22, 0x50}, {0x00, 0x05, 0x03, 0x00, 0x00}, {0x00, 0x1C, 0x22, 0x41, 0x00},
    {0x00, 0x41, 0x22, 0x1C, 0x00}, {0x08, 0x2A, 0x1C, 0x2A, 0x08}, {0x08, 0x08, 0x3E, 0x08, 0x08},
    {0x00, 0x50, 0x30, 0x00, 0x00}, {0x08, 0x08, 0x08, 0x08, 0x08}, {0x00, 0x60, 0x60, 0x00, 0x00},
    {0x20, 0x10, 0x08, 0x04, 0x02}, {0x3E, 0x51, 0x49, 0x45, 0x3E}, {0x00, 0x42, 0x7F, 0x40, 0x00},
    {0x42, 0x61, 0x51, 0x49, 0x46}, {0x21, 0x41, 0x45, 0x4B, 0x31}, {0x18, 0x14, 0x12, 0x7F, 0x10},
    {0x27, 0x45, 0x45, 0x45, 0x39}, {0x3C, 0x4A, 0x49, 0x49, 0x30}, {0x01, 0x71, 0x09, 0x05, 0x03},
    {0x36, 0x49, 0x49, 0x49, 0x36}, {0x06, 0x49, 0x49, 0x29, 0x1E}, {0x00, 0x36, 0x36, 0x00, 0x00},
    {0x00, 0x56, 0x36, 0x00, 0x00}, {0x08, 0x14, 0x22, 0x41, 0x00}, {0x14, 0x14, 0x14, 0x14, 0x14},
    {0x00, 0x41, 0x22, 0x14, 0x08}, {0x02, 0x01, 0x51, 0x09, 0x06}, {0x32, 0x49, 0x79, 0x41, 0x3E},
    {0x7E, 0x11, 0x11, 0x11, 0x7E}, {0x7F, 0x49, 0x49, 0x49, 0x36}, {0x3E, 0x41, 0x41, 0x41, 0x22},
    {0x7F, 0x41, 0x41, 0x22, 0x1C}, {0x7F, 0x49, 0x49, 0x49, 0x41}, {0x7F, 0x09, 0x09, 0x09, 0x01},
    {0x3E, 0x41, 0x49, 0x49, 0x7A}, {0x7F, 0x08, 0x08, 0x08, 0x7F}, {0x00, 0x41, 0x7F, 0x41, 0x00},
    {0x20, 0x40, 0x41, 0x3F, 0x01}, {0x7F, 0x08, 0x14, 0x22, 0x41}, {0x7F, 0x40, 0x40, 0x40, 0x40},
    {0x7F, 0x02, 0x0C, 0x02, 0x7F}, {0x7F, 0x04, 0x08, 0x10, 0x7F}, {0x3E, 0x41, 0x41, 0x41, 0x3E},
    {0x7F, 0x09, 0x09, 0x09, 0x06}, {0x3E, 0x41, 0x51, 0x21, 0x5E}, {0x7F, 0x09, 0x19, 0x29, 0x46},
    {0x46, 0x49, 0x49, 0x49, 0x31}, {0x01, 0x01, 0x7F, 0x01, 0x01}, {0x3F, 0x40, 0x40, 0x40, 0x3F},
    {0x1F, 0x20, 0x40, 0x20, 0x1F}, {0x3F, 0x40, 0x38, 0x40, 0x3F}, {0x63, 0x14, 0x08, 0x14, 0x63},
    {0x07, 0x08, 0x70, 0x08, 0x07}, {0x61, 0x51, 0x49, 0x45, 0x43}, {0x00, 0x7F, 0x41, 0x41, 0x00},
    {0x02, 0x04, 0x08, 0x10, 0x20}, {0x00, 0x41, 0x41, 0x7F, 0x00}, {0x04, 0x02, 0x01, 0x02, 0x04},
    {0x40, 0x40, 0x40, 0x40, 0x40}, {0x00, 0x01, 0x02, 0x04, 0x00}, {0x20, 0x54, 0x54, 0x54, 0x78},
    {0x7F, 0x48, 0x44, 0x44, 0x38}, {0x38, 0x44, 0x44, 0x44, 0x20}, {0x38, 0x44, 0x44, 0x48, 0x7F},
    {0x38, 0x54, 0x54, 0x54, 0x18}, {0x08, 0x7E, 0x09, 0x01, 0x02}, {0x0C, 0x52, 0x52, 0x52, 0x3E},
    {0x7F, 0x08, 0x04, 0x04, 0x78}, {0x00, 0x44, 0x7D, 0x40, 0x00}, {0x20, 0x40, 0x44, 0x3D, 0x00},
    {0x7F, 0x10, 0x28, 0x44, 0x00}, {0x00, 0x41, 0x7F, 0x40, 0x00}, {0x7C, 0x04, 0x18, 0x04, 0x78},
    {0x7C, 0x08, 0x04, 0x04, 0x78}, {0x38, 0x44, 0x44, 0x44, 0x38}, {0x7C, 0x14, 0x14, 0x14, 0x08},
    {0x08, 0x14, 0x14, 0x18, 0x7C}, {0x7C, 0x08, 0x04, 0x04, 0x08}, {0x48, 0x54, 0x54, 0x54, 0x20},
    {0x04, 0x3F, 0x44, 0x40, 0x20}, {0x3C, 0x40, 0x40, 0x20, 0x7C}, {0x1C, 0x20, 0x40, 0x20, 0x1C},
    {0x3C, 0x40, 0x30, 0x40, 0x3C}, {0x44, 0x28, 0x10, 0x28, 0x44}, {0x0C, 0x50, 0x50, 0x50, 0x3C},
    {0x44, 0x64, 0x54, 0x4C, 0x44}, {0x00, 0x08, 0x36, 0x41, 0x00}, {0x00, 0x00, 0x7F, 0x00, 0x00},
    {0x00, 0x41, 0x36, 0x08, 0x00}, {0x08, 0x04, 0x08, 0x10, 0x08},
};
static_assert(sizeof kFont / sizeof kFont[0] == 95, "one glyph per character 32..126");

constexpr int kGlyphW = 5, kGlyphH = 7, kAdvance = 6;

// Font pixel (col, row) of character c; characters outside ASCII 32..126 are drawn as '?'.
bool glyph_pixel(char c, int col, int row) {
  int i = static_cast<unsigned char>(c);
  if (i < 32 || i > 126) i = '?';
  return (kFont[i - 32][col] >> row) & 1;
}

// Text rotated 90 degrees counter-clockwise (reads bottom to top), for the y-axis label;
// (x, y) is the top-left of the rotated box (7*scale wide, text_width tall).
void vertical_text(Canvas& cv, int x, int y, const std::string& s, Rgb c, int scale) {
  const int len = Canvas::text_width(s, scale);
  for (size_t i = 0; i < s.size(); ++i)
    for (int col = 0; col < kGlyphW; ++col)
      for (int row = 0; row < kGlyphH; ++row)
        if (glyph_pixel(s[i], col, row))
          cv.fill_rect(x + row * scale, y + len - (int(i) * kAdvance + col + 1) * scale, scale, scale, c);
}

struct PngErrorSink {
  char message[256] = "";
};

void png_error_fn(png_structp png, png_const_charp msg) {
  auto* sink = static_cast<PngErrorSink*>(png_get_error_ptr(png));
  std::snprintf(sink->message, sizeof sink->message, "%s", msg);
  png_longjmp(png, 1);
}

void png_warning_fn(png_structp, png_const_charp) {}

// All libpng calls live here: longjmp out of this frame skips no C++ destructors (only
// trivially destructible locals). Returns false with sink.message set on error.
bool write_png(FILE* f, const uint8_t* rgb, int w, int h, PngErrorSink& sink) {
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &sink, png_error_fn, png_warning_fn);
  if (png == nullptr) {
    std::snprintf(sink.message, sizeof sink.message, "out of memory");
    return false;
  }
  png_infop info = png_create_info_struct(png);
  if (info == nullptr) {
    std::snprintf(sink.message, sizeof sink.message, "out of memory");
    png_destroy_write_struct(&png, nullptr);
    return false;
  }
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    return false;
  }
  png_init_io(png, f);
  png_set_IHDR(png, info, png_uint_32(w), png_uint_32(h), 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  for (int y = 0; y < h; ++y) png_write_row(png, rgb + size_t(y) * w * 3);
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  return true;
}

Rgb lerp(Rgb a, Rgb b, double t) {
  auto mix = [t](uint8_t u, uint8_t v) { return uint8_t(std::lround(u + (v - u) * t)); };
  return {mix(a.r, b.r), mix(a.g, b.g), mix(a.b, b.b)};
}

// Scale bar length: the largest {1,2,5}x10^k nm not above `max_nm`.
double round_length(double max_nm) {
  double decade = std::pow(10.0, std::floor(std::log10(max_nm)));
  for (double m : {5.0, 2.0, 1.0})
    if (m * decade <= max_nm * (1 + 1e-9)) return m * decade;
  return decade;
}

std::string length_label(double nm) {
  char buf[32];
  if (nm >= 1000)
    std::snprintf(buf, sizeof buf, "%g um", nm / 1000);
  else
    std::snprintf(buf, sizeof buf, "%g nm", nm);
  return buf;
}

// Axis ticks: the smallest {1,2,5}x10^k step that covers the data in at most 6 intervals
// (4 to 7 ticks), the range widened to whole steps.
struct Axis {
  double lo, hi, step;
  int ticks() const { return int(std::lround((hi - lo) / step)) + 1; }
  double tick(int i) const {
    double v = lo + i * step;
    return std::abs(v) < step * 1e-9 ? 0 : v;  // no "1.4e-17" label for zero
  }
};

Axis nice_axis(double lo, double hi, bool integer_steps) {
  if (hi - lo < 1e-12 * std::max(1.0, std::abs(lo))) {
    double pad = std::max(0.5, std::abs(lo) * 0.1);
    lo -= pad;
    hi += pad;
  }
  // The tolerance keeps a value that is a whole multiple of the step from adding an interval.
  for (double decade = std::pow(10.0, std::floor(std::log10((hi - lo) / 6)));; decade *= 10)
    for (double m : {1.0, 2.0, 5.0}) {
      const double step = m * decade;
      if (integer_steps && step < 1) continue;
      const double first = std::floor(lo / step + 1e-9), last = std::ceil(hi / step - 1e-9);
      if (last - first <= 6) return {first * step, last * step, step};
    }
}

constexpr Rgb kBlack{0, 0, 0};
constexpr Rgb kWhite{255, 255, 255};
constexpr std::array<Rgb, 6> kPalette{
    {{31, 119, 180}, {255, 127, 14}, {44, 160, 44}, {214, 39, 40}, {148, 103, 189}, {140, 86, 75}}};

}  // namespace

Canvas::Canvas(int width, int height, Rgb background) : w_(width), h_(height) {
  if (width <= 0 || height <= 0)
    throw Error("canvas size " + std::to_string(width) + "x" + std::to_string(height) + " is empty");
  px_.resize(size_t(w_) * h_ * 3);
  for (size_t i = 0; i < px_.size(); i += 3) {
    px_[i] = background.r;
    px_[i + 1] = background.g;
    px_[i + 2] = background.b;
  }
}

void Canvas::set(int x, int y, Rgb c) {
  if (x < 0 || y < 0 || x >= w_ || y >= h_) return;
  uint8_t* p = &px_[(size_t(y) * w_ + x) * 3];
  p[0] = c.r;
  p[1] = c.g;
  p[2] = c.b;
}

Rgb Canvas::get(int x, int y) const {
  if (x < 0 || y < 0 || x >= w_ || y >= h_) return {};
  const uint8_t* p = &px_[(size_t(y) * w_ + x) * 3];
  return {p[0], p[1], p[2]};
}

void Canvas::paste(const Canvas& other, int x, int y) {
  for (int r = 0; r < other.height(); ++r)
    for (int c = 0; c < other.width(); ++c) set(x + c, y + r, other.get(c, r));
}

void Canvas::fill_rect(int x, int y, int w, int h, Rgb c) {
  const int x0 = std::max(x, 0), x1 = std::min(x + w, w_);
  const int y0 = std::max(y, 0), y1 = std::min(y + h, h_);
  for (int yy = y0; yy < y1; ++yy)
    for (int xx = x0; xx < x1; ++xx) set(xx, yy, c);
}

void Canvas::line(double x0, double y0, double x1, double y1, Rgb c, int thickness) {
  if (!std::isfinite(x0) || !std::isfinite(y0) || !std::isfinite(x1) || !std::isfinite(y1)) return;
  thickness = std::max(thickness, 1);
  // Liang-Barsky clip to the canvas (plus the brush) so far-away endpoints cost nothing.
  const double m = thickness;
  double t0 = 0, t1 = 1;
  const double dx = x1 - x0, dy = y1 - y0;
  const double p[4] = {-dx, dx, -dy, dy};
  const double q[4] = {x0 + m, w_ - 1 + m - x0, y0 + m, h_ - 1 + m - y0};
  for (int i = 0; i < 4; ++i) {
    if (p[i] == 0) {
      if (q[i] < 0) return;
    } else {
      const double t = q[i] / p[i];
      if (p[i] < 0)
        t0 = std::max(t0, t);
      else
        t1 = std::min(t1, t);
    }
  }
  if (t0 > t1) return;
  const double ax = x0 + t0 * dx, ay = y0 + t0 * dy;
  const double bx = x0 + t1 * dx, by = y0 + t1 * dy;
  // DDA with a square brush centred on each step.
  const int steps = int(std::ceil(std::max(std::abs(bx - ax), std::abs(by - ay))));
  const int half = (thickness - 1) / 2;
  for (int i = 0; i <= steps; ++i) {
    const double t = steps == 0 ? 0 : double(i) / steps;
    const int x = int(std::lround(ax + (bx - ax) * t));
    const int y = int(std::lround(ay + (by - ay) * t));
    fill_rect(x - half, y - half, thickness, thickness, c);
  }
}

void Canvas::text(int x, int y, const std::string& s, Rgb c, int scale) {
  scale = std::max(scale, 1);
  for (size_t i = 0; i < s.size(); ++i)
    for (int col = 0; col < kGlyphW; ++col)
      for (int row = 0; row < kGlyphH; ++row)
        if (glyph_pixel(s[i], col, row))
          fill_rect(x + (int(i) * kAdvance + col) * scale, y + row * scale, scale, scale, c);
}

int Canvas::text_width(const std::string& s, int scale) {
  // Each character advances 6 font pixels; the last one has no trailing gap.
  return s.empty() ? 0 : (int(s.size()) * kAdvance - 1) * std::max(scale, 1);
}

void Canvas::blit(int x, int y, const std::vector<uint8_t>& gray, int w, int h, int zoom,
                  const std::string& cmap) {
  if (w < 0 || h < 0 || gray.size() != size_t(w) * size_t(h))
    throw Error("blit: " + std::to_string(gray.size()) + " pixels for a " + std::to_string(w) + "x" +
                std::to_string(h) + " image");
  zoom = std::max(zoom, 1);
  std::array<Rgb, 256> lut;
  for (int v = 0; v < 256; ++v) lut[v] = colormap(cmap, uint8_t(v));
  for (int sy = 0; sy < h; ++sy)
    for (int sx = 0; sx < w; ++sx)
      fill_rect(x + sx * zoom, y + sy * zoom, zoom, zoom, lut[gray[size_t(sy) * w + sx]]);
}

void Canvas::save_png(const std::string& path) const {
  AtomicPath out(path);
  FILE* f = std::fopen(out.tmp().c_str(), "wb");
  if (f == nullptr) throw Error("cannot write '" + path + "': " + std::strerror(errno));
  PngErrorSink sink;
  const bool ok = write_png(f, px_.data(), w_, h_, sink);
  const bool flushed = std::fflush(f) == 0 && !std::ferror(f);
  if (std::fclose(f) != 0 || !ok || !flushed)
    throw Error("cannot write PNG '" + path + "': " + (ok ? std::string("I/O error") : sink.message));
  out.commit();
}

std::vector<uint8_t> to_8bit(const std::vector<float>& img, double lo_percentile, double hi_percentile) {
  std::vector<float> v;
  v.reserve(img.size());
  for (float x : img)
    if (std::isfinite(x)) v.push_back(x);
  std::vector<uint8_t> out(img.size(), 0);
  if (v.empty()) return out;

  lo_percentile = std::clamp(lo_percentile, 0.0, 100.0);
  hi_percentile = std::clamp(hi_percentile, 0.0, 100.0);
  if (lo_percentile > hi_percentile) std::swap(lo_percentile, hi_percentile);
  const size_t n = v.size();
  const auto rank = [n](double p) { return size_t(std::lround(p / 100 * double(n - 1))); };
  const size_t ilo = rank(lo_percentile), ihi = rank(hi_percentile);
  std::nth_element(v.begin(), v.begin() + ilo, v.end());
  const double lo = v[ilo];
  // Everything from ilo on is >= lo, so the second selection can skip the lower part.
  std::nth_element(v.begin() + ilo, v.begin() + ihi, v.end());
  double hi = v[ihi];
  // Sparse images (most pixels at the background) can have hi == lo; fall back to the maximum
  // so the few bright pixels stay visible. A constant image maps to 0.
  if (hi <= lo) hi = *std::max_element(v.begin() + ihi, v.end());
  if (hi <= lo) return out;

  const double scale = 255.0 / (hi - lo);
  for (size_t i = 0; i < img.size(); ++i) {
    const double x = img[i];
    if (std::isnan(x)) continue;
    out[i] = uint8_t(std::lround(std::clamp((x - lo) * scale, 0.0, 255.0)));
  }
  return out;
}

Rgb colormap(const std::string& name, uint8_t v) {
  const double t = v / 255.0;
  if (name == "gray") return {v, v, v};
  if (name == "hot") {
    auto ramp = [t](double start) { return uint8_t(std::lround(255 * std::clamp(3 * t - start, 0.0, 1.0))); };
    return {ramp(0), ramp(1), ramp(2)};
  }
  if (name == "fire") {
    // black -> purple -> orange -> light yellow, evenly spaced stops.
    static constexpr Rgb stops[] = {{0, 0, 0}, {110, 20, 140}, {240, 110, 30}, {255, 240, 130}};
    const double s = t * 3;
    const int i = std::min(int(s), 2);
    return lerp(stops[i], stops[i + 1], s - i);
  }
  throw Error("unknown colormap '" + name + "' (known: gray, hot, fire)");
}

void save_image_png(const std::string& path, const std::vector<float>& img, int width, int height,
                    double pixel_size_nm, const std::string& cmap, double lo_percentile,
                    double hi_percentile) {
  if (width <= 0 || height <= 0 || img.size() != size_t(width) * size_t(height))
    throw Error(path + ": " + std::to_string(img.size()) + " pixels for a " + std::to_string(width) + "x" +
                std::to_string(height) + " image");
  const int zoom = std::max(1, 512 / std::max(width, height));  // small images are enlarged
  Canvas cv(width * zoom, height * zoom, kBlack);
  cv.blit(0, 0, to_8bit(img, lo_percentile, hi_percentile), width, height, zoom, cmap);

  if (pixel_size_nm > 0 && std::isfinite(pixel_size_nm)) {
    const double bar_nm = round_length(width * pixel_size_nm / 5);
    const int bar_w = std::max(1, int(std::lround(bar_nm / pixel_size_nm * zoom)));
    const int bar_h = std::max(3, cv.height() / 100);
    const int margin = 8;
    const int x = cv.width() - margin - bar_w, y = cv.height() - margin - bar_h;
    const Rgb dark{32, 32, 32};
    cv.fill_rect(x - 1, y - 1, bar_w + 2, bar_h + 2, dark);
    cv.fill_rect(x, y, bar_w, bar_h, kWhite);
    const std::string label = length_label(bar_nm);
    const int scale = cv.width() >= 400 ? 2 : 1;
    const int tx = x + bar_w / 2 - Canvas::text_width(label, scale) / 2;
    const int ty = y - 4 - kGlyphH * scale;
    // A dark shadow keeps the white label readable on bright structures.
    cv.text(tx + 1, ty + 1, label, dark, scale);
    cv.text(tx, ty, label, kWhite, scale);
  }
  cv.save_png(path);
}

void save_line_plot(const std::string& path, const std::string& title, const std::string& x_label,
                    const std::string& y_label, const std::vector<Series>& series, bool log_y, int width,
                    int height) {
  line_plot(path, title, x_label, y_label, series, log_y, width, height).save_png(path);
}

Canvas line_plot(const std::string& path, const std::string& title, const std::string& x_label,
                 const std::string& y_label, const std::vector<Series>& series, bool log_y, int width,
                 int height) {
  if (width < 160 || height < 120)
    throw Error(path + ": plot size " + std::to_string(width) + "x" + std::to_string(height) +
                " is too small (at least 160x120)");
  // Points that can be drawn: finite, and y > 0 for a log axis (plotted as log10 y).
  std::vector<std::vector<std::array<double, 2>>> pts(series.size());
  double x_min = INFINITY, x_max = -INFINITY, y_min = INFINITY, y_max = -INFINITY;
  for (size_t s = 0; s < series.size(); ++s) {
    const Series& se = series[s];
    if (se.x.size() != se.y.size())
      throw Error(path + ": series '" + se.name + "' has " + std::to_string(se.x.size()) + " x values but " +
                  std::to_string(se.y.size()) + " y values");
    for (size_t i = 0; i < se.x.size(); ++i) {
      double x = se.x[i], y = se.y[i];
      if (log_y) y = y > 0 ? std::log10(y) : NAN;
      pts[s].push_back({x, y});  // non-finite points are kept: they break the line
      if (!std::isfinite(x) || !std::isfinite(y)) continue;
      x_min = std::min(x_min, x);
      x_max = std::max(x_max, x);
      y_min = std::min(y_min, y);
      y_max = std::max(y_max, y);
    }
  }
  if (x_min > x_max) {  // nothing to draw: axes only
    x_min = 0;
    x_max = 1;
  }
  if (y_min > y_max) {
    y_min = 0;
    y_max = 1;
  }
  const Axis ax = nice_axis(x_min, x_max, false);
  const Axis ay = nice_axis(y_min, y_max, log_y);

  Canvas cv(width, height, kWhite);
  const int left = 72, right = width - 16, top = 36, bottom = height - 48;
  const auto px = [&](double x) { return left + (x - ax.lo) / (ax.hi - ax.lo) * (right - left); };
  const auto py = [&](double y) { return bottom - (y - ay.lo) / (ay.hi - ay.lo) * (bottom - top); };
  const Rgb grid{225, 225, 225}, axis_color{40, 40, 40};

  char buf[32];
  for (int i = 0; i < ax.ticks(); ++i) {
    const int x = int(std::lround(px(ax.tick(i))));
    cv.line(x, top, x, bottom, grid);
    cv.line(x, bottom, x, bottom + 4, axis_color);
    std::snprintf(buf, sizeof buf, "%.3g", ax.tick(i));
    cv.text(x - Canvas::text_width(buf) / 2, bottom + 8, buf, axis_color);
  }
  for (int i = 0; i < ay.ticks(); ++i) {
    const int y = int(std::lround(py(ay.tick(i))));
    cv.line(left, y, right, y, grid);
    cv.line(left - 4, y, left, y, axis_color);
    if (log_y)
      std::snprintf(buf, sizeof buf, "1e%d", int(std::lround(ay.tick(i))));
    else
      std::snprintf(buf, sizeof buf, "%.3g", ay.tick(i));
    cv.text(left - 7 - Canvas::text_width(buf), y - kGlyphH / 2, buf, axis_color);
  }
  // Axes box.
  cv.line(left, top, right, top, axis_color);
  cv.line(left, bottom, right, bottom, axis_color);
  cv.line(left, top, left, bottom, axis_color);
  cv.line(right, top, right, bottom, axis_color);

  cv.text((width - Canvas::text_width(title, 2)) / 2, 10, title, kBlack, 2);
  cv.text((left + right - Canvas::text_width(x_label)) / 2, bottom + 24, x_label, kBlack);
  vertical_text(cv, 8, (top + bottom - Canvas::text_width(y_label)) / 2, y_label, kBlack, 1);

  for (size_t s = 0; s < pts.size(); ++s) {
    const Rgb c = kPalette[s % kPalette.size()];
    const auto& p = pts[s];
    const auto ok = [&](size_t i) { return std::isfinite(p[i][0]) && std::isfinite(p[i][1]); };
    for (size_t i = 0; i < p.size(); ++i) {
      if (!ok(i)) continue;
      const bool prev = i > 0 && ok(i - 1), next = i + 1 < p.size() && ok(i + 1);
      if (next) cv.line(px(p[i][0]), py(p[i][1]), px(p[i + 1][0]), py(p[i + 1][1]), c, 2);
      if (!prev && !next)  // an isolated point has no line: mark it
        cv.fill_rect(int(std::lround(px(p[i][0]))) - 2, int(std::lround(py(p[i][1]))) - 2, 5, 5, c);
    }
  }

  // Legend in the top right corner of the plot area.
  int legend_w = 0, entries = 0;
  for (const Series& se : series) {
    if (se.name.empty()) continue;
    legend_w = std::max(legend_w, Canvas::text_width(se.name));
    ++entries;
  }
  if (entries > 0) {
    const int row_h = 12, box_w = legend_w + 36, box_h = entries * row_h + 8;
    const int bx = right - box_w - 6, by = top + 6;
    cv.fill_rect(bx, by, box_w, box_h, kWhite);
    cv.line(bx, by, bx + box_w, by, axis_color);
    cv.line(bx, by + box_h, bx + box_w, by + box_h, axis_color);
    cv.line(bx, by, bx, by + box_h, axis_color);
    cv.line(bx + box_w, by, bx + box_w, by + box_h, axis_color);
    int row = 0;
    for (size_t s = 0; s < series.size(); ++s) {
      if (series[s].name.empty()) continue;
      const int y = by + 4 + row++ * row_h;
      cv.line(bx + 6, y + 3, bx + 24, y + 3, kPalette[s % kPalette.size()], 2);
      cv.text(bx + 30, y, series[s].name, kBlack);
    }
  }
  return cv;
}

void save_panels_png(const std::string& path, const std::vector<Panel>& panels, int panel_height) {
  if (panels.empty()) throw Error(path + ": no panels to draw");
  if (panel_height <= 0) throw Error(path + ": panel height must be positive");
  const int gap = 8;
  const int title_scale = panel_height >= 128 ? 2 : 1;
  const int title_h = kGlyphH * title_scale + gap;
  std::vector<int> widths;
  int total_w = gap;
  for (const Panel& p : panels) {
    if (p.width <= 0 || p.height <= 0 || p.image.size() != size_t(p.width) * size_t(p.height))
      throw Error(path + ": panel '" + p.title + "' has " + std::to_string(p.image.size()) + " pixels for " +
                  std::to_string(p.width) + "x" + std::to_string(p.height));
    const int w = std::max(1, int(std::lround(double(p.width) * panel_height / p.height)));
    widths.push_back(w);
    total_w += w + gap;
  }
  Canvas cv(total_w, gap + title_h + panel_height + gap, kWhite);
  int x = gap;
  for (size_t k = 0; k < panels.size(); ++k) {
    const Panel& p = panels[k];
    const int w = widths[k];
    const std::vector<uint8_t> src = to_8bit(p.image, 0.5, 99.5);
    std::vector<uint8_t> dst(size_t(w) * panel_height);
    for (int dy = 0; dy < panel_height; ++dy) {
      const int sy = std::min(p.height - 1, int((dy + 0.5) * p.height / panel_height));
      for (int dx = 0; dx < w; ++dx) {
        const int sx = std::min(p.width - 1, int((dx + 0.5) * p.width / w));
        dst[size_t(dy) * w + dx] = src[size_t(sy) * p.width + sx];
      }
    }
    cv.text(x + (w - Canvas::text_width(p.title, title_scale)) / 2, gap, p.title, kBlack, title_scale);
    cv.blit(x, gap + title_h, dst, w, panel_height, 1, "gray");
    x += w + gap;
  }
  cv.save_png(path);
}

}  // namespace dsir::picture
