// Tests of pipeline/h5store.h: typed datasets, slabs, compound tables, attributes, atomic
// creation (temporary name + rename on commit) and error messages.
#include <gtest/gtest.h>
#include <hdf5.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "pipeline/errors.h"
#include "pipeline/h5store.h"
#include "tests/corrupt_file.h"
#include "tests/temp_dir.h"
#include "tests/text_checks.h"

namespace fs = std::filesystem;
using dsir::InputError;
using dsir::h5::Attributes;
using dsir::h5::Column;
using dsir::h5::Dims;
using dsir::h5::DType;
using dsir::h5::File;
using dsir::h5::Table;

namespace {

class H5StoreTest : public dsir::test::TempDirTest {
 protected:
  std::string path(const std::string& name = "store.h5") const { return (dir_ / name).string(); }

  std::vector<std::string> entries() const {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(dir_)) out.push_back(e.path().filename().string());
    return out;
  }
};

// Runs `f`, expects an InputError and returns its message.
std::string input_error(const std::function<void()>& f) {
  try {
    f();
  } catch (const InputError& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "expected dsir::InputError, got another exception: " << e.what();
    return "";
  }
  ADD_FAILURE() << "expected dsir::InputError, nothing was thrown";
  return "";
}

using dsir::test::contains;

// ---------------------------------------------------------------------------------------------
// Whole datasets

TEST_F(H5StoreTest, FloatDatasetRoundTripsWithShape) {
  const std::vector<float> data = {0.5f, -1.25f, 3.0f, 1e-7f, 1e7f, -0.0f};
  {
    File f = File::create(path(), {});
    f.write("/img", data, {2, 3});
    EXPECT_EQ(f.shape("/img"), (Dims{2, 3}));
    EXPECT_EQ(f.read<float>("/img"), data);  // readable before commit too
    f.commit();
  }
  File f = File::open(path());
  EXPECT_EQ(f.shape("/img"), (Dims{2, 3}));
  EXPECT_EQ(f.dtype("/img"), DType::f32);
  EXPECT_EQ(f.read<float>("/img"), data);
}

TEST_F(H5StoreTest, DoubleDatasetRoundTripsWithShape) {
  const std::vector<double> data = {3.141592653589793, -2.718281828459045, 1e-300, 1e300, 0.1, 42};
  {
    File f = File::create(path(), {});
    f.write("/d", data, {6});
    f.commit();
  }
  File f = File::open(path());
  EXPECT_EQ(f.shape("/d"), (Dims{6}));
  EXPECT_EQ(f.dtype("/d"), DType::f64);
  EXPECT_EQ(f.read<double>("/d"), data);
}

TEST_F(H5StoreTest, Uint16DatasetRoundTripsWithThreeDimensions) {
  std::vector<uint16_t> data(2 * 3 * 4);
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint16_t>(i * 2731u);  // up to 62813
  {
    File f = File::create(path(), {});
    f.write("/movie", data, {2, 3, 4});
    f.commit();
  }
  File f = File::open(path());
  EXPECT_EQ(f.shape("/movie"), (Dims{2, 3, 4}));
  EXPECT_EQ(f.dtype("/movie"), DType::u16);
  EXPECT_EQ(f.read<uint16_t>("/movie"), data);
}

TEST_F(H5StoreTest, Int64DatasetRoundTripsLargeAndNegativeValues) {
  const std::vector<int64_t> data = {0, -1, INT64_C(1) << 40, INT64_MAX, INT64_MIN, 12345678901234};
  {
    File f = File::create(path(), {});
    f.write("/ids", data, {3, 2});
    f.commit();
  }
  File f = File::open(path());
  EXPECT_EQ(f.shape("/ids"), (Dims{3, 2}));
  EXPECT_EQ(f.dtype("/ids"), DType::i64);
  EXPECT_EQ(f.read<int64_t>("/ids"), data);
}

TEST_F(H5StoreTest, ReadConvertsFromTheStoredType) {
  const std::vector<uint16_t> data = {1, 2, 65535};
  File f = File::create(path(), {});
  f.write("/u", data, {3});
  EXPECT_EQ(f.read<double>("/u"), (std::vector<double>{1, 2, 65535}));
  EXPECT_EQ(f.read<float>("/u"), (std::vector<float>{1, 2, 65535}));
  EXPECT_EQ(f.read<int64_t>("/u"), (std::vector<int64_t>{1, 2, 65535}));
}

