#include "pipeline/tiff.h"

#include <sys/stat.h>
#include <tiffio.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <map>

#include "pipeline/atomic_file.h"
#include "pipeline/errors.h"

// Pixel size scheme of the Writer (read back by the Reader):
//   ResolutionUnit = CENTIMETER, XResolution = YResolution = 1e7 / pixel_size_nm (pixels per cm),
//   which any TIFF reader understands, plus the ImageJ description "ImageJ=1.53t\nunit=um\n":
//   ImageJ converts a centimetre calibration to micrometres when the description says
//   "unit=um" (FileOpener.decodeDescriptionString), so Fiji shows the size in µm.
//   With Unit::Nanometre, ImageJ's own scheme for nm instead: ResolutionUnit = NONE,
//   XResolution = 1 / pixel_size_nm (pixels per nm) and "unit=nm" (ImageJ converts only cm to
//   µm, so a cm calibration cannot show nm).
// The description deliberately has no "images=N": ImageJ then ignores every IFD after the
// first and expects the frames contiguous after the first one, which libtiff does not write
// (it interleaves pixel data and IFDs). Without it ImageJ reads the IFDs one by one.

namespace dsir::tiff {
namespace {

// libtiff reports problems through callbacks; these collect the messages of one TIFF handle
// (per-handle options, so concurrent readers do not mix their messages and nothing is printed).
int collect_error(TIFF*, void* user, const char* module, const char* fmt, va_list ap) {
  auto* sink = static_cast<std::string*>(user);
  char msg[1024];
  std::vsnprintf(msg, sizeof msg, fmt, ap);
  if (!sink->empty()) *sink += "; ";
  if (module != nullptr && *module != '\0') *sink += std::string(module) + ": ";
  *sink += msg;
  return 1;  // handled: do not call libtiff's global (stderr) handler
}

// Warnings are mostly unknown private tags (ImageJ, microscope vendors), not worth reporting;
// they are kept where a caller asks (a directory chain that loops back is only a warning).
int collect_warning(TIFF* tif, void* user, const char* module, const char* fmt, va_list ap) {
  return user ? collect_error(tif, user, module, fmt, ap) : 1;
}

TIFF* open_tiff(const std::string& path, const char* mode, std::string* errors,
                std::string* warnings = nullptr) {
  TIFFOpenOptions* opts = TIFFOpenOptionsAlloc();
  TIFFOpenOptionsSetErrorHandlerExtR(opts, collect_error, errors);
  TIFFOpenOptionsSetWarningHandlerExtR(opts, collect_warning, warnings);
  TIFF* tif = TIFFOpenExt(path.c_str(), mode, opts);
  TIFFOpenOptionsFree(opts);
  return tif;
}

// Returns the collected libtiff messages (or `fallback` when there are none) and clears them.
std::string take(std::string& errors, const char* fallback) {
  std::string s = errors.empty() ? std::string(fallback) : errors;
  errors.clear();
  return s;
}

std::string frame_prefix(const std::string& path, uint64_t index) {
  return path + ": frame " + std::to_string(index) + " (0-based): ";
}

// What decides how a directory's samples are decoded; every frame must match the first.
struct Layout {
  uint32_t width = 0, height = 0;
  uint16_t bits = 0, format = 0, samples = 0, photometric = 0;
  bool same_shape(const Layout& o) const {
    return width == o.width && height == o.height && bits == o.bits && format == o.format &&
           samples == o.samples;
  }
};

Layout read_layout(TIFF* tif) {
  Layout l;
  TIFFGetField(tif, TIFFTAG_IMAGEWIDTH, &l.width);
  TIFFGetField(tif, TIFFTAG_IMAGELENGTH, &l.height);
  TIFFGetFieldDefaulted(tif, TIFFTAG_BITSPERSAMPLE, &l.bits);
  TIFFGetFieldDefaulted(tif, TIFFTAG_SAMPLEFORMAT, &l.format);
  TIFFGetFieldDefaulted(tif, TIFFTAG_SAMPLESPERPIXEL, &l.samples);
  if (!TIFFGetField(tif, TIFFTAG_PHOTOMETRIC, &l.photometric)) l.photometric = PHOTOMETRIC_MINISBLACK;
  return l;
}

std::string describe(const Layout& l) {
  std::string kind = l.format == SAMPLEFORMAT_IEEEFP ? "float"
                     : l.format == SAMPLEFORMAT_INT  ? "signed"
                                                     : "unsigned";
  std::string s = std::to_string(l.width) + "x" + std::to_string(l.height) + " " + std::to_string(l.bits) +
                  "-bit " + kind;
  if (l.samples != 1) s += " with " + std::to_string(l.samples) + " samples per pixel";
  return s;
}

// Throws unless the samples are one grayscale channel of uint8/16/32 or float32.
// Tiles up to this many pixels a side are accepted whatever the image size (a small image in
// 256 x 256 or 1024 x 1024 tiles is common); beyond it a tile may not exceed the image.
constexpr uint64_t kMaxTileSide = 4096;

void check_supported(const Layout& l, const std::string& where) {
  if (l.width == 0 || l.height == 0) throw InputError(where + "image has no pixels");
  if (l.samples != 1)
    throw InputError(where + std::to_string(l.samples) +
                     " samples per pixel (RGB or multichannel) are not supported; "
                     "expected one grayscale sample per pixel");
  if (l.photometric == PHOTOMETRIC_PALETTE)
    throw InputError(where + "palette-colour images are not supported");
  bool ok = (l.format == SAMPLEFORMAT_UINT && (l.bits == 8 || l.bits == 16 || l.bits == 32)) ||
            (l.format == SAMPLEFORMAT_IEEEFP && l.bits == 32);
  if (ok) return;
  std::string what = l.format == SAMPLEFORMAT_INT      ? "signed integer samples"
                     : l.format == SAMPLEFORMAT_IEEEFP ? std::to_string(l.bits) + "-bit float samples"
                     : l.format == SAMPLEFORMAT_UINT   ? std::to_string(l.bits) + "-bit unsigned samples"
                                                       : "sample format " + std::to_string(l.format);
  throw InputError(where + what + " are not supported (supported: 8/16/32-bit unsigned, 32-bit float)");
}

// Converts `n` samples (native byte order) to float.
void to_float(const uint8_t* src, size_t n, const Layout& l, float* out) {
  if (l.format == SAMPLEFORMAT_IEEEFP) {
    std::memcpy(out, src, n * sizeof(float));
  } else if (l.bits == 8) {
    for (size_t i = 0; i < n; ++i) out[i] = src[i];
  } else if (l.bits == 16) {
    for (size_t i = 0; i < n; ++i) {
      uint16_t v;
      std::memcpy(&v, src + 2 * i, 2);
      out[i] = v;
    }
  } else {
    for (size_t i = 0; i < n; ++i) {
      uint32_t v;
      std::memcpy(&v, src + 4 * i, 4);
      out[i] = static_cast<float>(v);
    }
  }
}

// ImageJ's description: "ImageJ=1.53t\nimages=20\nunit=micron\n..." as key -> value.
std::map<std::string, std::string> imagej_properties(TIFF* tif) {
  std::map<std::string, std::string> props;
  const char* desc = nullptr;
  if (!TIFFGetField(tif, TIFFTAG_IMAGEDESCRIPTION, &desc) || desc == nullptr ||
      std::strncmp(desc, "ImageJ=", 7) != 0)
    return props;
  std::string text(desc);
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(start, end - start);
    size_t eq = line.find('=');
    if (eq != std::string::npos) props[line.substr(0, eq)] = line.substr(eq + 1);
    start = end + 1;
  }
  return props;
}

// Nanometres per unit of ImageJ's "unit=" (0 when not a length ImageJ users use for pixels).
double imagej_unit_nm(const std::string& unit) {
  if (unit == "nm") return 1;
  if (unit == "micron" || unit == "microns" || unit == "um" || unit == "\\u00B5m" || unit == "\xC2\xB5m")
    return 1e3;
  if (unit == "mm") return 1e6;
  return 0;
}

// See the scheme at the top. An absent ResolutionUnit counts as unknown rather than the TIFF
// default (inch): a microscope file without a unit has no meaningful dots-per-inch.
double pixel_size_nm(TIFF* tif, const std::map<std::string, std::string>& imagej) {
  float xres = 0;
  if (!TIFFGetField(tif, TIFFTAG_XRESOLUTION, &xres) || !(xres > 0) || !std::isfinite(xres)) return 0;
  uint16_t unit = 0;
  bool has_unit = TIFFGetField(tif, TIFFTAG_RESOLUTIONUNIT, &unit) != 0;
  if (has_unit && unit == RESUNIT_CENTIMETER) return 1e7 / xres;
  if (has_unit && unit == RESUNIT_INCH) return 2.54e7 / xres;
  auto it = imagej.find("unit");
  if ((!has_unit || unit == RESUNIT_NONE) && it != imagej.end()) return imagej_unit_nm(it->second) / xres;
  return 0;
}

constexpr uint64_t kNoDirectory = std::numeric_limits<uint64_t>::max();

}  // namespace

