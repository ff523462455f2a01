// Tests of the ingest stage (stages/ingest/ingest.h): TIFF stacks (+ ground-truth CSV) into
// raw.h5, on the shared real data and on small files written here, including every kind of bad
// input (InputError naming the file, nothing left behind).
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <tiffio.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <tuple>
#include <vector>

#include "pipeline/csv.h"
#include "pipeline/errors.h"
#include "pipeline/h5store.h"
#include "pipeline/inputs.h"
#include "pipeline/tiff.h"
#include "stages/ingest/ingest.h"
#include "tests/shared_data.h"
#include "tests/temp_dir.h"

namespace fs = std::filesystem;
using dsir::archive_requests;
using dsir::expand_inputs;
using dsir::ingest_stack;
using dsir::IngestRequest;
using dsir::IngestSummary;
using dsir::InputError;

namespace {

const fs::path kData = fs::path(DSIR_SHARED_DIR) / "data";

class IngestTest : public dsir::test::TempDirTest {
 protected:
  void SetUp() override {
    TempDirTest::SetUp();
    out_dir_ = dir_ / "out";
  }

  std::string file(const std::string& name) const { return (dir_ / name).string(); }
  std::string output() const { return (out_dir_ / "raw.h5").string(); }

  // A U16 TIFF of `frames` frames whose pixel i of frame k is base + 100 k + i % 97.
  std::string write_u16(const std::string& name, uint32_t w, uint32_t h, int frames, uint16_t base,
                        double px = 100) {
    const std::string path = file(name);
    dsir::tiff::Writer wr(path, w, h, dsir::tiff::WriteFormat::U16, px, static_cast<uint64_t>(frames));
    for (int k = 0; k < frames; ++k) wr.write_frame(u16_frame(w, h, k, base).data());
    wr.commit();
    return path;
  }
  static std::vector<uint16_t> u16_frame(uint32_t w, uint32_t h, int k, uint16_t base) {
    std::vector<uint16_t> v(size_t(w) * h);
    for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<uint16_t>(base + 100 * k + i % 97);
    return v;
  }

  std::string write_text(const std::string& name, const std::string& text) {
    const std::string path = file(name);
    std::ofstream f(path, std::ios::binary);
    f << text;
    return path;
  }

  // Expects InputError whose message contains every one of `parts`, then that neither the
  // output nor any temporary is left in the output folder.
  std::string expect_input_error(const IngestRequest& req, const std::vector<std::string>& parts) {
    std::string msg;
    try {
      ingest_stack(req, {});
      ADD_FAILURE() << "no InputError";
    } catch (const InputError& e) {
      msg = e.what();
      for (const auto& p : parts)
        EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
    } catch (const std::exception& e) {
      ADD_FAILURE() << "not an InputError: " << e.what();
    }
    EXPECT_FALSE(fs::exists(req.output)) << req.output;
    expect_no_leftovers();
    return msg;
  }
  void expect_no_leftovers() const {
    if (!fs::exists(out_dir_)) return;
    for (const auto& entry : fs::directory_iterator(out_dir_))
      ADD_FAILURE() << "left behind: " << entry.path();
  }

