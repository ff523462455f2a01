#include <gtest/gtest.h>
#include <tiffio.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "pipeline/errors.h"
#include "pipeline/tiff.h"
#include "tests/shared_data.h"
#include "tests/temp_dir.h"

namespace fs = std::filesystem;
using dsir::InputError;
using dsir::tiff::Reader;
using dsir::tiff::SampleKind;
using dsir::tiff::WriteFormat;
using dsir::tiff::Writer;

namespace {

class TiffTest : public dsir::test::TempDirTest {
 protected:
  std::string file(const std::string& name) const { return (dir_ / name).string(); }
};

// How test files are written directly with libtiff (layouts the Writer never produces).
struct Spec {
  uint32_t width = 0, height = 0;
  uint16_t bits = 16, format = SAMPLEFORMAT_UINT, samples = 1;
  uint16_t compression = COMPRESSION_NONE, predictor = PREDICTOR_NONE;
  uint32_t tile = 0;  // tile width and height; 0 = strips
  const char* mode = "w";
};

// Writes one IFD per frame; each frame is width*height*samples samples of bits/8 bytes
// (native byte order) given as raw bytes.
void write_raw(const std::string& path, const Spec& s, const std::vector<std::vector<uint8_t>>& frames,
               const std::vector<Spec>& per_frame = {}) {
  TIFF* tif = TIFFOpen(path.c_str(), s.mode);
  ASSERT_NE(tif, nullptr);
  for (size_t k = 0; k < frames.size(); ++k) {
    const Spec& f = k < per_frame.size() ? per_frame[k] : s;
    const size_t sample_bytes = f.bits / 8 * f.samples;
    TIFFSetField(tif, TIFFTAG_IMAGEWIDTH, f.width);
    TIFFSetField(tif, TIFFTAG_IMAGELENGTH, f.height);
    TIFFSetField(tif, TIFFTAG_BITSPERSAMPLE, f.bits);
    TIFFSetField(tif, TIFFTAG_SAMPLEFORMAT, f.format);
    TIFFSetField(tif, TIFFTAG_SAMPLESPERPIXEL, f.samples);
    TIFFSetField(tif, TIFFTAG_PHOTOMETRIC, f.samples == 3 ? PHOTOMETRIC_RGB : PHOTOMETRIC_MINISBLACK);
    TIFFSetField(tif, TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG);
    TIFFSetField(tif, TIFFTAG_COMPRESSION, f.compression);
    if (f.predictor != PREDICTOR_NONE) TIFFSetField(tif, TIFFTAG_PREDICTOR, f.predictor);
    const uint8_t* data = frames[k].data();
    if (f.tile > 0) {
      TIFFSetField(tif, TIFFTAG_TILEWIDTH, f.tile);
      TIFFSetField(tif, TIFFTAG_TILELENGTH, f.tile);
      std::vector<uint8_t> tile(f.tile * f.tile * sample_bytes, 0);
      for (uint32_t y = 0; y < f.height; y += f.tile)
        for (uint32_t x = 0; x < f.width; x += f.tile) {
          std::fill(tile.begin(), tile.end(), 0);
          for (uint32_t r = 0; r < f.tile && y + r < f.height; ++r)
            for (uint32_t c = 0; c < f.tile && x + c < f.width; ++c)
              std::memcpy(&tile[(r * f.tile + c) * sample_bytes],
                          data + ((y + r) * f.width + x + c) * sample_bytes, sample_bytes);
          ASSERT_GE(
              TIFFWriteEncodedTile(tif, TIFFComputeTile(tif, x, y, 0, 0), tile.data(), tmsize_t(tile.size())),
              0);
        }
    } else {
      TIFFSetField(tif, TIFFTAG_ROWSPERSTRIP, 3);  // several strips, the last one short
      std::vector<uint8_t> copy(frames[k]);
      const size_t row_bytes = f.width * sample_bytes;
      for (uint32_t row = 0, s_idx = 0; row < f.height; row += 3, ++s_idx)
        ASSERT_GE(TIFFWriteEncodedStrip(tif, s_idx, copy.data() + row * row_bytes,
                                        tmsize_t(std::min<uint32_t>(3, f.height - row) * row_bytes)),
                  0);
    }
    ASSERT_TRUE(TIFFWriteDirectory(tif));
  }
  TIFFClose(tif);
}

template <class T>
std::vector<uint8_t> bytes_of(const std::vector<T>& v) {
  std::vector<uint8_t> b(v.size() * sizeof(T));
  std::memcpy(b.data(), v.data(), b.size());
  return b;
}

// A test pattern whose bytes differ, so byte-order or offset mistakes show.
std::vector<uint16_t> pattern16(uint32_t w, uint32_t h, uint32_t seed) {
  std::vector<uint16_t> v(size_t(w) * h);
  for (size_t i = 0; i < v.size(); ++i) v[i] = uint16_t((i * 2654435761u + seed * 40503u) >> 7);
  v[0] = 0;
  v[1] = 65535;
  v[2] = 0x0102;
  return v;
}

std::vector<float> read_all(Reader& r, uint64_t frame) {
  std::vector<float> out(size_t(r.info().width) * r.info().height);
  r.read_frame(frame, out.data());
  return out;
}

void expect_equal(const std::vector<uint16_t>& want, const std::vector<float>& got) {
  ASSERT_EQ(want.size(), got.size());
  for (size_t i = 0; i < want.size(); ++i) ASSERT_EQ(float(want[i]), got[i]) << "pixel " << i;
}

// Message of the InputError `f` throws ("" when it throws nothing).
template <class F>
std::string input_error(F f) {
  try {
    f();
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

// A classic big-endian TIFF laid out like ImageJ's: the IFD first, then the pixel data of all
// `frames` frames contiguously (ImageJ's layout for stacks over 4 GiB has only this one IFD).
std::vector<uint8_t> imagej_like_tiff(uint32_t w, uint32_t h, const std::vector<uint16_t>& pixels,
                                      const std::string& description, uint32_t xres_num, uint32_t xres_den,
                                      uint16_t resunit) {
  std::vector<uint8_t> f{'M', 'M', 0, 42};  // big-endian classic TIFF
  auto u16 = [&](uint32_t v) {
    f.push_back(uint8_t(v >> 8));
    f.push_back(uint8_t(v));
  };
  auto u32 = [&](uint32_t v) {
    u16(v >> 16);
    u16(v & 0xFFFF);
  };
  const uint32_t entries = 13;
  const uint32_t ifd_end = 8 + 2 + entries * 12 + 4;
  const uint32_t desc_off = ifd_end, desc_len = uint32_t(description.size() + 1);
  const uint32_t xres_off = (desc_off + desc_len + 1) & ~1u, yres_off = xres_off + 8;
  const uint32_t data_off = yres_off + 8;
  u32(8);
  u16(entries);
  auto entry = [&](uint16_t tag, uint16_t type, uint32_t count, uint32_t value) {
    u16(tag);
    u16(type);
    u32(count);
    if (type == TIFF_SHORT) {  // left-justified in the value field
      u16(value);
      u16(0);
    } else {
      u32(value);
    }
  };
  entry(TIFFTAG_IMAGEWIDTH, TIFF_LONG, 1, w);
  entry(TIFFTAG_IMAGELENGTH, TIFF_LONG, 1, h);
  entry(TIFFTAG_BITSPERSAMPLE, TIFF_SHORT, 1, 16);
  entry(TIFFTAG_COMPRESSION, TIFF_SHORT, 1, COMPRESSION_NONE);
  entry(TIFFTAG_PHOTOMETRIC, TIFF_SHORT, 1, PHOTOMETRIC_MINISBLACK);
  entry(TIFFTAG_IMAGEDESCRIPTION, TIFF_ASCII, desc_len, desc_off);
  entry(TIFFTAG_STRIPOFFSETS, TIFF_LONG, 1, data_off);
  entry(TIFFTAG_SAMPLESPERPIXEL, TIFF_SHORT, 1, 1);
  entry(TIFFTAG_ROWSPERSTRIP, TIFF_LONG, 1, h);
  entry(TIFFTAG_STRIPBYTECOUNTS, TIFF_LONG, 1, w * h * 2);
  entry(TIFFTAG_XRESOLUTION, TIFF_RATIONAL, 1, xres_off);
  entry(TIFFTAG_YRESOLUTION, TIFF_RATIONAL, 1, yres_off);
  entry(TIFFTAG_RESOLUTIONUNIT, TIFF_SHORT, 1, resunit);
  u32(0);  // no next IFD
  f.insert(f.end(), description.begin(), description.end());
  f.resize(xres_off, 0);
  u32(xres_num);
  u32(xres_den);
  u32(xres_num);
  u32(xres_den);
  for (uint16_t v : pixels) u16(v);
  return f;
}

void write_file(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
}

}  // namespace

TEST_F(TiffTest, U16StackRoundTripsValuesAndPixelSize) {
  const uint32_t w = 37, h = 23;  // odd sizes: short last strip
  const std::string path = file("stack.tif");
  std::vector<std::vector<uint16_t>> frames{pattern16(w, h, 1), pattern16(w, h, 2), pattern16(w, h, 3)};
  {
    Writer wr(path, w, h, WriteFormat::U16, 108.3, 3);
    for (const auto& f : frames) wr.write_frame(f.data());
    wr.commit();
  }
  Reader r(path);
  EXPECT_EQ(r.info().width, w);
  EXPECT_EQ(r.info().height, h);
  EXPECT_EQ(r.info().frames, 3u);
  EXPECT_EQ(r.info().bits_per_sample, 16);
  EXPECT_EQ(r.info().kind, SampleKind::Unsigned);
  EXPECT_NEAR(r.info().pixel_size_nm, 108.3, 108.3 * 1e-6);
  for (uint64_t k : {0, 1, 2, 0, 2, 1}) expect_equal(frames[k], read_all(r, k));  // any order
  EXPECT_THROW(read_all(r, 3), dsir::Error);

  // The calibration as other programs see it: pixels per cm, plus ImageJ's unit.
  TIFF* tif = TIFFOpen(path.c_str(), "r");
  ASSERT_NE(tif, nullptr);
  uint16_t unit = 0;
  float xres = 0;
  const char* desc = nullptr;
  ASSERT_TRUE(TIFFGetField(tif, TIFFTAG_RESOLUTIONUNIT, &unit));
  ASSERT_TRUE(TIFFGetField(tif, TIFFTAG_XRESOLUTION, &xres));
  ASSERT_TRUE(TIFFGetField(tif, TIFFTAG_IMAGEDESCRIPTION, &desc));
  EXPECT_EQ(unit, RESUNIT_CENTIMETER);
  EXPECT_NEAR(xres, 1e7 / 108.3, 0.01);
  EXPECT_STREQ(desc, "ImageJ=1.53t\nunit=um\n");
  EXPECT_FALSE(TIFFIsBigTIFF(tif));  // small with a known frame count: classic TIFF
  TIFFClose(tif);
}

TEST_F(TiffTest, F32StackRoundTripsExactValues) {
  const uint32_t w = 300, h = 70;  // several ~64 KiB strips
  const std::string path = file("f32.tif");
  std::vector<std::vector<float>> frames(2, std::vector<float>(size_t(w) * h));
  for (size_t i = 0; i < frames[0].size(); ++i) {
    frames[0][i] = float(i) * 0.37f - 1000.5f;
    frames[1][i] = std::sin(float(i)) * 1e-6f;
  }
  frames[1][5] = 3.4e38f;
  {
    Writer wr(path, w, h, WriteFormat::F32, 0, 2);
    wr.write_frame(frames[0].data());
    wr.write_frame(frames[1].data());
    wr.commit();
  }
  Reader r(path);
  EXPECT_EQ(r.info().kind, SampleKind::Float);
  EXPECT_EQ(r.info().bits_per_sample, 32);
  EXPECT_EQ(r.info().frames, 2u);
  EXPECT_EQ(r.info().pixel_size_nm, 0);  // none given: no calibration
  for (uint64_t k = 0; k < 2; ++k) EXPECT_EQ(read_all(r, k), frames[k]);
}

TEST_F(TiffTest, WriterWithUnknownFrameCountWritesBigTiff) {
  const std::string path = file("unknown.tif");
  std::vector<uint16_t> f = pattern16(8, 8, 5);
  {
    Writer wr(path, 8, 8, WriteFormat::U16, 50);
    wr.write_frame(f.data());
    wr.write_frame(f.data());
    wr.commit();
  }
  std::ifstream in(path, std::ios::binary);
  char header[4];
  in.read(header, 4);
  EXPECT_EQ(header[2] + header[3], 43);  // BigTIFF version number, either byte order
  Reader r(path);
  EXPECT_EQ(r.info().frames, 2u);
  EXPECT_NEAR(r.info().pixel_size_nm, 50, 1e-4);
  expect_equal(f, read_all(r, 1));
}

TEST_F(TiffTest, WriterRejectsWrongFormatAndWrongFrameCount) {
  const std::string path = file("wrong.tif");
  std::vector<float> f32(16, 1.0f);
  std::vector<uint16_t> u16(16, 1);
  {
    Writer wr(path, 4, 4, WriteFormat::U16, 100, 2);
    EXPECT_THROW(wr.write_frame(f32.data()), dsir::Error);
    wr.write_frame(u16.data());
    EXPECT_THROW(wr.commit(), dsir::Error);  // 1 of 2 frames
  }
  {
    Writer wr(path, 4, 4, WriteFormat::F32, 100);
    EXPECT_THROW(wr.write_frame(u16.data()), dsir::Error);
    EXPECT_THROW(wr.commit(), dsir::Error);  // no frames at all
  }
  EXPECT_TRUE(fs::is_empty(dir_));
}

TEST_F(TiffTest, UncommittedWriterLeavesNoFile) {
  std::vector<uint16_t> f = pattern16(16, 16, 1);
  {
    Writer wr(file("abandoned.tif"), 16, 16, WriteFormat::U16, 100, 5);
    wr.write_frame(f.data());
    EXPECT_FALSE(fs::is_empty(dir_));  // the temporary exists while writing
  }
  EXPECT_TRUE(fs::is_empty(dir_));
}

TEST_F(TiffTest, TiledDeflateTiffReads) {
  const uint32_t w = 40, h = 37;  // partial edge tiles on both axes
  const std::string path = file("tiled.tif");
  Spec s;
  s.width = w;
  s.height = h;
  s.tile = 16;
  s.compression = COMPRESSION_ADOBE_DEFLATE;
  auto f0 = pattern16(w, h, 7), f1 = pattern16(w, h, 8);
  write_raw(path, s, {bytes_of(f0), bytes_of(f1)});
  Reader r(path);
  EXPECT_EQ(r.info().frames, 2u);
  expect_equal(f0, read_all(r, 0));
  expect_equal(f1, read_all(r, 1));
}

TEST_F(TiffTest, LzwStripsWithPredictorRead) {
  const uint32_t w = 33, h = 10;
  const std::string path = file("lzw.tif");
  Spec s;
  s.width = w;
  s.height = h;
  s.compression = COMPRESSION_LZW;
  s.predictor = PREDICTOR_HORIZONTAL;
  auto f0 = pattern16(w, h, 9);
  write_raw(path, s, {bytes_of(f0)});
  Reader r(path);
  expect_equal(f0, read_all(r, 0));
}

TEST_F(TiffTest, EightAndThirtyTwoBitUnsignedRead) {
  Spec s;
  s.width = 5;
  s.height = 7;
  s.bits = 8;
  std::vector<uint8_t> f8(35);
  for (size_t i = 0; i < f8.size(); ++i) f8[i] = uint8_t(i * 7 + 3);
  write_raw(file("u8.tif"), s, {f8});
  Reader r8(file("u8.tif"));
  EXPECT_EQ(r8.info().bits_per_sample, 8);
  auto got8 = read_all(r8, 0);
  for (size_t i = 0; i < f8.size(); ++i) ASSERT_EQ(got8[i], float(f8[i]));

  s.bits = 32;
  std::vector<uint32_t> f32(35);
  for (size_t i = 0; i < f32.size(); ++i) f32[i] = uint32_t(i * 100003);
  write_raw(file("u32.tif"), s, {bytes_of(f32)});
  Reader r32(file("u32.tif"));
  EXPECT_EQ(r32.info().bits_per_sample, 32);
  auto got32 = read_all(r32, 0);
  for (size_t i = 0; i < f32.size(); ++i) ASSERT_EQ(got32[i], float(f32[i]));
}

TEST_F(TiffTest, BigTiffReads) {
  Spec s;
  s.width = 20;
  s.height = 9;
  s.mode = "w8";
  auto f0 = pattern16(20, 9, 1), f1 = pattern16(20, 9, 2), f2 = pattern16(20, 9, 3);
  write_raw(file("big.tif"), s, {bytes_of(f0), bytes_of(f1), bytes_of(f2)});
  Reader r(file("big.tif"));
  EXPECT_EQ(r.info().frames, 3u);
  expect_equal(f2, read_all(r, 2));
  expect_equal(f0, read_all(r, 0));
  expect_equal(f1, read_all(r, 1));
}

TEST_F(TiffTest, TruncatedFileThrowsNamingTheFile) {
  const std::string path = file("truncated.tif");
  std::vector<uint16_t> f = pattern16(64, 64, 1);
  {
    Writer wr(path, 64, 64, WriteFormat::U16, 100, 3);
    for (int k = 0; k < 3; ++k) wr.write_frame(f.data());
    wr.commit();
  }
  fs::resize_file(path, fs::file_size(path) * 6 / 10);
  std::string msg = input_error([&] {
    Reader r(path);
    for (uint64_t k = 0; k < r.info().frames; ++k) read_all(r, k);
  });
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
}

TEST_F(TiffTest, TruncatedStripDataThrowsNamingTheFrame) {
  // The IFD comes first here, so the directory survives and the pixel read must fail.
  const std::string path = file("short_strip.tif");
  auto bytes = imagej_like_tiff(32, 32, pattern16(32, 32, 1), "ImageJ=1.53t\n", 1, 1, RESUNIT_NONE);
  bytes.resize(bytes.size() - 700);
  write_file(path, bytes);
  Reader r(path);
  ASSERT_EQ(r.info().frames, 1u);
  std::string msg = input_error([&] { read_all(r, 0); });
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
  EXPECT_NE(msg.find("frame 0 (0-based)"), std::string::npos) << msg;
}

TEST_F(TiffTest, RgbIsRejectedNamingTheFile) {
  Spec s;
  s.width = 4;
  s.height = 4;
  s.bits = 8;
  s.samples = 3;
  write_raw(file("rgb.tif"), s, {std::vector<uint8_t>(48, 100)});
  std::string msg = input_error([&] { Reader r(file("rgb.tif")); });
  EXPECT_NE(msg.find(file("rgb.tif")), std::string::npos) << msg;
  EXPECT_NE(msg.find("3 samples per pixel"), std::string::npos) << msg;
}

TEST_F(TiffTest, SignedAndDoubleSamplesAreRejected) {
  Spec s;
  s.width = 4;
  s.height = 4;
  s.format = SAMPLEFORMAT_INT;
  write_raw(file("int16.tif"), s, {std::vector<uint8_t>(32, 1)});
  std::string msg = input_error([&] { Reader r(file("int16.tif")); });
  EXPECT_NE(msg.find("signed integer"), std::string::npos) << msg;

  s.format = SAMPLEFORMAT_IEEEFP;
  s.bits = 64;
  write_raw(file("f64.tif"), s, {std::vector<uint8_t>(128, 0)});
  msg = input_error([&] { Reader r(file("f64.tif")); });
  EXPECT_NE(msg.find("64-bit float"), std::string::npos) << msg;
  EXPECT_NE(msg.find(file("f64.tif")), std::string::npos) << msg;
}

TEST_F(TiffTest, FrameOfDifferentSizeThrowsNamingTheFrame) {
  const std::string path = file("mixed.tif");
  Spec a;
  a.width = 8;
  a.height = 8;
  Spec b = a;
  b.width = 9;
  auto f0 = pattern16(8, 8, 1);
  write_raw(path, a, {bytes_of(f0), bytes_of(f0), bytes_of(pattern16(9, 8, 1))}, {a, a, b});
  Reader r(path);
  EXPECT_EQ(r.info().frames, 3u);
  expect_equal(f0, read_all(r, 1));
  std::string msg = input_error([&] { read_all(r, 2); });
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
  EXPECT_NE(msg.find("frame 2 (0-based)"), std::string::npos) << msg;
  EXPECT_NE(msg.find("9x8"), std::string::npos) << msg;
  expect_equal(f0, read_all(r, 0));  // still usable after the error
}

TEST_F(TiffTest, ImageJContiguousStackBeyondTheOnlyIfd) {
  const uint32_t w = 12, h = 7;
  std::vector<uint16_t> all;
  std::vector<std::vector<uint16_t>> frames;
  for (uint32_t k = 0; k < 4; ++k) {
    frames.push_back(pattern16(w, h, k + 1));
    all.insert(all.end(), frames.back().begin(), frames.back().end());
  }
  // ImageJ's calibration form: ResolutionUnit NONE, pixels per unit, unit in the description.
  const std::string desc = "ImageJ=1.53t\nimages=4\nslices=4\nunit=micron\nloop=false\n";
  const std::string path = file("imagej.tif");
  auto bytes = imagej_like_tiff(w, h, all, desc, 10, 1, RESUNIT_NONE);
  write_file(path, bytes);
  {
    Reader r(path);
    EXPECT_EQ(r.info().frames, 4u);
    EXPECT_NEAR(r.info().pixel_size_nm, 100, 1e-6);
    for (uint64_t k : {0, 1, 2, 3, 1}) expect_equal(frames[k], read_all(r, k));
  }
  // Cut inside the last frame: the frames before it still read.
  bytes.resize(bytes.size() - 10);
  write_file(path, bytes);
  Reader r(path);
  EXPECT_EQ(r.info().frames, 4u);
  expect_equal(frames[2], read_all(r, 2));
  std::string msg = input_error([&] { read_all(r, 3); });
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
  EXPECT_NE(msg.find("frame 3 (0-based)"), std::string::npos) << msg;
}

// An IFD whose "next" offset points back to itself: libtiff stops there with only a warning, and
// the file used to read as one frame with exit 0.
TEST_F(TiffTest, DirectoryChainThatLoopsBackIsAnError) {
  auto bytes = imagej_like_tiff(8, 6, pattern16(8, 6, 1), "plain\n", 1, 1, RESUNIT_NONE);
  const auto be32 = [&](size_t at) {
    return uint32_t(bytes[at]) << 24 | uint32_t(bytes[at + 1]) << 16 | uint32_t(bytes[at + 2]) << 8 |
           bytes[at + 3];
  };
  const uint32_t ifd = be32(4);
  const size_t next = ifd + 2 + 12 * (size_t(bytes[ifd]) << 8 | bytes[ifd + 1]);
  ASSERT_EQ(be32(next), 0u);  // the last IFD, as written
  for (int k = 0; k < 4; ++k) bytes[next + k] = uint8_t(ifd >> (24 - 8 * k));
  const std::string path = file("loop.tif");
  write_file(path, bytes);
  const std::string msg = input_error([&] { Reader r(path); });
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
  EXPECT_NE(msg.find("loops back"), std::string::npos) << msg;
}

// Found by fuzzing (tests/fuzz/fuzz_tiff): libtiff warns while reading a later frame's directory
// (here an unknown tag type in the second IFD), and its warning handler wrote into the
// constructor's local string, freed by then: heap-use-after-free under ASan (the sanitizer build
// runs this test), silent memory corruption elsewhere.
TEST_F(TiffTest, WarningWhileReadingALaterFrameIsSafe) {
  const std::string path =
      std::string(DSIR_SOURCE_DIR) + "/tests/fuzz/corpus/tiff/warning-after-the-first-directory.tif";
  Reader r(path);
  ASSERT_EQ(r.info().frames, 3u);
  std::vector<float> frame(size_t(r.info().width) * r.info().height);
  for (uint64_t k : {0, 1, 2, 0, 2}) {  // in order, then back (libtiff's seek warns again)
    r.read_frame(k, frame.data());
    EXPECT_EQ(frame[1], float(10 * k + 1)) << "frame " << k;
  }
}

// Found by fuzzing (tests/fuzz/regressions/tiff): a 386-byte tiled TIFF declaring tiles of
// gigabytes; reading its frame allocated one tile (4 GB) before reading a byte. Refused by size.
TEST_F(TiffTest, ATileSizeFarBeyondTheImageIsAnErrorNotAnAllocation) {
  const std::string path =
      std::string(DSIR_SOURCE_DIR) + "/tests/fuzz/regressions/tiff/tile-size-of-gigabytes.tif";
  try {
    Reader r(path);
    std::vector<float> frame(size_t(r.info().width) * r.info().height);
    r.read_frame(0, frame.data());
    ADD_FAILURE() << "read a frame of " << r.info().width << " x " << r.info().height;
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("corrupt"), std::string::npos) << e.what();
  }
}

// Found by fuzzing (tests/fuzz/regressions/tiff): a 564-byte TIFF of 2572 x 1027 float pixels in
// 1 x 3 tiles took 8 s a frame (a read and a seek per pixel). TIFF's tiles are multiples of 16.
TEST_F(TiffTest, TilesSmallerThanTiffAllowsAreAnError) {
  const std::string path =
      std::string(DSIR_SOURCE_DIR) + "/tests/fuzz/regressions/tiff/tiles-of-one-pixel.tif";
  Reader r(path);
  std::vector<float> frame(size_t(r.info().width) * r.info().height);
  try {
    r.read_frame(0, frame.data());
    ADD_FAILURE() << "read a frame of " << r.info().width << " x " << r.info().height;
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("tiles of 1 x 3 pixels"), std::string::npos) << e.what();
  }
  // Tiles of 16 that pad the image (40 x 37 in 16 x 16) read: TiledDeflateTiffReads.
}