struct Reader::Impl {
  TIFF* tif = nullptr;
  std::string errors;  // libtiff messages not yet reported
  // Its warnings: libtiff keeps the address for the handle's life (reading a later directory
  // warns too), so it lives here, not on the constructor's stack.
  std::string warnings;
  Layout first;              // frame 0's layout; every frame must match
  uint64_t current = 0;      // directory libtiff is on; kNoDirectory after a failed move
  std::vector<uint8_t> buf;  // one strip, tile or (contiguous layout) frame
  // ImageJ >4 GiB layout: one IFD, frame k's raw samples at data_offset + k * frame_bytes.
  bool contiguous = false;
  uint64_t data_offset = 0, frame_bytes = 0, file_size = 0;
  bool swapped = false;

  ~Impl() {
    if (tif != nullptr) TIFFClose(tif);
  }
  void read_strips(const std::string& where, float* out);
  void read_tiles(const std::string& where, float* out);
  void read_contiguous(const std::string& where, uint64_t index, float* out);
};

Reader::Reader(const std::string& path) : impl_(std::make_unique<Impl>()), path_(path) {
  Impl& d = *impl_;
  // "m": no memory mapping. libtiff maps the whole file by default, and every frame read stays
  // resident in the process (RSS grew by one frame per frame ingested: 4 GiB for a 4 GiB stack).
  d.tif = open_tiff(path, "rm", &d.errors, &d.warnings);
  if (d.tif == nullptr) throw InputError(path + ": cannot open as TIFF: " + take(d.errors, "unknown error"));
  // Walks the IFD chain (offsets only); a broken chain is reported now, not as missing frames.
  tdir_t dirs = TIFFNumberOfDirectories(d.tif);
  if (!d.errors.empty() || dirs == 0)
    throw InputError(frame_prefix(path, dirs) + "cannot read its IFD (truncated or corrupt file): " +
                     take(d.errors, "no image directory"));
  // libtiff stops at a directory it has seen and only warns: the file is corrupt, and its frame
  // count is a guess.
  std::string lowered = d.warnings;
  for (auto& c : lowered) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (lowered.find("loop") != std::string::npos)
    throw InputError(path + ": its chain of image directories loops back after " + std::to_string(dirs) +
                     " frame(s) (corrupt file): " + d.warnings);

  d.first = read_layout(d.tif);
  check_supported(d.first, frame_prefix(path, 0));
  auto imagej = imagej_properties(d.tif);
  info_.width = d.first.width;
  info_.height = d.first.height;
  info_.bits_per_sample = d.first.bits;
  info_.kind = d.first.format == SAMPLEFORMAT_IEEEFP ? SampleKind::Float : SampleKind::Unsigned;
  info_.pixel_size_nm = pixel_size_nm(d.tif, imagej);
  info_.frames = dirs;

  // ImageJ stacks too large for classic TIFF offsets: one IFD, "images=N" in the description,
  // the other frames' raw data following the first frame's.
  uint64_t images = 0;
  if (imagej.count("images")) {
    const std::string& text = imagej["images"];
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), images);
    if (ec != std::errc() || end != text.data() + text.size() || images == 0)
      throw InputError(path + ": the ImageJ description's images=" + text + " is not a positive frame count");
  }
  if (dirs == 1 && images > 1) {
    d.frame_bytes = uint64_t(d.first.width) * d.first.height * (d.first.bits / 8);
    uint16_t compression = COMPRESSION_NONE;
    TIFFGetFieldDefaulted(d.tif, TIFFTAG_COMPRESSION, &compression);
    bool contiguous = compression == COMPRESSION_NONE && !TIFFIsTiled(d.tif);
    uint64_t next = TIFFGetStrileOffset(d.tif, 0);
    for (uint32_t s = 0; contiguous && s < TIFFNumberOfStrips(d.tif); ++s) {
      contiguous = TIFFGetStrileOffset(d.tif, s) == next;
      next += TIFFGetStrileByteCount(d.tif, s);
    }
    if (!contiguous || next - TIFFGetStrileOffset(d.tif, 0) != d.frame_bytes)
      throw InputError(path + ": the ImageJ description says " + std::to_string(images) +
                       " images but the file has one IFD whose data is not one contiguous "
                       "uncompressed frame");
    struct stat st {};
    if (fstat(TIFFFileno(d.tif), &st) != 0) throw InputError(path + ": cannot stat: " + std::strerror(errno));
    d.contiguous = true;
    d.data_offset = TIFFGetStrileOffset(d.tif, 0);
    d.file_size = uint64_t(st.st_size);
    // Frames that start inside the file (a cut last frame still counts: the ones before it read).
    const uint64_t room =
        d.file_size > d.data_offset ? (d.file_size - d.data_offset + d.frame_bytes - 1) / d.frame_bytes : 0;
    if (images > room)
      throw InputError(path + ": the ImageJ description says " + std::to_string(images) +
                       " images but the file has room for " + std::to_string(room) + " frames of " +
                       std::to_string(d.frame_bytes) + " bytes");
    d.swapped = TIFFIsByteSwapped(d.tif) != 0;
    info_.frames = images;
  }
}