  fs::path out_dir_;
};

std::string tif_path(const char* folder, const char* name) { return (kData / folder / name).string(); }

// ---------------------------------------------------------------------------------------------
// Real data

TEST_F(IngestTest, DeepStormDemoStackAndGroundTruth) {
  const std::string tif = tif_path("deepstorm-demo1", "ArtificialDataset_demo1.tif");
  const std::string csv = tif_path("deepstorm-demo1", "positions_demo1.csv");
  DSIR_NEED_SHARED_FILE(tif);
  DSIR_NEED_SHARED_FILE(csv);

  IngestRequest req;
  req.frames = {tif};
  req.locs = csv;
  req.camera_json = R"({"base_level": 100})";
  req.output = output();
  IngestSummary s = ingest_stack(req, {{"dsir_version", "test-1"}});
  EXPECT_EQ(s.frames, 20u);
  EXPECT_EQ(s.width, 64u);
  EXPECT_EQ(s.height, 64u);
  EXPECT_NEAR(s.pixel_size_nm, 100.0, 1e-3);  // from the TIFF's tags
  EXPECT_EQ(s.emitters, 4956u);
  ASSERT_TRUE(fs::exists(req.output));

  dsir::h5::File f = dsir::h5::File::open(req.output);
  ASSERT_TRUE(f.has("/frames"));
  EXPECT_EQ(f.shape("/frames"), (dsir::h5::Dims{20, 64, 64}));
  EXPECT_EQ(f.dtype("/frames"), dsir::h5::DType::u16);
  dsir::tiff::Reader reader(tif);
  std::vector<float> expect(64 * 64);
  for (uint64_t k : {0u, 19u}) {
    reader.read_frame(k, expect.data());
    auto got = f.read_rows<uint16_t>("/frames", k, 1);
    ASSERT_EQ(got.size(), expect.size());
    size_t mismatches = 0;
    for (size_t i = 0; i < got.size(); ++i) mismatches += static_cast<float>(got[i]) != expect[i];
    EXPECT_EQ(mismatches, 0u) << "frame " << k;
  }

  ASSERT_TRUE(f.has("/emitters"));
  dsir::h5::Table t = f.read_table("/emitters");
  ASSERT_EQ(t.rows(), 4956u);
  EXPECT_EQ(t["frame"].values.front(), 0.0);  // 1-based in the CSV, 0-based in HDF5
  EXPECT_EQ(t["frame"].values.back(), 19.0);
  EXPECT_NEAR(t["x_nm"].values.front(), 67.843, 1e-9);
  EXPECT_NEAR(t["y_nm"].values.front(), 2484.15594, 1e-9);
  EXPECT_NEAR(t["sigma_nm"].values.front(), 111.28713, 1e-9);
  EXPECT_NEAR(t["photons"].values.front(), 2458.46515, 1e-9);
  for (double fr : t["frame"].values) {
    EXPECT_GE(fr, 0.0);
    EXPECT_LE(fr, 19.0);
  }
  EXPECT_NEAR(f.attr_double("/", "pixel_size_nm"), 100.0, 1e-3);
  EXPECT_NEAR(f.attr_double("/frames", "pixel_size_nm"), 100.0, 1e-3);
  EXPECT_EQ(f.attr_string("/", "camera"), req.camera_json);
  EXPECT_EQ(f.attr_string("/", "source_files"), tif);
  EXPECT_EQ(f.attr_string("/", "dsir_version"), "test-1");
  EXPECT_EQ(f.attr_string("/emitters", "source_file"), csv);
  EXPECT_EQ(f.attr_double("/emitters", "outside_field_of_view"), static_cast<double>(s.emitters_outside));
}

TEST_F(IngestTest, SmlmChallengeTubulinsFrame) {
  const std::string tif = tif_path("smlm2013-tubulins-frame20", "tubulins1_00020.tif");
  const std::string csv = tif_path("smlm2013-tubulins-frame20", "tubulins1_00020.csv");
  DSIR_NEED_SHARED_FILE(tif);
  DSIR_NEED_SHARED_FILE(csv);

  dsir::tiff::Reader reader(tif);
  ASSERT_EQ(reader.info().frames, 1u);
  const double tag_px = reader.info().pixel_size_nm;
  std::cout << "[ info ] tubulins1_00020.tif: " << reader.info().width << "x" << reader.info().height
            << ", pixel size from tags " << tag_px << " nm\n";

  IngestRequest req;
  req.frames = {tif};
  req.output = output();
  if (tag_px == 0) {
    expect_input_error(req, {tif, "pixel size"});
  }
  req.pixel_size_nm = 150;
  IngestSummary s = ingest_stack(req, {});
  EXPECT_EQ(s.frames, 1u);
  EXPECT_EQ(s.width, 256u);
  EXPECT_EQ(s.height, 256u);
  EXPECT_EQ(s.pixel_size_nm, 150.0);  // the request overrides any tag
  EXPECT_EQ(s.emitters, 0u);
  {
    dsir::h5::File f = dsir::h5::File::open(req.output);
    EXPECT_EQ(f.shape("/frames"), (dsir::h5::Dims{1, 256, 256}));
    EXPECT_FALSE(f.has("/emitters"));
    EXPECT_EQ(f.attr_double("/", "pixel_size_nm"), 150.0);
  }
  fs::remove(req.output);

  // Its CSV names frame 20 (1-based) of the challenge's sequence; this stack has one frame.
  req.locs = csv;
  expect_input_error(req, {csv, "beyond", "frame 20"});
}

// ---------------------------------------------------------------------------------------------
// Several files, glob expansion

TEST_F(IngestTest, GlobInNaturalOrderFormsOneStack) {
  // File fN holds frames with base N * 1000, so values identify file and frame.
  for (int n : {2, 10, 1})
    write_u16("f" + std::to_string(n) + ".tif", 8, 5, 2, static_cast<uint16_t>(n * 1000));
  write_u16("g1.tif", 8, 5, 2, 7);  // not matched by the pattern
  auto files = expand_inputs({(dir_ / "f*.tif").string()});
  ASSERT_EQ(files, (std::vector<std::string>{file("f1.tif"), file("f2.tif"), file("f10.tif")}));

  IngestRequest req;
  req.frames = files;
  req.output = output();
  IngestSummary s = ingest_stack(req, {});
  EXPECT_EQ(s.frames, 6u);
  EXPECT_EQ(s.width, 8u);
  EXPECT_EQ(s.height, 5u);
  dsir::h5::File f = dsir::h5::File::open(req.output);
  EXPECT_EQ(f.shape("/frames"), (dsir::h5::Dims{6, 5, 8}));
  auto all = f.read<uint16_t>("/frames");
  ASSERT_EQ(all.size(), 6u * 40u);
  int index = 0;
  for (int n : {1, 2, 10})
    for (int k = 0; k < 2; ++k, ++index) {
      auto expect = u16_frame(8, 5, k, static_cast<uint16_t>(n * 1000));
      std::vector<uint16_t> got(all.begin() + index * 40, all.begin() + (index + 1) * 40);
      EXPECT_EQ(got, expect) << "frame " << index << " should be f" << n << ".tif frame " << k;
    }
  EXPECT_EQ(f.attr_string("/", "source_files"), files[0] + "\n" + files[1] + "\n" + files[2]);
}

TEST_F(IngestTest, ExpandInputsKeepsPlainPathsAndOrder) {
  write_u16("a10.tif", 4, 4, 1, 0);
  write_u16("a9.tif", 4, 4, 1, 0);
  write_u16("a009b.tif", 4, 4, 1, 0);
  // Plain paths stay as given (even missing ones: the reader reports them), globs expand in place.
  auto got = expand_inputs({"/nonexistent/z.tif", (dir_ / "a*.tif").string(), "plain.tif"});
  ASSERT_EQ(got.size(), 5u);
  EXPECT_EQ(got[0], "/nonexistent/z.tif");
  EXPECT_EQ(got[1], file("a9.tif"));
  EXPECT_EQ(got[2], file("a009b.tif"));
  EXPECT_EQ(got[3], file("a10.tif"));
  EXPECT_EQ(got[4], "plain.tif");
}

TEST_F(IngestTest, GlobMatchingNothingIsInputError) {
  const std::string pattern = (dir_ / "nothing*.tif").string();
  try {
    expand_inputs({pattern});
    ADD_FAILURE() << "no InputError";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find(pattern), std::string::npos) << e.what();
  }
}