// A description's frame count that is not a count, or promises more frames than the file holds,
// is an error at opening ("images=-1" used to become 2^64 - 1 frames and fail much later).
TEST_F(TiffTest, ImageJFrameCountBeyondTheFileIsAnError) {
  const uint32_t w = 12, h = 7;
  std::vector<uint16_t> all;
  for (uint32_t k = 0; k < 4; ++k) {
    const auto f = pattern16(w, h, k + 1);
    all.insert(all.end(), f.begin(), f.end());
  }
  for (const auto& [images, expected] :
       {std::pair<std::string, std::string>{"-1", "not a positive frame count"},
        {"0", "not a positive frame count"},
        {"4x", "not a positive frame count"},
        {"5", "room for 4 frames"},
        {"1099511627776", "room for 4 frames"}}) {
    const std::string path = file("imagej-" + images + ".tif");
    write_file(path,
               imagej_like_tiff(w, h, all, "ImageJ=1.53t\nimages=" + images + "\n", 10, 1, RESUNIT_NONE));
    const std::string msg = input_error([&] { Reader r(path); });
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
    EXPECT_NE(msg.find(expected), std::string::npos) << images << ": " << msg;
  }
}

TEST_F(TiffTest, PixelSizeFromResolutionUnitsAndImageJUnits) {
  struct Case {
    std::string desc;
    uint32_t num, den;
    uint16_t unit;
    double nm;
  };
  const std::vector<Case> cases{
      {"ImageJ=1.53t\nunit=nm\n", 1, 20, RESUNIT_NONE, 20},
      {"ImageJ=1.51w\nunit=\\u00B5m\n", 5, 1, RESUNIT_NONE, 200},
      {"ImageJ=1.53t\nunit=um\n", 100000, 1, RESUNIT_CENTIMETER, 100},  // the Writer's form
      {"something else", 254000, 1, RESUNIT_INCH, 100},
      {"ImageJ=1.53t\nunit=pixel\n", 1, 1, RESUNIT_NONE, 0},
      {"no unit anywhere", 3, 1, RESUNIT_NONE, 0},
  };
  for (const Case& c : cases) {
    const std::string path = file("px.tif");
    write_file(path, imagej_like_tiff(2, 2, {1, 2, 3, 4}, c.desc, c.num, c.den, c.unit));
    Reader r(path);
    EXPECT_NEAR(r.info().pixel_size_nm, c.nm, 1e-6 * c.nm) << c.desc;
  }
}