Reader::~Reader() = default;

void Reader::read_frame(uint64_t index, float* out) {
  Impl& d = *impl_;
  const std::string where = frame_prefix(path_, index);
  if (index >= info_.frames)
    throw Error(where + "out of range (the file has " + std::to_string(info_.frames) + " frames)");
  if (d.contiguous) {
    d.read_contiguous(where, index, out);
    return;
  }

  d.errors.clear();
  d.warnings.clear();  // only the opening's are reported; later ones would only pile up
  if (index != d.current) {
    // TIFFReadDirectory continues from the current IFD (O(1)); TIFFSetDirectory walks the chain.
    bool next = d.current != kNoDirectory && index == d.current + 1;
    int ok = next ? TIFFReadDirectory(d.tif) : TIFFSetDirectory(d.tif, static_cast<tdir_t>(index));
    if (!ok) {
      d.current = kNoDirectory;
      throw InputError(where + "cannot read its IFD: " + take(d.errors, "unknown error"));
    }
    d.current = index;
  }
  Layout l = read_layout(d.tif);
  if (!l.same_shape(d.first))
    throw InputError(where + "is " + describe(l) + " but frame 0 is " + describe(d.first) +
                     "; all frames must have the same size and sample format");
  if (TIFFIsTiled(d.tif))
    d.read_tiles(where, out);
  else
    d.read_strips(where, out);
  // Some codecs report damaged data yet return the expected size.
  if (!d.errors.empty()) throw InputError(where + take(d.errors, ""));
}