// ---------------------------------------------------------------------------------------------
// Sample formats

TEST_F(IngestTest, Float32StackStaysFloat) {
  const uint32_t w = 7, h = 6;
  const std::string path = file("float.tif");
  std::vector<std::vector<float>> frames(3, std::vector<float>(w * h));
  {
    dsir::tiff::Writer wr(path, w, h, dsir::tiff::WriteFormat::F32, 65, 3);
    for (size_t k = 0; k < frames.size(); ++k) {
      for (size_t i = 0; i < frames[k].size(); ++i)
        frames[k][i] = static_cast<float>(-3.7 + 0.1234567 * double(i) + 1000.5 * double(k));
      wr.write_frame(frames[k].data());
    }
    wr.commit();
  }
  IngestRequest req;
  req.frames = {path};
  req.output = output();
  IngestSummary s = ingest_stack(req, {});
  EXPECT_EQ(s.frames, 3u);
  EXPECT_NEAR(s.pixel_size_nm, 65.0, 1e-3);
  dsir::h5::File f = dsir::h5::File::open(req.output);
  EXPECT_EQ(f.dtype("/frames"), dsir::h5::DType::f32);
  for (uint64_t k = 0; k < 3; ++k) EXPECT_EQ(f.read_rows<float>("/frames", k, 1), frames[k]) << "frame " << k;
}

// Writes frames with libtiff directly (layouts the Writer never produces).
void write_libtiff(const std::string& path, uint32_t w, uint32_t h, uint16_t bits, uint16_t samples,
                   int frames, const std::vector<uint8_t>& bytes_per_frame) {
  TIFF* tif = TIFFOpen(path.c_str(), "w");
  ASSERT_NE(tif, nullptr);
  for (int k = 0; k < frames; ++k) {
    TIFFSetField(tif, TIFFTAG_IMAGEWIDTH, w);
    TIFFSetField(tif, TIFFTAG_IMAGELENGTH, h);
    TIFFSetField(tif, TIFFTAG_BITSPERSAMPLE, bits);
    TIFFSetField(tif, TIFFTAG_SAMPLEFORMAT, SAMPLEFORMAT_UINT);
    TIFFSetField(tif, TIFFTAG_SAMPLESPERPIXEL, samples);
    TIFFSetField(tif, TIFFTAG_PHOTOMETRIC, samples == 3 ? PHOTOMETRIC_RGB : PHOTOMETRIC_MINISBLACK);
    TIFFSetField(tif, TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG);
    TIFFSetField(tif, TIFFTAG_ROWSPERSTRIP, h);
    TIFFSetField(tif, TIFFTAG_RESOLUTIONUNIT, RESUNIT_CENTIMETER);
    TIFFSetField(tif, TIFFTAG_XRESOLUTION, 1e5f);  // 100 nm
    TIFFSetField(tif, TIFFTAG_YRESOLUTION, 1e5f);
    std::vector<uint8_t> data = bytes_per_frame;
    ASSERT_GE(TIFFWriteEncodedStrip(tif, 0, data.data(), static_cast<tmsize_t>(data.size())), 0);
    ASSERT_TRUE(TIFFWriteDirectory(tif));
  }
  TIFFClose(tif);
}

