#pragma once
// Pictures people look at instead of reading numbers: reconstructions with a scale bar, training
// previews, loss curves and metric plots. A small RGB canvas with a built-in bitmap font,
// saved as PNG through libpng (atomically).
#include <cstdint>
#include <string>
#include <vector>

namespace dsir::picture {

struct Rgb {
  uint8_t r = 0, g = 0, b = 0;
};

class Canvas {
 public:
  Canvas(int width, int height, Rgb background = {255, 255, 255});
  int width() const { return w_; }
  int height() const { return h_; }
  void set(int x, int y, Rgb c);  // ignores out-of-bounds
  Rgb get(int x, int y) const;
  void fill_rect(int x, int y, int w, int h, Rgb c);
  void paste(const Canvas& other, int x, int y);  // `other`'s top-left corner at (x, y)
  void line(double x0, double y0, double x1, double y1, Rgb c, int thickness = 1);
  // Text in a built-in 5x7 font (ASCII 32..126), `scale` pixels per font pixel.
  void text(int x, int y, const std::string& s, Rgb c, int scale = 1);
  static int text_width(const std::string& s, int scale = 1);
  // Draws `gray` (8-bit, w x h) at (x, y), each source pixel as a zoom x zoom block, with a colormap.
  void blit(int x, int y, const std::vector<uint8_t>& gray, int w, int h, int zoom = 1,
            const std::string& colormap = "gray");
  void save_png(const std::string& path) const;  // atomic
  const std::vector<uint8_t>& rgb() const { return px_; }

 private:
  int w_, h_;
  std::vector<uint8_t> px_;
};

// Maps a float image to 8 bits between its lo/hi percentiles (e.g. 0.5 and 99.5).
std::vector<uint8_t> to_8bit(const std::vector<float>& img, double lo_percentile, double hi_percentile);

// Colormaps: "gray", "hot" (black-red-yellow-white), "magma"-like "fire".
Rgb colormap(const std::string& name, uint8_t v);

// A reconstruction as PNG: percentile-scaled, colormap, with a scale bar and its length label
// (chosen automatically as a round length near 1/5 of the width) in the lower right corner.
void save_image_png(const std::string& path, const std::vector<float>& img, int width, int height,
                    double pixel_size_nm, const std::string& colormap = "hot", double lo_percentile = 0.5,
                    double hi_percentile = 99.5);

struct Series {
  std::string name;
  std::vector<double> x, y;
};

// A line plot with axes, ticks with numbers, axis labels, title and legend. log_y plots log10(y)
// (non-positive values skipped).
void save_line_plot(const std::string& path, const std::string& title, const std::string& x_label,
                    const std::string& y_label, const std::vector<Series>& series, bool log_y = false,
                    int width = 800, int height = 500);
// The same plot as a canvas (to combine plots); `path` only names it in errors. Points between
// non-finite values are drawn as marks, so a series of points separated by NaN is a scatter plot.
Canvas line_plot(const std::string& path, const std::string& title, const std::string& x_label,
                 const std::string& y_label, const std::vector<Series>& series, bool log_y = false,
                 int width = 800, int height = 500);

// Panels side by side (e.g. input | label | prediction), each percentile-scaled on its own and
// titled; panels are resampled (nearest) to a common height `panel_height`.
struct Panel {
  std::string title;
  std::vector<float> image;
  int width = 0, height = 0;
};
void save_panels_png(const std::string& path, const std::vector<Panel>& panels, int panel_height = 256);

}  // namespace dsir::picture
