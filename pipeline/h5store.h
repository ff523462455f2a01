#pragma once
// A small typed wrapper over the HDF5 C API: the store every stage reads and writes
// (layout in docs/data-format.md). Output files are created under a temporary name and
// renamed by commit(); a File destroyed without commit() leaves nothing behind.
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace dsir {
class AtomicPath;
}

namespace dsir::h5 {

using Dims = std::vector<uint64_t>;
using Attributes = std::map<std::string, std::string>;

enum class DType { u8, u16, u32, i32, i64, f32, f64 };

// Whether the datasets a File creates carry a checksum. `fletcher32`: HDF5's Fletcher-32 filter on
// every chunk (datasets are chunked for it), which HDF5 verifies on every read, also in h5py; a
// read of a corrupted chunk fails with "checksum mismatch" naming the file and dataset.
enum class Checksum { none, fletcher32 };

// One column of a compound table (e.g. /emitters): values held as double in memory,
// stored with the given type.
struct Column {
  std::string name;
  DType type = DType::f64;
  std::vector<double> values;
};
struct Table {
  std::vector<Column> columns;
  size_t rows() const { return columns.empty() ? 0 : columns.front().values.size(); }
  const Column& operator[](const std::string& name) const;  // throws if absent
  const Column* find(const std::string& name) const;
};

class File {
 public:
  static File open(const std::string& path);  // read-only; InputError naming the file
  static File create(const std::string& path, const Attributes& provenance,
                     Checksum checksum = Checksum::none);
  File(File&&) noexcept;
  File& operator=(File&&) noexcept;
  ~File();

  void commit();  // flush, close and rename to the final name
  const std::string& path() const { return path_; }

  bool has(const std::string& name) const;
  Dims shape(const std::string& name) const;
  DType dtype(const std::string& name) const;
  // True when the dataset carries a checksum that reads verify (files written before dsir used
  // checksums have none).
  bool checksummed(const std::string& name) const;

  // Whole datasets.
  template <class T>
  void write(const std::string& name, const std::vector<T>& data, const Dims& dims, const Dims& chunk = {},
             int deflate = 0);
  template <class T>
  std::vector<T> read(const std::string& name) const;  // converts from the stored type

  // Streaming: create a dataset, then write/read slabs along the first dimension.
  void create_dataset(const std::string& name, DType type, const Dims& dims, const Dims& chunk, int deflate);
  template <class T>
  void write_rows(const std::string& name, uint64_t first, uint64_t count, const T* data);
  template <class T>
  std::vector<T> read_rows(const std::string& name, uint64_t first, uint64_t count) const;

  void write_table(const std::string& name, const Table& table, int deflate = 4);
  Table read_table(const std::string& name) const;

  // Attributes on the file root ("/") or on any dataset/group.
  void set_attr(const std::string& object, const std::string& key, const std::string& value);
  void set_attr(const std::string& object, const std::string& key, double value);
  void set_attr(const std::string& object, const std::string& key, const std::vector<double>& v);
  bool has_attr(const std::string& object, const std::string& key) const;
  std::string attr_string(const std::string& object, const std::string& key) const;
  double attr_double(const std::string& object, const std::string& key) const;
  std::vector<double> attr_doubles(const std::string& object, const std::string& key) const;
  // A numeric attribute that must be a whole number in [min, max] (counts, factors, epochs):
  // InputError naming the file and attribute otherwise (NaN, 1e300 and 2.5 included).
  int64_t attr_int(const std::string& object, const std::string& key, int64_t min, int64_t max) const;

 private:
  File() = default;
  void close() noexcept;
  [[noreturn]] void fail(const std::string& what, const std::string& name) const;

  int64_t id_ = -1;
  Checksum checksum_ = Checksum::none;
  std::string path_;
  std::unique_ptr<AtomicPath> atomic_;
};

std::string hdf5_version();

}  // namespace dsir::h5