void Reader::Impl::read_strips(const std::string& where, float* out) {
  uint32_t rows_per_strip = 0;
  TIFFGetFieldDefaulted(tif, TIFFTAG_ROWSPERSTRIP, &rows_per_strip);
  rows_per_strip = std::clamp<uint32_t>(rows_per_strip, 1, first.height);
  const size_t row_bytes = size_t(first.width) * (first.bits / 8);
  const uint32_t strips = TIFFNumberOfStrips(tif);
  buf.resize(size_t(rows_per_strip) * row_bytes);
  uint32_t strip = 0;
  for (uint32_t row = 0; row < first.height; row += rows_per_strip, ++strip) {
    const uint32_t rows = std::min(rows_per_strip, first.height - row);
    const tmsize_t want = tmsize_t(rows * row_bytes);
    if (strip >= strips)
      throw InputError(where + "has " + std::to_string(strips) + " strips, too few for its height");
    tmsize_t got = TIFFReadEncodedStrip(tif, strip, buf.data(), want);
    if (got < want)
      throw InputError(where + "cannot read strip " + std::to_string(strip) + ": " +
                       take(errors, "truncated or corrupt data"));
    to_float(buf.data(), size_t(rows) * first.width, first, out + size_t(row) * first.width);
  }
}

void Reader::Impl::read_tiles(const std::string& where, float* out) {
  uint32_t tile_w = 0, tile_h = 0;
  TIFFGetField(tif, TIFFTAG_TILEWIDTH, &tile_w);
  TIFFGetField(tif, TIFFTAG_TILELENGTH, &tile_h);
  if (tile_w == 0 || tile_h == 0) throw InputError(where + "tiled image without a tile size");
  // A tile may pad the image (its sides are multiples of 16) but not dwarf it: a corrupt tile size
  // would size an allocation of gigabytes (found by fuzzing: 4 GB for a 386-byte file).
  const auto largest = [](uint32_t side) { return std::max<uint64_t>(side, kMaxTileSide); };
  // Nor be smaller than TIFF allows (sides multiples of 16): 1 x 3 tiles made a 564-byte file cost
  // a read and a seek per tile, 8 s for one frame of 2572 x 1027 (found by fuzzing).
  if (tile_w > largest(first.width) || tile_h > largest(first.height) || tile_w % 16 != 0 || tile_h % 16 != 0)
    throw InputError(where + "tiles of " + std::to_string(tile_w) + " x " + std::to_string(tile_h) +
                     " pixels for an image of " + std::to_string(first.width) + " x " +
                     std::to_string(first.height) + " (corrupt tile size: TIFF tiles are multiples of 16)");
  const size_t sample_bytes = first.bits / 8;
  const tmsize_t tile_bytes = tmsize_t(size_t(tile_w) * tile_h * sample_bytes);
  buf.resize(size_t(tile_bytes));
  for (uint32_t y = 0; y < first.height; y += tile_h) {
    for (uint32_t x = 0; x < first.width; x += tile_w) {
      uint32_t tile = TIFFComputeTile(tif, x, y, 0, 0);
      if (TIFFReadEncodedTile(tif, tile, buf.data(), tile_bytes) < tile_bytes)
        throw InputError(where + "cannot read tile " + std::to_string(tile) + ": " +
                         take(errors, "truncated or corrupt data"));
      // Edge tiles are padded to the full tile size; copy only the part inside the image.
      const uint32_t w = std::min(tile_w, first.width - x);
      const uint32_t h = std::min(tile_h, first.height - y);
      for (uint32_t r = 0; r < h; ++r)
        to_float(buf.data() + size_t(r) * tile_w * sample_bytes, w, first,
                 out + size_t(y + r) * first.width + x);
    }
  }
}