TEST_F(IngestTest, Uint8AndUint32Stacks) {
  const uint32_t w = 5, h = 4;
  std::vector<uint8_t> u8(w * h);
  for (size_t i = 0; i < u8.size(); ++i) u8[i] = static_cast<uint8_t>(10 * i + 3);
  write_libtiff(file("u8.tif"), w, h, 8, 1, 2, u8);
  IngestRequest req;
  req.frames = {file("u8.tif")};
  req.output = output();
  ingest_stack(req, {});
  {
    dsir::h5::File f = dsir::h5::File::open(req.output);
    EXPECT_EQ(f.dtype("/frames"), dsir::h5::DType::u16);
    auto got = f.read_rows<uint16_t>("/frames", 1, 1);
    for (size_t i = 0; i < u8.size(); ++i) EXPECT_EQ(got[i], u8[i]);
  }
  // 32-bit unsigned does not fit uint16: stored as float32 (exact below 2^24).
  std::vector<uint32_t> u32(w * h);
  for (size_t i = 0; i < u32.size(); ++i) u32[i] = static_cast<uint32_t>(70000 + 1000 * i);
  std::vector<uint8_t> raw(u32.size() * 4);
  std::memcpy(raw.data(), u32.data(), raw.size());
  write_libtiff(file("u32.tif"), w, h, 32, 1, 1, raw);
  req.frames = {file("u32.tif")};
  req.output = (out_dir_ / "raw32.h5").string();
  ingest_stack(req, {});
  dsir::h5::File f = dsir::h5::File::open(req.output);
  EXPECT_EQ(f.dtype("/frames"), dsir::h5::DType::f32);
  auto got = f.read_rows<float>("/frames", 0, 1);
  for (size_t i = 0; i < u32.size(); ++i) EXPECT_EQ(got[i], static_cast<float>(u32[i]));
}

// ---------------------------------------------------------------------------------------------
// Bad inputs: InputError naming the file, nothing left behind

TEST_F(IngestTest, TruncatedTiff) {
  const std::string path = write_u16("trunc.tif", 32, 32, 5, 0);
  fs::resize_file(path, fs::file_size(path) * 6 / 10);
  IngestRequest req;
  req.frames = {path};
  req.output = output();
  std::cout << "[ info ] " << expect_input_error(req, {path, "frame"}) << "\n";
}

TEST_F(IngestTest, CorruptPixelDataFailsWhileWritingAndLeavesNothing) {
  // Deflate-compressed frames whose second frame's data is garbage: the IFDs are intact, so the
  // reader opens the file and the failure comes while the output is being written.
  const std::string path = file("corrupt.tif");
  const uint32_t w = 16, h = 16;
  {
    TIFF* tif = TIFFOpen(path.c_str(), "w");
    ASSERT_NE(tif, nullptr);
    for (int k = 0; k < 3; ++k) {
      TIFFSetField(tif, TIFFTAG_IMAGEWIDTH, w);
      TIFFSetField(tif, TIFFTAG_IMAGELENGTH, h);
      TIFFSetField(tif, TIFFTAG_BITSPERSAMPLE, 16);
      TIFFSetField(tif, TIFFTAG_SAMPLEFORMAT, SAMPLEFORMAT_UINT);
      TIFFSetField(tif, TIFFTAG_SAMPLESPERPIXEL, 1);
      TIFFSetField(tif, TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_MINISBLACK);
      TIFFSetField(tif, TIFFTAG_COMPRESSION, COMPRESSION_ADOBE_DEFLATE);
      TIFFSetField(tif, TIFFTAG_ROWSPERSTRIP, h);
      TIFFSetField(tif, TIFFTAG_RESOLUTIONUNIT, RESUNIT_CENTIMETER);
      TIFFSetField(tif, TIFFTAG_XRESOLUTION, 1e5f);
      TIFFSetField(tif, TIFFTAG_YRESOLUTION, 1e5f);
      auto data = u16_frame(w, h, k, 0);
      ASSERT_GE(TIFFWriteEncodedStrip(tif, 0, data.data(), static_cast<tmsize_t>(data.size() * 2)), 0);
      ASSERT_TRUE(TIFFWriteDirectory(tif));
    }
    TIFFClose(tif);
  }
  uint64_t offset = 0, bytes = 0;
  {
    TIFF* tif = TIFFOpen(path.c_str(), "r");
    ASSERT_NE(tif, nullptr);
    ASSERT_TRUE(TIFFSetDirectory(tif, 1));
    offset = TIFFGetStrileOffset(tif, 0);
    bytes = TIFFGetStrileByteCount(tif, 0);
    TIFFClose(tif);
  }
  ASSERT_GT(bytes, 4u);
  {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(offset));
    for (uint64_t i = 0; i < bytes; ++i) f.put(static_cast<char>(0xA5 ^ i));
  }
  {
    dsir::tiff::Reader r(path);  // opens: the damage is only in the pixel data
    EXPECT_EQ(r.info().frames, 3u);
  }
  IngestRequest req;
  req.frames = {path};
  req.output = output();
  std::cout << "[ info ] " << expect_input_error(req, {path, "frame 1"}) << "\n";
}

TEST_F(IngestTest, RgbTiff) {
  const uint32_t w = 4, h = 3;
  std::vector<uint8_t> rgb(w * h * 3, 50);
  write_libtiff(file("rgb.tif"), w, h, 8, 3, 1, rgb);
  IngestRequest req;
  req.frames = {file("rgb.tif")};
  req.output = output();
  expect_input_error(req, {file("rgb.tif"), "samples per pixel"});
}