TEST_F(H5StoreTest, ChunkedDeflateDatasetRoundTrips) {
  const uint64_t rows = 100, cols = 64;
  std::vector<float> data(rows * cols);
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<float>(std::sin(0.01 * i) * 1000);
  {
    File f = File::create(path(), {});
    f.write("/frames/chunked", data, {rows, cols}, {10, cols}, 4);
    f.commit();
  }
  File f = File::open(path());
  EXPECT_EQ(f.shape("/frames/chunked"), (Dims{rows, cols}));
  EXPECT_EQ(f.read<float>("/frames/chunked"), data);
}

TEST_F(H5StoreTest, DeflateCompressesRedundantData) {
  std::vector<uint16_t> zeros(512 * 512, 7);
  {
    File f = File::create(path(), {});
    f.write("/z", zeros, {512, 512}, {64, 512}, 6);
    f.commit();
  }
  EXPECT_LT(fs::file_size(path()), zeros.size() * sizeof(uint16_t) / 10);
  EXPECT_EQ(File::open(path()).read<uint16_t>("/z"), zeros);
}

TEST_F(H5StoreTest, EmptyDatasetRoundTrips) {
  File f = File::create(path(), {});
  f.write("/empty", std::vector<float>{}, {0, 4}, {16, 4}, 4);
  EXPECT_EQ(f.shape("/empty"), (Dims{0, 4}));
  EXPECT_TRUE(f.read<float>("/empty").empty());
}

TEST_F(H5StoreTest, ScalarDatasetRoundTrips) {
  File f = File::create(path(), {});
  f.write("/scalar", std::vector<double>{42.5}, {});
  EXPECT_EQ(f.shape("/scalar"), Dims{});
  EXPECT_EQ(f.read<double>("/scalar"), std::vector<double>{42.5});
}

TEST_F(H5StoreTest, EmptyDoubleVectorAttributeRoundTrips) {
  // An empty list is a valid attribute value (h5py writes them too).
  File f = File::create(path(), {});
  f.set_attr("/", "none", std::vector<double>{});
  EXPECT_TRUE(f.has_attr("/", "none"));
  EXPECT_TRUE(f.attr_doubles("/", "none").empty());
}

TEST_F(H5StoreTest, WriteWithMismatchedSizeNamesTheDataset) {
  File f = File::create(path(), {});
  const std::string msg = input_error([&] { f.write("/bad", std::vector<float>(5), {2, 3}); });
  EXPECT_TRUE(contains(msg, "/bad")) << msg;
  EXPECT_TRUE(contains(msg, "does not match")) << msg;
  EXPECT_FALSE(f.has("/bad"));
}

TEST_F(H5StoreTest, WritingAnExistingDatasetFailsNamingIt) {
  File f = File::create(path(), {});
  f.write("/x", std::vector<float>{1}, {1});
  const std::string msg = input_error([&] { f.write("/x", std::vector<float>{2}, {1}); });
  EXPECT_TRUE(contains(msg, "/x")) << msg;
  EXPECT_EQ(f.read<float>("/x"), std::vector<float>{1});
}

// ---------------------------------------------------------------------------------------------
// Streaming slabs

TEST_F(H5StoreTest, CreateDatasetThenWriteAndReadRowSlabs) {
  const uint64_t n = 10, h = 4, w = 5;
  auto value = [&](uint64_t i) { return static_cast<uint16_t>(i * 7 + 1); };
  {
    File f = File::create(path(), {});
    f.create_dataset("/movie", DType::u16, {n, h, w}, {1, h, w}, 1);
    EXPECT_EQ(f.shape("/movie"), (Dims{n, h, w}));
    EXPECT_EQ(f.dtype("/movie"), DType::u16);
    // Two slabs, rows [0, 3) and [3, 10).
    for (auto [first, count] : {std::pair<uint64_t, uint64_t>{0, 3}, {3, 7}}) {
      std::vector<uint16_t> slab(count * h * w);
      for (size_t i = 0; i < slab.size(); ++i) slab[i] = value(first * h * w + i);
      f.write_rows("/movie", first, count, slab.data());
    }
    f.commit();
  }
  File f = File::open(path());
  const auto middle = f.read_rows<uint16_t>("/movie", 2, 5);
  ASSERT_EQ(middle.size(), 5 * h * w);
  for (size_t i = 0; i < middle.size(); ++i) EXPECT_EQ(middle[i], value(2 * h * w + i)) << i;
  const auto all = f.read<uint16_t>("/movie");
  ASSERT_EQ(all.size(), n * h * w);
  for (size_t i = 0; i < all.size(); ++i) EXPECT_EQ(all[i], value(i)) << i;
  // Reading a slab as another type converts.
  const auto last = f.read_rows<float>("/movie", 9, 1);
  ASSERT_EQ(last.size(), h * w);
  EXPECT_EQ(last[0], static_cast<float>(value(9 * h * w)));
  EXPECT_TRUE(f.read_rows<uint16_t>("/movie", 10, 0).empty());
}

