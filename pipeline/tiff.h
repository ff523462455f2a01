#pragma once
// TIFF stacks through libtiff: multipage, BigTIFF, 8/16/32-bit unsigned and float samples,
// strips or tiles, any compression libtiff decodes, ImageJ stacks (including ImageJ's >4 GiB
// "contiguous data after the first IFD" layout). Frames are read one at a time (streaming).
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace dsir::tiff {

enum class SampleKind { Unsigned, Float };

struct StackInfo {
  uint32_t width = 0, height = 0;
  uint64_t frames = 0;
  int bits_per_sample = 0;  // 8, 16, 32
  SampleKind kind = SampleKind::Unsigned;
  double pixel_size_nm = 0;  // from the resolution tags (or ImageJ unit); 0 when absent
};

class Reader {
 public:
  explicit Reader(const std::string& path);  // InputError naming the file
  ~Reader();
  Reader(const Reader&) = delete;
  Reader& operator=(const Reader&) = delete;

  const StackInfo& info() const { return info_; }
  const std::string& path() const { return path_; }
  // Frame `index` (0-based) converted to float, row-major height x width. Sequential reads are
  // O(1) per frame. InputError naming the file and frame on corrupt/truncated data or a frame
  // whose size or sample format differs from the first.
  void read_frame(uint64_t index, float* out);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  StackInfo info_;
  std::string path_;
};

enum class WriteFormat { U16, F32 };

// Multipage writer (BigTIFF when the data may exceed 4 GiB). Writes to a temporary name;
// commit() renames. Pixel size goes into XResolution/YResolution (pixels per cm) and an ImageJ
// description (unit=um) so ImageJ/Fiji show calibrated sizes (scheme documented in tiff.cpp).
class Writer {
 public:
  Writer(const std::string& path, uint32_t width, uint32_t height, WriteFormat format, double pixel_size_nm,
         uint64_t expected_frames = 0);
  ~Writer();
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;
  void write_frame(const uint16_t* data);  // format U16
  void write_frame(const float* data);     // format F32
  void commit();
  // Nanometre: ImageJ's own calibration for nm (ResolutionUnit none, pixels per nm, unit=nm),
  // so Fiji shows nm; other readers then see no physical unit. Set before the first frame.
  enum class Unit { Micrometre, Nanometre };
  void set_unit(Unit unit);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dsir::tiff