TEST_F(IngestTest, FramesOfDifferentSizesAcrossFiles) {
  const std::string a = write_u16("a.tif", 32, 32, 2, 0), b = write_u16("b.tif", 16, 32, 2, 0);
  IngestRequest req;
  req.frames = {a, b};
  req.output = output();
  expect_input_error(req, {b, "16x32", "32x32"});
}

TEST_F(IngestTest, MissingPixelSize) {
  const std::string a = write_u16("nopx.tif", 8, 8, 1, 0, /*px=*/0);
  IngestRequest req;
  req.frames = {a};
  req.output = output();
  expect_input_error(req, {a, "pixel size"});
  req.pixel_size_nm = 120;
  EXPECT_EQ(ingest_stack(req, {}).pixel_size_nm, 120.0);
}

TEST_F(IngestTest, MissingTiffFile) {
  IngestRequest req;
  req.frames = {file("absent.tif")};
  req.output = output();
  expect_input_error(req, {file("absent.tif")});
}

constexpr const char* kHeader =
    "\"id\",\"frame\",\"x [nm]\",\"y [nm]\",\"sigma [nm]\",\"intensity [photon]\",\"offset [photon]\","
    "\"bkgstd [photon]\"\n";

class IngestCsvTest : public IngestTest {
 protected:
  IngestRequest request(const std::string& csv_text) {
    IngestRequest req;
    req.frames = {write_u16("stack.tif", 20, 10, 2, 0)};  // 2000 x 1000 nm, 2 frames
    req.locs = write_text("locs.csv", csv_text);
    req.output = output();
    return req;
  }
};

TEST_F(IngestCsvTest, MissingYColumn) {
  auto req = request("\"id\",\"frame\",\"x [nm]\",\"sigma [nm]\"\n1,1,100,120\n");
  expect_input_error(req, {req.locs, "y [nm]"});
}

TEST_F(IngestCsvTest, UnparsableNumber) {
  auto req = request(std::string(kHeader) + "1,1,100,200,120,1000,20,4\n2,2,1x5,200,120,1000,20,4\n");
  expect_input_error(req, {req.locs + ":3", "x [nm]", "1x5"});
}

TEST_F(IngestCsvTest, NotANumber) {
  auto req = request(std::string(kHeader) + "1,1,100,200,120,1000,20,4\n2,1,300,NaN,120,1000,20,4\n");
  expect_input_error(req, {req.locs + ":3", "y [nm]", "NaN"});
}

TEST_F(IngestCsvTest, FrameBeyondStack) {
  auto req = request(std::string(kHeader) + "1,1,100,200,120,1000,20,4\n2,3,300,400,120,1000,20,4\n");
  expect_input_error(req, {req.locs, "frame 3", "beyond"});
}

TEST_F(IngestCsvTest, FrameZeroIsNotOneBased) {
  auto req = request(std::string(kHeader) + "1,0,100,200,120,1000,20,4\n");
  expect_input_error(req, {req.locs + ":2", "frame"});
}

TEST_F(IngestCsvTest, PositionsOutsideFieldAreKeptAndCounted) {
  auto req = request(std::string(kHeader) +
                     "1,1,-50,200,120,1000,20,4\n2,2,300,400,120,1000,20,4\n"
                     "3,2,1999.5,999.5,120,1000,20,4\n");
  IngestSummary s = ingest_stack(req, {});
  EXPECT_EQ(s.emitters, 3u);
  EXPECT_EQ(s.emitters_outside, 1u);
  dsir::h5::File f = dsir::h5::File::open(req.output);
  EXPECT_EQ(f.attr_double("/emitters", "outside_field_of_view"), 1.0);
  dsir::h5::Table t = f.read_table("/emitters");
  ASSERT_EQ(t.rows(), 3u);
  EXPECT_EQ(t["x_nm"].values[0], -50.0);  // kept as given
  EXPECT_EQ(t["frame"].values, (std::vector<double>{0, 1, 1}));
}

TEST_F(IngestCsvTest, EdgeOfFieldCountsAsOutside) {
  // The field is [0, 2000) x [0, 1000) nm: x = 2000 is past the last pixel.
  auto req = request(std::string(kHeader) + "1,1,2000,200,120,1000,20,4\n2,1,0,0,120,1000,20,4\n");
  IngestSummary s = ingest_stack(req, {});
  EXPECT_EQ(s.emitters_outside, 1u);
}

// ---------------------------------------------------------------------------------------------
// Layouts and formats end to end, many files, archive mode

struct Layout {
  const char* mode;  // "w": classic TIFF, "w8": BigTIFF
  uint16_t compression;
  uint16_t predictor;
  uint32_t tile;  // 0: strips of 3 rows
  uint16_t bits;
};