TEST_F(H5StoreTest, RowSlabOutOfBoundsNamesTheDataset) {
  File f = File::create(path(), {});
  f.create_dataset("/rows", DType::f32, {4, 2}, {}, 0);
  std::vector<float> two_rows(4, 1.f);
  f.write_rows("/rows", 2, 2, two_rows.data());
  std::string msg = input_error([&] { f.write_rows("/rows", 3, 2, two_rows.data()); });
  EXPECT_TRUE(contains(msg, "/rows")) << msg;
  EXPECT_TRUE(contains(msg, "out of bounds")) << msg;
  msg = input_error([&] { f.read_rows<float>("/rows", 0, 5); });
  EXPECT_TRUE(contains(msg, "/rows")) << msg;
  EXPECT_TRUE(contains(msg, "out of bounds")) << msg;
}

TEST_F(H5StoreTest, UnwrittenRowsReadAsZero) {
  File f = File::create(path(), {});
  f.create_dataset("/sparse", DType::f64, {3, 2}, {1, 2}, 0);
  const std::vector<double> row = {5, 6};
  f.write_rows("/sparse", 1, 1, row.data());
  EXPECT_EQ(f.read<double>("/sparse"), (std::vector<double>{0, 0, 5, 6, 0, 0}));
}

// ---------------------------------------------------------------------------------------------
// Tables

Table mixed_table() {
  Table t;
  t.columns.push_back({"frame", DType::i64, {0, 5, 1e12, -3}});
  t.columns.push_back({"x", DType::f32, {1.5, -2.25, 3.125, 1e6}});
  t.columns.push_back({"y", DType::f64, {0.1, 1.0 / 3.0, -1e-300, 12345.6789}});
  t.columns.push_back({"id", DType::u32, {0, 7, 4000000000.0, 1}});
  return t;
}

TEST_F(H5StoreTest, TableWithMixedColumnTypesRoundTrips) {
  const Table in = mixed_table();
  {
    File f = File::create(path(), {});
    f.write_table("/emitters", in);
    f.commit();
  }
  File f = File::open(path());
  EXPECT_EQ(f.shape("/emitters"), (Dims{4}));
  const Table out = f.read_table("/emitters");
  ASSERT_EQ(out.columns.size(), in.columns.size());
  EXPECT_EQ(out.rows(), 4u);
  for (size_t i = 0; i < in.columns.size(); ++i) {
    EXPECT_EQ(out.columns[i].name, in.columns[i].name);
    EXPECT_EQ(out.columns[i].type, in.columns[i].type) << in.columns[i].name;
    EXPECT_EQ(out.columns[i].values, in.columns[i].values) << in.columns[i].name;
  }
  EXPECT_EQ(out["x"].values[1], -2.25);
  EXPECT_EQ(out["id"].values[2], 4000000000.0);
}

TEST_F(H5StoreTest, TableStoredAsFloatRoundsToFloatPrecision) {
  Table in;
  in.columns.push_back({"v", DType::f32, {0.1}});
  File f = File::create(path(), {});
  f.write_table("/t", in, 0);
  EXPECT_EQ(f.read_table("/t")["v"].values[0], static_cast<double>(0.1f));
}

TEST_F(H5StoreTest, TableKeepsNaN) {
  Table in;
  in.columns.push_back({"c", DType::f64, {std::nan(""), 1}});
  File f = File::create(path(), {});
  f.write_table("/t", in);
  const Table out = f.read_table("/t");
  EXPECT_TRUE(std::isnan(out["c"].values[0]));
  EXPECT_EQ(out["c"].values[1], 1);
}