TEST_F(TiffTest, MissingOrNonTiffFileThrowsNamingTheFile) {
  std::string msg = input_error([&] { Reader r(file("absent.tif")); });
  EXPECT_NE(msg.find(file("absent.tif")), std::string::npos) << msg;
  std::ofstream(file("text.tif")) << "this is not a TIFF file\n";
  msg = input_error([&] { Reader r(file("text.tif")); });
  EXPECT_NE(msg.find(file("text.tif")), std::string::npos) << msg;
}

TEST(TiffRealData, DeepStormDemoStack) {
  const std::string path = DSIR_SHARED_DIR "/data/deepstorm-demo1/ArtificialDataset_demo1.tif";
  DSIR_NEED_SHARED_FILE(path);
  Reader r(path);
  EXPECT_EQ(r.info().frames, 20u);
  EXPECT_EQ(r.info().width, 64u);
  EXPECT_EQ(r.info().height, 64u);
  EXPECT_EQ(r.info().bits_per_sample, 16);
  EXPECT_EQ(r.info().kind, SampleKind::Unsigned);
  EXPECT_NEAR(r.info().pixel_size_nm, 100, 1e-3);  // ImageJ: 10 pixels per µm
  std::vector<float> f(64 * 64);
  for (uint64_t k = 0; k < r.info().frames; ++k) {
    r.read_frame(k, f.data());
    double sum = 0;
    for (float v : f) {
      ASSERT_EQ(v, std::round(v));
      ASSERT_GE(v, 0);
      sum += v;
    }
    const double mean = sum / f.size();
    EXPECT_TRUE(std::isfinite(mean));
    EXPECT_GT(mean, 0) << "frame " << k;
  }
}

TEST(TiffRealData, SmlmChallengeTubulinsFrame) {
  const std::string path = DSIR_SHARED_DIR "/data/smlm2013-tubulins-frame20/tubulins1_00020.tif";
  DSIR_NEED_SHARED_FILE(path);
  Reader r(path);
  EXPECT_EQ(r.info().frames, 1u);
  EXPECT_EQ(r.info().width, 256u);
  EXPECT_EQ(r.info().height, 256u);
  EXPECT_EQ(r.info().bits_per_sample, 16);
  std::vector<float> f(256 * 256);
  r.read_frame(0, f.data());
  double sum = 0;
  float hi = 0;
  for (float v : f) {
    ASSERT_EQ(v, std::round(v));
    sum += v;
    hi = std::max(hi, v);
  }
  EXPECT_GT(sum / f.size(), 0);
  EXPECT_EQ(hi, 1078);  // ImageJ's description records max=1078.0
}