// Frames of `w` x `h` whose pixel i of frame k is (base + 7 k + 3 i) mod 2^bits, written with
// libtiff in the given layout.
std::vector<std::vector<uint16_t>> write_layout(const std::string& path, const Layout& l, uint32_t w,
                                                uint32_t h, int frames, uint16_t base) {
  std::vector<std::vector<uint16_t>> values;
  TIFF* tif = TIFFOpen(path.c_str(), l.mode);
  EXPECT_NE(tif, nullptr);
  if (tif == nullptr) return values;
  const size_t sample_bytes = l.bits / 8;
  for (int k = 0; k < frames; ++k) {
    std::vector<uint16_t> v(size_t(w) * h);
    std::vector<uint8_t> bytes(v.size() * sample_bytes);
    for (size_t i = 0; i < v.size(); ++i) {
      v[i] = static_cast<uint16_t>((base + 7 * k + 3 * i) % (l.bits == 8 ? 256 : 65536));
      if (l.bits == 8)
        bytes[i] = static_cast<uint8_t>(v[i]);
      else
        std::memcpy(&bytes[2 * i], &v[i], 2);
    }
    values.push_back(v);
    TIFFSetField(tif, TIFFTAG_IMAGEWIDTH, w);
    TIFFSetField(tif, TIFFTAG_IMAGELENGTH, h);
    TIFFSetField(tif, TIFFTAG_BITSPERSAMPLE, l.bits);
    TIFFSetField(tif, TIFFTAG_SAMPLEFORMAT, SAMPLEFORMAT_UINT);
    TIFFSetField(tif, TIFFTAG_SAMPLESPERPIXEL, 1);
    TIFFSetField(tif, TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_MINISBLACK);
    TIFFSetField(tif, TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG);
    TIFFSetField(tif, TIFFTAG_COMPRESSION, l.compression);
    if (l.predictor != PREDICTOR_NONE) TIFFSetField(tif, TIFFTAG_PREDICTOR, l.predictor);
    TIFFSetField(tif, TIFFTAG_RESOLUTIONUNIT, RESUNIT_CENTIMETER);
    TIFFSetField(tif, TIFFTAG_XRESOLUTION, 1e5f);  // 100 nm
    TIFFSetField(tif, TIFFTAG_YRESOLUTION, 1e5f);
    if (l.tile > 0) {
      TIFFSetField(tif, TIFFTAG_TILEWIDTH, l.tile);
      TIFFSetField(tif, TIFFTAG_TILELENGTH, l.tile);
      std::vector<uint8_t> tile(size_t(l.tile) * l.tile * sample_bytes);
      for (uint32_t y = 0; y < h; y += l.tile)
        for (uint32_t x = 0; x < w; x += l.tile) {
          std::fill(tile.begin(), tile.end(), 0);
          for (uint32_t r = 0; r < l.tile && y + r < h; ++r)
            for (uint32_t c = 0; c < l.tile && x + c < w; ++c)
              std::memcpy(&tile[(r * l.tile + c) * sample_bytes],
                          &bytes[((y + r) * w + x + c) * sample_bytes], sample_bytes);
          EXPECT_GE(
              TIFFWriteEncodedTile(tif, TIFFComputeTile(tif, x, y, 0, 0), tile.data(), tmsize_t(tile.size())),
              0);
        }
    } else {
      TIFFSetField(tif, TIFFTAG_ROWSPERSTRIP, 3);
      const size_t row_bytes = size_t(w) * sample_bytes;
      for (uint32_t row = 0, strip = 0; row < h; row += 3, ++strip)
        EXPECT_GE(TIFFWriteEncodedStrip(tif, strip, bytes.data() + row * row_bytes,
                                        tmsize_t(std::min<uint32_t>(3, h - row) * row_bytes)),
                  0);
    }
    EXPECT_TRUE(TIFFWriteDirectory(tif));
  }
  TIFFClose(tif);
  return values;
}

TEST_F(IngestTest, BigTiffTilesLzwDeflateAnd8BitFilesFormOneStack) {
  const uint32_t w = 21, h = 17;  // partial edge tiles and a short last strip
  const std::vector<std::pair<std::string, Layout>> files = {
      {"s1_bigtiff_tiled_deflate.tif", {"w8", COMPRESSION_ADOBE_DEFLATE, PREDICTOR_HORIZONTAL, 16, 16}},
      {"s2_lzw_strips.tif", {"w", COMPRESSION_LZW, PREDICTOR_HORIZONTAL, 0, 16}},
      {"s3_uncompressed_8bit.tif", {"w", COMPRESSION_NONE, PREDICTOR_NONE, 0, 8}},
      {"s10_bigtiff_lzw_tiles.tif", {"w8", COMPRESSION_LZW, PREDICTOR_NONE, 16, 16}},
  };
  std::vector<std::vector<uint16_t>> expect;
  for (size_t n = 0; n < files.size(); ++n) {
    auto v = write_layout(file(files[n].first), files[n].second, w, h, 2 + static_cast<int>(n),
                          static_cast<uint16_t>(1000 * n + 11));
    expect.insert(expect.end(), v.begin(), v.end());
  }
  {
    TIFF* t = TIFFOpen(file(files[0].first).c_str(), "r");
    ASSERT_NE(t, nullptr);
    EXPECT_TRUE(TIFFIsBigTIFF(t));
    EXPECT_TRUE(TIFFIsTiled(t));
    TIFFClose(t);
  }
  IngestRequest req;
  req.frames = expand_inputs({(dir_ / "s*.tif").string()});  // natural order: s1, s2, s3, s10
  ASSERT_EQ(req.frames.size(), 4u);
  EXPECT_EQ(req.frames.back(), file(files[3].first));
  req.output = output();
  IngestSummary s = ingest_stack(req, {});
  EXPECT_EQ(s.frames, 2u + 3u + 4u + 5u);
  EXPECT_NEAR(s.pixel_size_nm, 100.0, 1e-3);
  dsir::h5::File f = dsir::h5::File::open(req.output);
  EXPECT_EQ(f.dtype("/frames"), dsir::h5::DType::u16);  // 8- and 16-bit sources fit uint16
  ASSERT_EQ(f.shape("/frames"), (dsir::h5::Dims{14, h, w}));
  for (uint64_t k = 0; k < expect.size(); ++k)
    EXPECT_EQ(f.read_rows<uint16_t>("/frames", k, 1), expect[k]) << "frame " << k;
}