void Reader::Impl::read_contiguous(const std::string& where, uint64_t index, float* out) {
  const uint64_t offset = data_offset + index * frame_bytes;
  if (offset + frame_bytes > file_size)
    throw InputError(where + "the file is truncated: the frame ends at byte " +
                     std::to_string(offset + frame_bytes) + " but the file has " + std::to_string(file_size) +
                     " bytes");
  buf.resize(frame_bytes);
  const int fd = TIFFFileno(tif);
  for (uint64_t done = 0; done < frame_bytes;) {
    ssize_t n = pread(fd, buf.data() + done, frame_bytes - done, off_t(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0)
      throw InputError(where + "read error: " + (n < 0 ? std::strerror(errno) : "unexpected end of file"));
    done += uint64_t(n);
  }
  const tmsize_t samples = tmsize_t(frame_bytes / (first.bits / 8));
  if (swapped && first.bits == 16) TIFFSwabArrayOfShort(reinterpret_cast<uint16_t*>(buf.data()), samples);
  if (swapped && first.bits == 32) TIFFSwabArrayOfLong(reinterpret_cast<uint32_t*>(buf.data()), samples);
  to_float(buf.data(), size_t(samples), first, out);
}

// ---------------------------------------------------------------------------------------------

struct Writer::Impl {
  AtomicPath out;
  TIFF* tif = nullptr;
  std::string errors;
  uint32_t width, height;
  WriteFormat format;
  double pixel_size_nm;
  uint64_t expected_frames;
  Writer::Unit unit = Writer::Unit::Micrometre;
  uint64_t written = 0;
  uint32_t rows_per_strip = 1;
  std::vector<uint8_t> strip;  // libtiff may byte-swap what it writes in place: never the caller's data

  Impl(const std::string& path, uint32_t w, uint32_t h, WriteFormat f, double px, uint64_t n)
      : out(path), width(w), height(h), format(f), pixel_size_nm(px), expected_frames(n) {}
  ~Impl() {
    if (tif != nullptr) TIFFClose(tif);  // the uncommitted temporary is then removed by `out`
  }
  void write(const uint8_t* data);
};

Writer::Writer(const std::string& path, uint32_t width, uint32_t height, WriteFormat format,
               double pixel_size_nm, uint64_t expected_frames)
    : impl_(std::make_unique<Impl>(path, width, height, format,
                                   std::isfinite(pixel_size_nm) ? pixel_size_nm : 0, expected_frames)) {
  Impl& d = *impl_;
  if (width == 0 || height == 0)
    throw Error(path + ": cannot write a " + std::to_string(width) + "x" + std::to_string(height) + " TIFF");
  const uint64_t sample_bytes = format == WriteFormat::U16 ? 2 : 4;
  const uint64_t row_bytes = uint64_t(width) * sample_bytes;
  d.rows_per_strip = uint32_t(std::clamp<uint64_t>(65536 / row_bytes, 1, height));
  // Classic TIFF offsets are 32-bit. Keep a margin for the IFDs; an unknown frame count may
  // grow past the limit, so it gets BigTIFF too.
  const uint64_t frame_bytes = row_bytes * height + 1024;
  const bool big = expected_frames == 0 || frame_bytes * expected_frames > (uint64_t(39) << 30) / 10;
  d.tif = open_tiff(d.out.tmp(), big ? "w8" : "w", &d.errors);
  if (d.tif == nullptr) throw Error(path + ": cannot create TIFF: " + take(d.errors, "unknown error"));
}

Writer::~Writer() = default;

void Writer::set_unit(Unit unit) {
  if (impl_->written > 0) throw Error(impl_->out.final_path() + ": set_unit() after the first frame");
  impl_->unit = unit;
}

void Writer::write_frame(const uint16_t* data) {
  if (impl_->format != WriteFormat::U16)
    throw Error(impl_->out.final_path() + ": 16-bit frame given to a float32 TIFF writer");
  impl_->write(reinterpret_cast<const uint8_t*>(data));
}

void Writer::write_frame(const float* data) {
  if (impl_->format != WriteFormat::F32)
    throw Error(impl_->out.final_path() + ": float32 frame given to a 16-bit TIFF writer");
  impl_->write(reinterpret_cast<const uint8_t*>(data));
}

void Writer::Impl::write(const uint8_t* data) {
  const std::string& path = out.final_path();
  if (tif == nullptr) throw Error(path + ": frame written after commit()");
  const bool f32 = format == WriteFormat::F32;
  const size_t row_bytes = size_t(width) * (f32 ? 4 : 2);
  TIFFSetField(tif, TIFFTAG_IMAGEWIDTH, width);
  TIFFSetField(tif, TIFFTAG_IMAGELENGTH, height);
  TIFFSetField(tif, TIFFTAG_BITSPERSAMPLE, f32 ? 32 : 16);
  TIFFSetField(tif, TIFFTAG_SAMPLEFORMAT, f32 ? SAMPLEFORMAT_IEEEFP : SAMPLEFORMAT_UINT);
  TIFFSetField(tif, TIFFTAG_SAMPLESPERPIXEL, 1);
  TIFFSetField(tif, TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_MINISBLACK);
  TIFFSetField(tif, TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG);
  TIFFSetField(tif, TIFFTAG_COMPRESSION, COMPRESSION_NONE);
  TIFFSetField(tif, TIFFTAG_ROWSPERSTRIP, rows_per_strip);
  if (pixel_size_nm > 0 && unit == Writer::Unit::Nanometre) {
    TIFFSetField(tif, TIFFTAG_RESOLUTIONUNIT, RESUNIT_NONE);
    TIFFSetField(tif, TIFFTAG_XRESOLUTION, 1.0 / pixel_size_nm);
    TIFFSetField(tif, TIFFTAG_YRESOLUTION, 1.0 / pixel_size_nm);
    if (written == 0) TIFFSetField(tif, TIFFTAG_IMAGEDESCRIPTION, "ImageJ=1.53t\nunit=nm\n");
  } else if (pixel_size_nm > 0) {
    TIFFSetField(tif, TIFFTAG_RESOLUTIONUNIT, RESUNIT_CENTIMETER);
    TIFFSetField(tif, TIFFTAG_XRESOLUTION, 1e7 / pixel_size_nm);
    TIFFSetField(tif, TIFFTAG_YRESOLUTION, 1e7 / pixel_size_nm);
    if (written == 0) TIFFSetField(tif, TIFFTAG_IMAGEDESCRIPTION, "ImageJ=1.53t\nunit=um\n");
  }
  strip.resize(rows_per_strip * row_bytes);
  uint32_t s = 0;
  for (uint32_t row = 0; row < height; row += rows_per_strip, ++s) {
    const size_t bytes = std::min(rows_per_strip, height - row) * row_bytes;
    std::memcpy(strip.data(), data + row * row_bytes, bytes);
    if (TIFFWriteEncodedStrip(tif, s, strip.data(), tmsize_t(bytes)) < 0)
      throw Error(path + ": cannot write frame " + std::to_string(written) + ": " +
                  take(errors, "write error"));
  }
  if (!TIFFWriteDirectory(tif))
    throw Error(path + ": cannot write frame " + std::to_string(written) + ": " +
                take(errors, "write error"));
  ++written;
}

void Writer::commit() {
  Impl& d = *impl_;
  const std::string& path = d.out.final_path();
  if (d.tif == nullptr) throw Error(path + ": commit() called twice");
  if (d.written == 0) throw Error(path + ": no frames written");
  if (d.expected_frames > 0 && d.written != d.expected_frames)
    throw Error(path + ": " + std::to_string(d.written) + " frames written but " +
                std::to_string(d.expected_frames) + " expected");
  TIFFClose(d.tif);
  d.tif = nullptr;
  if (!d.errors.empty()) throw Error(path + ": cannot finish the TIFF: " + take(d.errors, ""));
  d.out.commit();
}

}  // namespace dsir::tiff