TEST_F(H5StoreTest, EmptyTableRoundTrips) {
  Table in;
  in.columns.push_back({"frame", DType::i64, {}});
  in.columns.push_back({"x", DType::f64, {}});
  File f = File::create(path(), {});
  f.write_table("/empty", in);
  const Table out = f.read_table("/empty");
  ASSERT_EQ(out.columns.size(), 2u);
  EXPECT_EQ(out.rows(), 0u);
  EXPECT_EQ(out.columns[0].name, "frame");
  EXPECT_EQ(out.columns[1].name, "x");
}

TEST_F(H5StoreTest, TableWithColumnsOfDifferentLengthNamesTheColumn) {
  Table in;
  in.columns.push_back({"a", DType::f64, {1, 2}});
  in.columns.push_back({"b", DType::f64, {1}});
  File f = File::create(path(), {});
  const std::string msg = input_error([&] { f.write_table("/t", in); });
  EXPECT_TRUE(contains(msg, "'b'")) << msg;
  EXPECT_TRUE(contains(msg, "/t")) << msg;
}

TEST_F(H5StoreTest, ReadTableErrors) {
  File f = File::create(path(), {});
  f.write("/plain", std::vector<float>{1, 2}, {2});
  std::string msg = input_error([&] { f.read_table("/missing"); });
  EXPECT_TRUE(contains(msg, "/missing")) << msg;
  msg = input_error([&] { f.read_table("/plain"); });
  EXPECT_TRUE(contains(msg, "/plain")) << msg;
  EXPECT_TRUE(contains(msg, "not a compound table")) << msg;
}