TEST_F(IngestTest, FrameOfDifferentSizeInsideOneFile) {
  const std::string path = file("mixed.tif");
  write_layout(path, {"w", COMPRESSION_NONE, PREDICTOR_NONE, 0, 16}, 12, 10, 1, 0);
  {
    // Append a second directory of another size.
    TIFF* tif = TIFFOpen(path.c_str(), "a");
    ASSERT_NE(tif, nullptr);
    std::vector<uint16_t> v(8 * 10, 5);
    TIFFSetField(tif, TIFFTAG_IMAGEWIDTH, 8u);
    TIFFSetField(tif, TIFFTAG_IMAGELENGTH, 10u);
    TIFFSetField(tif, TIFFTAG_BITSPERSAMPLE, 16);
    TIFFSetField(tif, TIFFTAG_SAMPLESPERPIXEL, 1);
    TIFFSetField(tif, TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_MINISBLACK);
    TIFFSetField(tif, TIFFTAG_ROWSPERSTRIP, 10u);
    ASSERT_GE(TIFFWriteEncodedStrip(tif, 0, v.data(), tmsize_t(v.size() * 2)), 0);
    ASSERT_TRUE(TIFFWriteDirectory(tif));
    TIFFClose(tif);
  }
  IngestRequest req;
  req.frames = {path};
  req.output = output();
  std::cout << "[ info ] " << expect_input_error(req, {path, "frame 1", "8x10", "12x10"}) << "\n";
}

TEST_F(IngestTest, SignedAndDoubleSamplesAreRejected) {
  for (auto [bits, format, name] :
       {std::tuple<uint16_t, uint16_t, const char*>{16, SAMPLEFORMAT_INT, "signed integer"},
        {64, SAMPLEFORMAT_IEEEFP, "64-bit float"}}) {
    const std::string path = file(std::string("bad") + std::to_string(bits) + ".tif");
    TIFF* tif = TIFFOpen(path.c_str(), "w");
    ASSERT_NE(tif, nullptr);
    std::vector<uint8_t> bytes(4 * 4 * bits / 8, 0);
    TIFFSetField(tif, TIFFTAG_IMAGEWIDTH, 4u);
    TIFFSetField(tif, TIFFTAG_IMAGELENGTH, 4u);
    TIFFSetField(tif, TIFFTAG_BITSPERSAMPLE, bits);
    TIFFSetField(tif, TIFFTAG_SAMPLEFORMAT, format);
    TIFFSetField(tif, TIFFTAG_SAMPLESPERPIXEL, 1);
    TIFFSetField(tif, TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_MINISBLACK);
    TIFFSetField(tif, TIFFTAG_ROWSPERSTRIP, 4u);
    ASSERT_GE(TIFFWriteEncodedStrip(tif, 0, bytes.data(), tmsize_t(bytes.size())), 0);
    ASSERT_TRUE(TIFFWriteDirectory(tif));
    TIFFClose(tif);
    IngestRequest req;
    req.frames = {path};
    req.pixel_size_nm = 100;
    req.output = output();
    expect_input_error(req, {path, name, "not supported"});
  }
}

TEST_F(IngestTest, MoreFilesThanMayBeOpenAtOnce) {
  // One file per frame (the SMLM challenge's layout); the stack must not hold them all open.
  const int n = 120;
  for (int k = 1; k <= n; ++k)
    write_u16("frame_" + std::to_string(k) + ".tif", 6, 5, 1, static_cast<uint16_t>(k));
  rlimit old{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &old), 0);
  rlimit low = old;
  low.rlim_cur = 64;
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);
  IngestRequest req;
  req.frames = expand_inputs({(dir_ / "frame_*.tif").string()});
  req.output = output();
  IngestSummary s;
  std::string error;
  try {
    s = ingest_stack(req, {});
  } catch (const std::exception& e) {
    error = e.what();
  }
  setrlimit(RLIMIT_NOFILE, &old);
  ASSERT_EQ(error, "");
  EXPECT_EQ(s.frames, static_cast<uint64_t>(n));
  dsir::h5::File f = dsir::h5::File::open(req.output);
  for (int k : {1, 2, 10, 99, 120})  // frame_2 after frame_1, frame_10 after frame_9
    EXPECT_EQ(f.read_rows<uint16_t>("/frames", static_cast<uint64_t>(k - 1), 1),
              u16_frame(6, 5, 0, static_cast<uint16_t>(k)))
        << "frame_" << k << ".tif";
}

TEST_F(IngestTest, ArchiveWritesOneFilePerInput) {
  write_u16("a1.tif", 8, 6, 3, 100);
  write_u16("a2.tif", 8, 6, 1, 200);
  write_u16("a10.tif", 5, 4, 2, 300, /*px=*/160);  // an archive's files need not agree
  auto files = expand_inputs({(dir_ / "a*.tif").string()});
  auto jobs = archive_requests(files, out_dir_.string(), 0, R"({"base_level": 100})");
  ASSERT_EQ(jobs.size(), 3u);
  EXPECT_EQ(jobs[0].output, (out_dir_ / "a1.h5").string());
  EXPECT_EQ(jobs[1].output, (out_dir_ / "a2.h5").string());
  EXPECT_EQ(jobs[2].output, (out_dir_ / "a10.h5").string());
  // Three "ranks" take files r, r + 3, ...: here one each, in any order.
  for (int rank : {2, 0, 1}) {
    IngestSummary s = ingest_stack(jobs[static_cast<size_t>(rank)], {});
    EXPECT_EQ(s.frames, rank == 0 ? 3u : rank == 1 ? 1u : 2u);
  }
  dsir::h5::File a10 = dsir::h5::File::open((out_dir_ / "a10.h5").string());
  EXPECT_EQ(a10.shape("/frames"), (dsir::h5::Dims{2, 4, 5}));
  EXPECT_NEAR(a10.attr_double("/", "pixel_size_nm"), 160.0, 1e-3);
  EXPECT_EQ(a10.attr_string("/", "source_files"), file("a10.tif"));
  EXPECT_EQ(a10.attr_string("/", "camera"), R"({"base_level": 100})");
  EXPECT_EQ(a10.read_rows<uint16_t>("/frames", 1, 1), u16_frame(5, 4, 1, 300));
  dsir::h5::File a1 = dsir::h5::File::open((out_dir_ / "a1.h5").string());
  EXPECT_EQ(a1.read_rows<uint16_t>("/frames", 2, 1), u16_frame(8, 6, 2, 100));

  // Two inputs with one stem would overwrite each other's output.
  fs::create_directories(dir_ / "sub");
  write_u16("sub/a1.tif", 4, 4, 1, 0);
  try {
    archive_requests({file("a1.tif"), file("sub/a1.tif")}, out_dir_.string(), 0, "");
    ADD_FAILURE() << "no ConfigError";
  } catch (const dsir::ConfigError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(file("sub/a1.tif")), std::string::npos) << msg;
    EXPECT_NE(msg.find("a1.h5"), std::string::npos) << msg;
  }
}

TEST_F(IngestTest, SmlmChallengeCsvIngestsWithItsEmitters) {
  const std::string csv = tif_path("smlm2013-tubulins-frame20", "tubulins1_00020.csv");
  DSIR_NEED_SHARED_FILE(csv);
  // A 20-frame, 256 x 256 stack of 150 nm pixels (the challenge's field) holds frame 20.
  IngestRequest req;
  req.frames = {write_u16("stack20.tif", 256, 256, 20, 0, 150)};
  req.locs = csv;
  req.output = output();
  IngestSummary s = ingest_stack(req, {});
  EXPECT_EQ(s.emitters, 49u);
  EXPECT_EQ(s.emitters_outside, 0u);
  dsir::h5::File f = dsir::h5::File::open(req.output);
  dsir::h5::Table t = f.read_table("/emitters");
  ASSERT_EQ(t.rows(), 49u);
  for (double fr : t["frame"].values) EXPECT_EQ(fr, 19.0);
  EXPECT_NEAR(t["x_nm"].values[0], 25713.33, 1e-9);
  EXPECT_NEAR(t["y_nm"].values[0], 26788.90, 1e-9);
  EXPECT_NEAR(t["photons"].values[0], 1655.48, 1e-9);
  EXPECT_TRUE(std::isnan(t["sigma_nm"].values[0]));  // the challenge gives no sigma
}

TEST_F(IngestCsvTest, DsirCsvFormat) {
  auto req = request("frame,x,y\n1,150.5,250.25\n2,1999,0\n2,10,20\n");
  IngestSummary s = ingest_stack(req, {});
  EXPECT_EQ(s.emitters, 3u);
  EXPECT_EQ(s.emitters_outside, 0u);
  dsir::h5::File f = dsir::h5::File::open(req.output);
  dsir::h5::Table t = f.read_table("/emitters");
  EXPECT_EQ(t["frame"].values, (std::vector<double>{0, 1, 1}));
  EXPECT_EQ(t["x_nm"].values, (std::vector<double>{150.5, 1999, 10}));
  EXPECT_EQ(t["y_nm"].values, (std::vector<double>{250.25, 0, 20}));
}

TEST_F(IngestCsvTest, MissingColumnInDsirFormat) {
  auto req = request("x,y\n1,2\n");
  expect_input_error(req, {req.locs + ":1", "frame"});
}

}  // namespace