// A dataspace that declares a trillion rows over no stored data (as a corrupted byte can) is an
// error naming the table, not an attempt to allocate 8 TB.
TEST_F(H5StoreTest, ATableDeclaringFarMoreRowsThanItStoresIsCorrupt) {
  {
    const hid_t file = H5Fcreate(path().c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    const hid_t type = H5Tcreate(H5T_COMPOUND, sizeof(double));
    H5Tinsert(type, "x", 0, H5T_NATIVE_DOUBLE);
    const hsize_t rows = 1000000000000ULL, chunk = 1024;
    const hid_t space = H5Screate_simple(1, &rows, nullptr);
    const hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, 1, &chunk);
    const hid_t ds = H5Dcreate2(file, "/huge", type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    ASSERT_GE(ds, 0);
    H5Dclose(ds);
    H5Pclose(dcpl);
    H5Sclose(space);
    H5Tclose(type);
    H5Fclose(file);
  }
  const File f = File::open(path());
  const std::string msg = input_error([&] { f.read_table("/huge"); });
  EXPECT_TRUE(contains(msg, "/huge")) << msg;
  EXPECT_TRUE(contains(msg, "corrupt table: declares 1000000000000 rows")) << msg;
}

TEST(H5Table, MissingColumnLookupNamesTheColumn) {
  const Table t = mixed_table();
  EXPECT_EQ(t.find("nope"), nullptr);
  ASSERT_NE(t.find("y"), nullptr);
  EXPECT_EQ(t.find("y")->type, DType::f64);
  const std::string msg = input_error([&] { (void)t["nope"]; });
  EXPECT_TRUE(contains(msg, "'nope'")) << msg;
  EXPECT_EQ(Table{}.rows(), 0u);
}

// ---------------------------------------------------------------------------------------------
// Attributes

TEST_F(H5StoreTest, AttributesRoundTripOnRootAndDatasets) {
  {
    File f = File::create(path(), {});
    f.write("/data", std::vector<double>{1, 2}, {2});
    f.set_attr("/", "name", std::string("dsir run"));
    f.set_attr("/", "empty", std::string());
    f.set_attr("/", "unicode", std::string("µm ±"));
    f.set_attr("/data", "pixel_size_nm", 106.5);
    f.set_attr("/data", "fwhm", std::vector<double>{200, 300, 400});
    f.set_attr("/data", "single", std::vector<double>{7});
    f.commit();
  }
  File f = File::open(path());
  EXPECT_EQ(f.attr_string("/", "name"), "dsir run");
  EXPECT_EQ(f.attr_string("/", "empty"), "");
  EXPECT_EQ(f.attr_string("/", "unicode"), "µm ±");
  EXPECT_EQ(f.attr_double("/data", "pixel_size_nm"), 106.5);
  EXPECT_EQ(f.attr_doubles("/data", "pixel_size_nm"), std::vector<double>{106.5});
  EXPECT_EQ(f.attr_doubles("/data", "fwhm"), (std::vector<double>{200, 300, 400}));
  EXPECT_EQ(f.attr_double("/data", "single"), 7);
}

TEST_F(H5StoreTest, SettingAnAttributeAgainReplacesIt) {
  File f = File::create(path(), {});
  f.set_attr("/", "k", std::string("a much longer first value"));
  f.set_attr("/", "k", std::string("short"));
  EXPECT_EQ(f.attr_string("/", "k"), "short");
  f.set_attr("/", "k", 3.5);  // another type
  EXPECT_EQ(f.attr_double("/", "k"), 3.5);
}

TEST_F(H5StoreTest, HasAttrReportsPresence) {
  File f = File::create(path(), {});
  f.write("/a/b", std::vector<float>{1}, {1});
  f.set_attr("/a/b", "units", std::string("nm"));
  f.set_attr("/a", "group_attr", 1.0);
  EXPECT_TRUE(f.has_attr("/a/b", "units"));
  EXPECT_TRUE(f.has_attr("/a", "group_attr"));
  EXPECT_FALSE(f.has_attr("/a/b", "other"));
  EXPECT_FALSE(f.has_attr("/", "units"));
  EXPECT_FALSE(f.has_attr("/missing", "units"));
  EXPECT_FALSE(f.has_attr("/missing/deeper", "units"));
}

TEST_F(H5StoreTest, MissingAttributeIsAnInputErrorNamingIt) {
  File f = File::create(path(), {});
  f.write("/d", std::vector<float>{1}, {1});
  std::string msg = input_error([&] { f.attr_string("/", "nope"); });
  EXPECT_TRUE(contains(msg, "'nope'")) << msg;
  EXPECT_TRUE(contains(msg, "missing attribute")) << msg;
  EXPECT_TRUE(contains(msg, path())) << msg;
  msg = input_error([&] { f.attr_double("/d", "absent_number"); });
  EXPECT_TRUE(contains(msg, "'absent_number'")) << msg;
  EXPECT_TRUE(contains(msg, "/d")) << msg;
  msg = input_error([&] { f.attr_doubles("/nowhere", "v"); });
  EXPECT_TRUE(contains(msg, "'v'")) << msg;
}

TEST_F(H5StoreTest, AttributeOfTheWrongKindIsAnInputError) {
  File f = File::create(path(), {});
  f.set_attr("/", "s", std::string("text"));
  f.set_attr("/", "v", std::vector<double>{1, 2});
  f.set_attr("/", "d", 2.0);
  EXPECT_TRUE(contains(input_error([&] { f.attr_string("/", "d"); }), "not a string"));
  EXPECT_TRUE(contains(input_error([&] { f.attr_double("/", "v"); }), "not a scalar"));
  EXPECT_TRUE(contains(input_error([&] { f.attr_double("/", "s"); }), "'s'"));
}

TEST_F(H5StoreTest, AttributeOnMissingObjectIsAnInputError) {
  File f = File::create(path(), {});
  const std::string msg = input_error([&] { f.set_attr("/ghost", "k", std::string("v")); });
  EXPECT_TRUE(contains(msg, "/ghost")) << msg;
  EXPECT_TRUE(contains(msg, "'k'")) << msg;
}

TEST_F(H5StoreTest, ProvenanceAttributesAppearOnRoot) {
  const Attributes prov = {
      {"dsir_version", "1.2.3"}, {"config_hash", "0123456789abcdef"}, {"stage", "simulate"}};
  {
    File f = File::create(path(), prov);
    f.commit();
  }
  File f = File::open(path());
  for (const auto& [k, v] : prov) {
    EXPECT_TRUE(f.has_attr("/", k)) << k;
    EXPECT_EQ(f.attr_string("/", k), v) << k;
  }
}

// ---------------------------------------------------------------------------------------------
// Atomic creation

// What a killed process leaves (".NAME.tmp.HOST.PID") is removed by the next writer into that
// folder when the process is gone and ran on this host; other hosts' files and live processes'
// are kept.
// ---------------------------------------------------------------------------------------------
// Checksums

std::vector<double> distinct_values(size_t n) {
  std::vector<double> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = 1000.125 + 0.37 * static_cast<double>(i);
  return v;
}

TEST_F(H5StoreTest, ChecksummedDatasetReadsBackAndSaysSo) {
  const auto values = distinct_values(600);
  File f = File::create(path(), {}, dsir::h5::Checksum::fletcher32);
  f.write("/sum", values, {20, 30});
  f.write("/deflated", values, {600}, {100}, 4);
  f.write_table("/table", Table{{Column{"x", DType::f64, {1, 2, 3}}}});
  f.commit();
  const File r = File::open(path());
  EXPECT_TRUE(r.checksummed("/sum"));
  EXPECT_TRUE(r.checksummed("/deflated"));
  EXPECT_TRUE(r.checksummed("/table"));
  EXPECT_EQ(r.read<double>("/sum"), values);
  EXPECT_EQ(r.read<double>("/deflated"), values);
  EXPECT_EQ(r.shape("/sum"), (Dims{20, 30}));
}

TEST_F(H5StoreTest, AFlippedByteInChecksummedDataIsAnErrorNamingFileDatasetAndCause) {
  const auto values = distinct_values(600);
  {
    File f = File::create(path(), {}, dsir::h5::Checksum::fletcher32);
    f.write("/sum", values, {20, 30});
    f.commit();
  }
  ASSERT_TRUE(dsir::test::flip_byte_inside(path(), values));
  const File r = File::open(path());
  const std::string msg = input_error([&] { r.read<double>("/sum"); });
  EXPECT_TRUE(contains(msg, path() + ": /sum: read failed: checksum mismatch")) << msg;
  const std::string rows = input_error([&] { r.read_rows<double>("/sum", 3, 2); });
  EXPECT_TRUE(contains(rows, "checksum mismatch")) << rows;
}

TEST_F(H5StoreTest, WithoutChecksumsAFlippedByteGoesUnnoticed) {
  // What the checksum is for, and how files of older dsir versions read: no check, no error.
  const auto values = distinct_values(600);
  {
    File f = File::create(path(), {});
    f.write("/sum", values, {20, 30});
    f.commit();
  }
  ASSERT_TRUE(dsir::test::flip_byte_inside(path(), values));
  const File r = File::open(path());
  EXPECT_FALSE(r.checksummed("/sum"));
  EXPECT_NE(r.read<double>("/sum"), values);
}

TEST_F(H5StoreTest, StaleTemporariesOfDeadProcessesOfThisHostAreRemoved) {
  char host[256] = {};
  ASSERT_EQ(gethostname(host, sizeof host - 1), 0);
  const pid_t dead = fork();
  if (dead == 0) _exit(0);
  ASSERT_GT(dead, 0);
  waitpid(dead, nullptr, 0);
  const std::string dead_here = ".big.h5.tmp." + std::string(host) + "." + std::to_string(dead);
  const std::string dead_elsewhere = ".big.h5.tmp.other-node-7." + std::to_string(dead);
  const std::string live_here = ".big.h5.tmp." + std::string(host) + "." + std::to_string(getppid());
  for (const std::string& name : {dead_here, dead_elsewhere, live_here})
    std::ofstream(path(name)) << "partial";
  File f = File::create(path("out.h5"), {});
  f.commit();
  const auto left = entries();
  EXPECT_EQ(std::count(left.begin(), left.end(), dead_here), 0);
  EXPECT_EQ(std::count(left.begin(), left.end(), dead_elsewhere), 1);
  EXPECT_EQ(std::count(left.begin(), left.end(), live_here), 1);
}

TEST_F(H5StoreTest, FinalPathAppearsOnlyAtCommit) {
  const std::string final_path = path("out.h5");
  File f = File::create(final_path, {{"k", "v"}});
  f.write("/d", std::vector<float>{1, 2, 3}, {3});
  EXPECT_EQ(f.path(), final_path);
  EXPECT_FALSE(fs::exists(final_path));
  auto before = entries();
  ASSERT_EQ(before.size(), 1u);
  EXPECT_NE(before[0], "out.h5");
  EXPECT_TRUE(contains(before[0], "out.h5")) << before[0];
  EXPECT_TRUE(contains(before[0], ".tmp")) << before[0];
  EXPECT_EQ(before[0].front(), '.') << before[0];  // hidden while incomplete

  f.commit();
  EXPECT_TRUE(fs::exists(final_path));
  EXPECT_EQ(entries(), std::vector<std::string>{"out.h5"});  // temporary renamed, not copied
  EXPECT_EQ(File::open(final_path).read<float>("/d"), (std::vector<float>{1, 2, 3}));
}

TEST_F(H5StoreTest, FileDestroyedWithoutCommitLeavesFolderEmpty) {
  {
    File f = File::create(path("abandoned.h5"), {{"k", "v"}});
    f.write("/d", std::vector<double>(1000, 1.0), {1000});
    EXPECT_EQ(entries().size(), 1u);
  }
  EXPECT_TRUE(entries().empty());
  EXPECT_FALSE(fs::exists(path("abandoned.h5")));
}

TEST_F(H5StoreTest, ExceptionBeforeCommitLeavesNoFile) {
  try {
    File f = File::create(path("failed.h5"), {});
    f.write("/d", std::vector<float>(2), {3});  // throws
    f.commit();
  } catch (const InputError&) {
  }
  EXPECT_TRUE(entries().empty());
}

TEST_F(H5StoreTest, CommitReplacesAnExistingFile) {
  {
    File f = File::create(path(), {{"run", "first"}});
    f.commit();
  }
  {
    File f = File::create(path(), {{"run", "second"}});
    EXPECT_EQ(File::open(path()).attr_string("/", "run"), "first");  // old file intact meanwhile
    f.commit();
  }
  EXPECT_EQ(File::open(path()).attr_string("/", "run"), "second");
  EXPECT_EQ(entries().size(), 1u);
}

TEST_F(H5StoreTest, CreateMakesMissingParentFolders) {
  const std::string nested = (dir_ / "a" / "b" / "c.h5").string();
  File f = File::create(nested, {});
  f.commit();
  EXPECT_TRUE(fs::is_regular_file(nested));
}

TEST_F(H5StoreTest, MovedFileCommitsOnce) {
  File a = File::create(path(), {});
  a.write("/d", std::vector<int32_t>{4, 5}, {2});
  File b = std::move(a);
  b.commit();
  EXPECT_EQ(File::open(path()).read<int32_t>("/d"), (std::vector<int32_t>{4, 5}));
  EXPECT_EQ(entries().size(), 1u);
}

TEST_F(H5StoreTest, CommitOnAFileOpenedForReadingIsAnError) {
  {
    File f = File::create(path(), {});
    f.commit();
  }
  File f = File::open(path());
  EXPECT_THROW(f.commit(), dsir::Error);
  EXPECT_TRUE(fs::exists(path()));
}

// ---------------------------------------------------------------------------------------------
// Opening and lookup errors

TEST_F(H5StoreTest, OpenMissingFileNamesThePath) {
  const std::string p = path("missing.h5");
  const std::string msg = input_error([&] { File::open(p); });
  EXPECT_TRUE(contains(msg, p)) << msg;
}

TEST_F(H5StoreTest, OpenNonHdf5FileNamesThePath) {
  const std::string p = path("not.h5");
  std::ofstream(p) << "this is not an HDF5 file\n";
  const std::string msg = input_error([&] { File::open(p); });
  EXPECT_TRUE(contains(msg, p)) << msg;
  EXPECT_TRUE(contains(msg, "HDF5")) << msg;
}

TEST_F(H5StoreTest, ShapeOfMissingDatasetNamesTheDataset) {
  {
    File f = File::create(path(), {});
    f.commit();
  }
  File f = File::open(path());
  std::string msg = input_error([&] { f.shape("/no/such/data"); });
  EXPECT_TRUE(contains(msg, "/no/such/data")) << msg;
  EXPECT_TRUE(contains(msg, path())) << msg;
  msg = input_error([&] { f.dtype("/absent"); });
  EXPECT_TRUE(contains(msg, "/absent")) << msg;
  msg = input_error([&] { f.read<float>("/absent"); });
  EXPECT_TRUE(contains(msg, "/absent")) << msg;
  msg = input_error([&] { f.read_rows<float>("/absent", 0, 1); });
  EXPECT_TRUE(contains(msg, "/absent")) << msg;
}

TEST_F(H5StoreTest, HasWalksNestedPaths) {
  File f = File::create(path(), {});
  f.write("/a/b/c", std::vector<float>{1}, {1});
  EXPECT_TRUE(f.has("/a"));
  EXPECT_TRUE(f.has("/a/b"));
  EXPECT_TRUE(f.has("/a/b/c"));
  EXPECT_TRUE(f.has("a/b/c"));  // relative to the root
  EXPECT_TRUE(f.has("/"));
  EXPECT_FALSE(f.has("/a/b/d"));
  EXPECT_FALSE(f.has("/a/x/c"));    // missing intermediate group
  EXPECT_FALSE(f.has("/x/y/z"));    // missing first group
  EXPECT_FALSE(f.has("/a/b/c/d"));  // below a dataset
  EXPECT_FALSE(f.has("/zz"));
}

TEST_F(H5StoreTest, HasWorksAfterReopening) {
  {
    File f = File::create(path(), {});
    f.write("/g1/g2/data", std::vector<uint8_t>{1, 2}, {2});
    f.commit();
  }
  File f = File::open(path());
  EXPECT_TRUE(f.has("/g1/g2/data"));
  EXPECT_FALSE(f.has("/g1/g3/data"));
  EXPECT_EQ(f.read<uint8_t>("/g1/g2/data"), (std::vector<uint8_t>{1, 2}));
}

// Counts, factors and epochs stored as double attributes: converting NaN, 1e300 or -1 to an
// integer type was undefined behaviour in the readers (found writing the fuzz harnesses).
TEST_F(H5StoreTest, AttrIntAcceptsOnlyWholeNumbersInItsRange) {
  {
    File f = File::create(path(), {});
    f.set_attr("/", "ok", 8.0);
    f.set_attr("/", "nan", std::nan(""));
    f.set_attr("/", "huge", 1e300);
    f.set_attr("/", "half", 2.5);
    f.set_attr("/", "negative", -1.0);
    f.set_attr("/", "beyond", 33.0);
    f.commit();
  }
  File f = File::open(path());
  EXPECT_EQ(f.attr_int("/", "ok", 1, 32), 8);
  for (const char* key : {"nan", "huge", "half", "negative", "beyond"}) {
    const std::string msg = input_error([&] { f.attr_int("/", key, 1, 32); });
    EXPECT_TRUE(contains(msg, path())) << msg;
    EXPECT_TRUE(contains(msg, std::string("attribute '") + key + "'")) << msg;
    EXPECT_TRUE(contains(msg, "whole number in [1, 32]")) << msg;
  }
  // The full int64 range is capped at 2^53, where doubles stop being exact.
  EXPECT_TRUE(contains(input_error([&] { f.attr_int("/", "huge", 0, INT64_MAX); }), "9007199254740992"));
}

// A file may declare any dimensions: rows whose element count wraps around 64 bits read as an
// empty vector (the wrapped count was 0), and a row range whose end wraps passed the bounds check.
TEST_F(H5StoreTest, RowReadsWhoseSizeOverflowsAreErrors) {
  const uint64_t big = uint64_t(1) << 32;
  {
    File f = File::create(path(), {});
    f.create_dataset("/huge", DType::f32, {big, big, big}, {1, 1, 1}, 0);  // chunked: nothing stored
    f.write("/small", std::vector<float>{1, 2, 3}, {3});
    f.commit();
  }
  File f = File::open(path());
  EXPECT_TRUE(contains(input_error([&] { f.read_rows<float>("/huge", 0, 1); }), "overflow 64 bits"));
  EXPECT_TRUE(
      contains(input_error([&] { f.read_rows<float>("/small", 2, UINT64_MAX); }), "row range out of bounds"));
  EXPECT_EQ(f.read_rows<float>("/small", 1, 2), (std::vector<float>{2, 3}));
}

TEST(H5Version, ReportsMajorMinorRelease) {
  const std::string v = dsir::h5::hdf5_version();
  EXPECT_EQ(std::count(v.begin(), v.end(), '.'), 2) << v;
  EXPECT_TRUE(std::isdigit(static_cast<unsigned char>(v.front()))) << v;
}

}  // namespace
