#include "pipeline/h5store.h"

#include <hdf5.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>

#include "pipeline/atomic_file.h"
#include "pipeline/errors.h"
#include "pipeline/log.h"

static_assert(sizeof(hid_t) == sizeof(int64_t), "hid_t is expected to be 64-bit (HDF5 >= 1.10)");

namespace dsir::h5 {
namespace {

// Silences HDF5's own error printing; we report errors ourselves with file and dataset. The
// setting is per thread in a thread-safe HDF5 (Debian's): the main thread's at start-up, a reader
// thread's (training's prefetch) on its first read.
struct QuietErrors {
  QuietErrors() { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); }
};
// No HDF5 clean-up at process exit: after a write failed (a full disk), the library still holds
// the file it could not flush, and its exit handler dies in it with SIGSEGV (H5F__close_cb from
// H5_term_library) instead of letting the error's exit code through. Every file dsir writes is
// flushed and closed explicitly (File::commit), so nothing is lost. Before any other HDF5 call.
struct NoExitHandler {
  NoExitHandler() { H5dont_atexit(); }
};
const NoExitHandler no_exit_handler;
const QuietErrors quiet_errors;
void quiet_this_thread() { thread_local const QuietErrors quiet; }

// The operating system's reason for the HDF5 call that just failed, when it left one in errno
// ("No space left on device"), for the message.
std::string system_reason() { return errno != 0 ? std::string(": ") + std::strerror(errno) : ""; }

// HDF5's reason for the call that just failed (call before any other HDF5 call): a chunk whose
// checksum does not match is named as such, anything else by the innermost message on the stack.
std::string hdf5_reason() {
  struct Found {
    bool checksum = false;
    std::string innermost;
  } found;
  H5Ewalk2(
      H5E_DEFAULT, H5E_WALK_DOWNWARD,
      [](unsigned, const H5E_error2_t* e, void* data) -> herr_t {
        auto* f = static_cast<Found*>(data);
        const std::string desc = e->desc ? e->desc : "";
        // HDF5's words since 1.8: "data error detected by Fletcher32 checksum".
        if (desc.find("Fletcher32") != std::string::npos) f->checksum = true;
        if (!desc.empty()) f->innermost = desc;
        return 0;
      },
      &found);
  if (found.checksum) return ": checksum mismatch, the data is corrupt (Fletcher-32 of a chunk)";
  return found.innermost.empty() ? "" : " (" + found.innermost + ")";
}

hid_t native(DType t) {
  switch (t) {
    case DType::u8:
      return H5T_NATIVE_UINT8;
    case DType::u16:
      return H5T_NATIVE_UINT16;
    case DType::u32:
      return H5T_NATIVE_UINT32;
    case DType::i32:
      return H5T_NATIVE_INT32;
    case DType::i64:
      return H5T_NATIVE_INT64;
    case DType::f32:
      return H5T_NATIVE_FLOAT;
    case DType::f64:
      return H5T_NATIVE_DOUBLE;
  }
  return H5T_NATIVE_DOUBLE;
}

size_t type_size(DType t) {
  switch (t) {
    case DType::u8:
      return 1;
    case DType::u16:
      return 2;
    case DType::u32:
    case DType::i32:
    case DType::f32:
      return 4;
    default:
      return 8;
  }
}

template <class T>
DType dtype_of();
template <>
DType dtype_of<uint8_t>() {
  return DType::u8;
}
template <>
DType dtype_of<uint16_t>() {
  return DType::u16;
}
template <>
DType dtype_of<uint32_t>() {
  return DType::u32;
}
template <>
DType dtype_of<int32_t>() {
  return DType::i32;
}
template <>
DType dtype_of<int64_t>() {
  return DType::i64;
}
template <>
DType dtype_of<float>() {
  return DType::f32;
}
template <>
DType dtype_of<double>() {
  return DType::f64;
}

// RAII for HDF5 handles.
class Handle {
 public:
  Handle(hid_t id, herr_t (*closer)(hid_t)) : id_(id), closer_(closer) {}
  ~Handle() {
    if (id_ >= 0) closer_(id_);
  }
  Handle(const Handle&) = delete;
  operator hid_t() const { return id_; }
  bool ok() const { return id_ >= 0; }

 private:
  hid_t id_;
  herr_t (*closer_)(hid_t);
};

hid_t link_create_plist() {
  static hid_t plist = [] {
    hid_t p = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(p, 1);
    return p;
  }();
  return plist;
}

uint64_t product(const Dims& d) {
  uint64_t n = 1;
  for (auto v : d) n *= v;
  return n;
}

// The element count of a read, refused when it wraps around 64 bits or cannot be a buffer of T:
// a file may declare any dimensions, and a wrapped count would be a too-small buffer for HDF5.
template <class T>
size_t elements_to_read(const Dims& d) {
  uint64_t n = 1;
  for (auto v : d)
    if (v != 0 && n > std::numeric_limits<uint64_t>::max() / v)
      return std::numeric_limits<size_t>::max();
    else
      n *= v;
  return n > std::numeric_limits<size_t>::max() / sizeof(T) ? std::numeric_limits<size_t>::max() : size_t(n);
}

}  // namespace

const Column* Table::find(const std::string& name) const {
  for (const auto& c : columns)
    if (c.name == name) return &c;
  return nullptr;
}
const Column& Table::operator[](const std::string& name) const {
  if (auto* c = find(name)) return *c;
  throw InputError("table has no column '" + name + "'");
}

std::string hdf5_version() {
  unsigned maj, min, rel;
  H5get_libversion(&maj, &min, &rel);
  return std::to_string(maj) + "." + std::to_string(min) + "." + std::to_string(rel);
}

void File::fail(const std::string& what, const std::string& name) const {
  throw InputError(path_ + (name.empty() ? "" : ": " + name) + ": " + what);
}

File File::open(const std::string& path) {
  File f;
  f.path_ = path;
  if (!std::filesystem::exists(path)) throw InputError(path + ": no such file");
  f.id_ = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  if (f.id_ < 0) throw InputError(path + ": not a readable HDF5 file");
  log::debug("hdf5: reading {}", path);
  return f;
}

File File::create(const std::string& path, const Attributes& provenance, Checksum checksum) {
  File f;
  f.path_ = path;
  f.checksum_ = checksum;
  f.atomic_ = std::make_unique<AtomicPath>(path);
  // HDF5 1.10's file format throughout (superblock v3, object headers v2, checksummed chunk
  // indexes): every piece of metadata carries a checksum that HDF5 verifies before it parses it,
  // so a corrupted byte there is an error. In the default (1.0) format the metadata has none, and
  // HDF5 1.10.8 parses a corrupted object header or datatype out of bounds (found by the fuzzers,
  // docs/reliability.md). h5py and any HDF5 since 1.10 read it.
  const hid_t access = H5Pcreate(H5P_FILE_ACCESS);
  H5Pset_libver_bounds(access, H5F_LIBVER_V110, H5F_LIBVER_V110);
  errno = 0;
  f.id_ = H5Fcreate(f.atomic_->tmp().c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, access);
  H5Pclose(access);
  if (f.id_ < 0) throw Error(path + ": cannot create HDF5 file" + system_reason());
  for (const auto& [k, v] : provenance) f.set_attr("/", k, v);
  return f;
}

File::File(File&& o) noexcept
    : id_(o.id_), checksum_(o.checksum_), path_(std::move(o.path_)), atomic_(std::move(o.atomic_)) {
  o.id_ = -1;
}
File& File::operator=(File&& o) noexcept {
  if (this != &o) {
    close();
    id_ = o.id_;
    checksum_ = o.checksum_;
    path_ = std::move(o.path_);
    atomic_ = std::move(o.atomic_);
    o.id_ = -1;
  }
  return *this;
}
File::~File() { close(); }

void File::close() noexcept {
  if (id_ >= 0) H5Fclose(id_);
  id_ = -1;
}

void File::commit() {
  if (!atomic_) throw Error(path_ + ": commit() on a file opened for reading");
  errno = 0;
  if (H5Fflush(id_, H5F_SCOPE_GLOBAL) < 0) throw Error(path_ + ": cannot write the file" + system_reason());
  close();
  atomic_->commit();
  atomic_.reset();
  log::debug("hdf5: wrote {}", path_);
}

bool File::has(const std::string& name) const {
  // H5Lexists fails on missing intermediate groups; walk the path.
  std::string partial;
  size_t pos = 0;
  while (pos != std::string::npos) {
    size_t next = name.find('/', pos + 1);
    partial = name.substr(0, next);
    if (!partial.empty() && partial != "/" && H5Lexists(id_, partial.c_str(), H5P_DEFAULT) <= 0) return false;
    pos = next;
  }
  return true;
}

Dims File::shape(const std::string& name) const {
  Handle ds(H5Dopen2(id_, name.c_str(), H5P_DEFAULT), H5Dclose);
  if (!ds.ok()) fail("missing dataset", name);
  Handle space(H5Dget_space(ds), H5Sclose);
  int rank = H5Sget_simple_extent_ndims(space);
  std::vector<hsize_t> d(rank);
  H5Sget_simple_extent_dims(space, d.data(), nullptr);
  return Dims(d.begin(), d.end());
}

DType File::dtype(const std::string& name) const {
  Handle ds(H5Dopen2(id_, name.c_str(), H5P_DEFAULT), H5Dclose);
  if (!ds.ok()) fail("missing dataset", name);
  Handle t(H5Dget_type(ds), H5Tclose);
  for (DType c : {DType::u8, DType::u16, DType::u32, DType::i32, DType::i64, DType::f32, DType::f64})
    if (H5Tequal(t, native(c)) > 0) return c;
  fail("unsupported element type", name);
}

bool File::checksummed(const std::string& name) const {
  Handle ds(H5Dopen2(id_, name.c_str(), H5P_DEFAULT), H5Dclose);
  if (!ds.ok()) fail("missing dataset", name);
  Handle dcpl(H5Dget_create_plist(ds), H5Pclose);
  unsigned flags = 0;
  size_t n = 0;
  unsigned config = 0;
  return H5Pget_filter_by_id2(dcpl, H5Z_FILTER_FLETCHER32, &flags, &n, nullptr, 0, nullptr, &config) >= 0;
}

void File::create_dataset(const std::string& name, DType type, const Dims& dims, const Dims& chunk,
                          int deflate) {
  std::vector<hsize_t> d(dims.begin(), dims.end());
  Handle space(H5Screate_simple(static_cast<int>(d.size()), d.data(), nullptr), H5Sclose);
  Handle dcpl(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
  const bool checksum = checksum_ == Checksum::fletcher32 && !dims.empty() && product(dims) > 0;
  if ((!chunk.empty() || checksum) && product(dims) > 0) {
    std::vector<hsize_t> c(chunk.begin(), chunk.end());
    if (c.empty()) {
      // The filter needs chunks: whole trailing dimensions, leading rows up to about 1 MiB.
      c.assign(dims.begin(), dims.end());
      c[0] = std::max<uint64_t>(
          1, (uint64_t{1} << 20) / std::max<uint64_t>(1, product(dims) / dims[0] * type_size(type)));
    }
    for (size_t i = 0; i < c.size() && i < dims.size(); ++i)
      c[i] = std::max<hsize_t>(1, std::min<hsize_t>(c[i], dims[i]));
    if (H5Pset_chunk(dcpl, static_cast<int>(c.size()), c.data()) < 0) fail("invalid chunk shape", name);
    if (deflate > 0) {
      H5Pset_shuffle(dcpl);
      H5Pset_deflate(dcpl, static_cast<unsigned>(deflate));
    }
    // Last in the pipeline, as h5py does: the checksum covers the stored bytes.
    if (checksum && H5Pset_fletcher32(dcpl) < 0) fail("cannot add a checksum", name);
  }
  Handle ds(H5Dcreate2(id_, name.c_str(), native(type), space, link_create_plist(), dcpl, H5P_DEFAULT),
            H5Dclose);
  if (!ds.ok()) fail("cannot create dataset", name);
}

namespace {
void select_rows(hid_t space, const Dims& dims, uint64_t first, uint64_t count) {
  std::vector<hsize_t> start(dims.size(), 0), cnt(dims.begin(), dims.end());
  start[0] = first;
  cnt[0] = count;
  H5Sselect_hyperslab(space, H5S_SELECT_SET, start.data(), nullptr, cnt.data(), nullptr);
}
}  // namespace

template <class T>
void File::write_rows(const std::string& name, uint64_t first, uint64_t count, const T* data) {
  Dims dims = shape(name);
  if (dims.empty() || count > dims[0] || first > dims[0] - count) fail("row range out of bounds", name);
  Handle ds(H5Dopen2(id_, name.c_str(), H5P_DEFAULT), H5Dclose);
  Handle fspace(H5Dget_space(ds), H5Sclose);
  select_rows(fspace, dims, first, count);
  Dims mdims = dims;
  mdims[0] = count;
  std::vector<hsize_t> md(mdims.begin(), mdims.end());
  Handle mspace(H5Screate_simple(static_cast<int>(md.size()), md.data(), nullptr), H5Sclose);
  if (H5Dwrite(ds, native(dtype_of<T>()), mspace, fspace, H5P_DEFAULT, data) < 0) fail("write failed", name);
}

template <class T>
std::vector<T> File::read_rows(const std::string& name, uint64_t first, uint64_t count) const {
  quiet_this_thread();
  Dims dims = shape(name);
  if (dims.empty() || count > dims[0] || first > dims[0] - count) fail("row range out of bounds", name);
  Handle ds(H5Dopen2(id_, name.c_str(), H5P_DEFAULT), H5Dclose);
  Handle fspace(H5Dget_space(ds), H5Sclose);
  select_rows(fspace, dims, first, count);
  Dims mdims = dims;
  mdims[0] = count;
  const size_t n = elements_to_read<T>(mdims);
  if (n == std::numeric_limits<size_t>::max())
    fail("rows " + std::to_string(first) + " to " + std::to_string(first + count) +
             " are too large to read (dimensions overflow 64 bits)",
         name);
  std::vector<T> out(n);
  std::vector<hsize_t> md(mdims.begin(), mdims.end());
  Handle mspace(H5Screate_simple(static_cast<int>(md.size()), md.data(), nullptr), H5Sclose);
  if (!out.empty() && H5Dread(ds, native(dtype_of<T>()), mspace, fspace, H5P_DEFAULT, out.data()) < 0)
    fail("read failed" + hdf5_reason(), name);
  return out;
}

template <class T>
void File::write(const std::string& name, const std::vector<T>& data, const Dims& dims, const Dims& chunk,
                 int deflate) {
  if (product(dims) != data.size()) fail("data size does not match dimensions", name);
  create_dataset(name, dtype_of<T>(), dims, chunk, deflate);
  if (!data.empty()) {
    Handle ds(H5Dopen2(id_, name.c_str(), H5P_DEFAULT), H5Dclose);
    if (H5Dwrite(ds, native(dtype_of<T>()), H5S_ALL, H5S_ALL, H5P_DEFAULT, data.data()) < 0)
      fail("write failed", name);
  }
}

template <class T>
std::vector<T> File::read(const std::string& name) const {
  Dims dims = shape(name);
  if (dims.empty()) {  // scalar dataset
    std::vector<T> out(1);
    Handle ds(H5Dopen2(id_, name.c_str(), H5P_DEFAULT), H5Dclose);
    if (H5Dread(ds, native(dtype_of<T>()), H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data()) < 0)
      fail("read failed" + hdf5_reason(), name);
    return out;
  }
  return read_rows<T>(name, 0, dims[0]);
}

#define DSIR_H5_INSTANTIATE(T)                                                                            \
  template void File::write<T>(const std::string&, const std::vector<T>&, const Dims&, const Dims&, int); \
  template std::vector<T> File::read<T>(const std::string&) const;                                        \
  template void File::write_rows<T>(const std::string&, uint64_t, uint64_t, const T*);                    \
  template std::vector<T> File::read_rows<T>(const std::string&, uint64_t, uint64_t) const;
DSIR_H5_INSTANTIATE(uint8_t)
DSIR_H5_INSTANTIATE(uint16_t)
DSIR_H5_INSTANTIATE(uint32_t)
DSIR_H5_INSTANTIATE(int32_t)
DSIR_H5_INSTANTIATE(int64_t)
DSIR_H5_INSTANTIATE(float)
DSIR_H5_INSTANTIATE(double)
#undef DSIR_H5_INSTANTIATE

void File::write_table(const std::string& name, const Table& table, int deflate) {
  size_t rows = table.rows();
  size_t row_size = 0;
  std::vector<size_t> offsets;
  for (const auto& c : table.columns) {
    if (c.values.size() != rows) fail("column '" + c.name + "' has a different length", name);
    offsets.push_back(row_size);
    row_size += type_size(c.type);
  }
  Handle ctype(H5Tcreate(H5T_COMPOUND, row_size), H5Tclose);
  for (size_t i = 0; i < table.columns.size(); ++i)
    H5Tinsert(ctype, table.columns[i].name.c_str(), offsets[i], native(table.columns[i].type));
  std::vector<unsigned char> buf(rows * row_size);
  for (size_t r = 0; r < rows; ++r) {
    for (size_t i = 0; i < table.columns.size(); ++i) {
      unsigned char* p = buf.data() + r * row_size + offsets[i];
      double v = table.columns[i].values[r];
      switch (table.columns[i].type) {
        case DType::u8: {
          uint8_t x = static_cast<uint8_t>(v);
          std::memcpy(p, &x, 1);
          break;
        }
        case DType::u16: {
          uint16_t x = static_cast<uint16_t>(v);
          std::memcpy(p, &x, 2);
          break;
        }
        case DType::u32: {
          uint32_t x = static_cast<uint32_t>(v);
          std::memcpy(p, &x, 4);
          break;
        }
        case DType::i32: {
          int32_t x = static_cast<int32_t>(v);
          std::memcpy(p, &x, 4);
          break;
        }
        case DType::i64: {
          int64_t x = static_cast<int64_t>(v);
          std::memcpy(p, &x, 8);
          break;
        }
        case DType::f32: {
          float x = static_cast<float>(v);
          std::memcpy(p, &x, 4);
          break;
        }
        case DType::f64:
          std::memcpy(p, &v, 8);
          break;
      }
    }
  }
  hsize_t dim = rows;
  hsize_t maxdim = H5S_UNLIMITED;
  Handle space(H5Screate_simple(1, &dim, &maxdim), H5Sclose);
  Handle dcpl(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
  hsize_t chunk = std::max<hsize_t>(1, std::min<hsize_t>(rows, 65536));
  H5Pset_chunk(dcpl, 1, &chunk);
  if (deflate > 0) H5Pset_deflate(dcpl, static_cast<unsigned>(deflate));
  if (checksum_ == Checksum::fletcher32 && H5Pset_fletcher32(dcpl) < 0) fail("cannot add a checksum", name);
  Handle ds(H5Dcreate2(id_, name.c_str(), ctype, space, link_create_plist(), dcpl, H5P_DEFAULT), H5Dclose);
  if (!ds.ok()) fail("cannot create table", name);
  if (rows > 0 && H5Dwrite(ds, ctype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf.data()) < 0)
    fail("write failed", name);
}

Table File::read_table(const std::string& name) const {
  Handle ds(H5Dopen2(id_, name.c_str(), H5P_DEFAULT), H5Dclose);
  if (!ds.ok()) fail("missing table", name);
  Handle ftype(H5Dget_type(ds), H5Tclose);
  if (H5Tget_class(ftype) != H5T_COMPOUND) fail("not a compound table", name);
  Handle space(H5Dget_space(ds), H5Sclose);
  hsize_t rows = 0;
  H5Sget_simple_extent_dims(space, &rows, nullptr);
  const int nmembers = H5Tget_nmembers(ftype);
  if (nmembers <= 0) fail("a table without columns", name);
  // All members in one read, each converted to double (independent of the stored layout and
  // types): one pass over the chunks, where a read per column decompressed them once per column.
  const size_t n = static_cast<size_t>(nmembers);
  Handle all(H5Tcreate(H5T_COMPOUND, n * sizeof(double)), H5Tclose);
  Table table;
  for (size_t i = 0; i < n; ++i) {
    char* cname = H5Tget_member_name(ftype, static_cast<unsigned>(i));
    if (cname == nullptr) fail("unreadable column name", name);
    Column col;
    col.name = cname;
    H5free_memory(cname);
    Handle mtype(H5Tget_member_type(ftype, static_cast<unsigned>(i)), H5Tclose);
    col.type = DType::f64;
    for (DType c : {DType::u8, DType::u16, DType::u32, DType::i32, DType::i64, DType::f32})
      if (H5Tequal(mtype, native(c)) > 0) col.type = c;
    if (H5Tinsert(all, col.name.c_str(), i * sizeof(double), H5T_NATIVE_DOUBLE) < 0)
      fail("column '" + col.name + "' is not one of a kind (a name twice?)", name);
    table.columns.push_back(std::move(col));
  }
  if (rows > 0) {
    if (rows > std::numeric_limits<size_t>::max() / sizeof(double) / n) fail("table too large", name);
    // A table stores its rows (deflate shrinks them at most ~1032x); one that declares far more
    // than its storage could hold has a corrupted dataspace, and reading it would allocate what
    // the corruption says (8.7 TB in one fuzzed shard).
    const size_t stored_record_bytes = H5Tget_size(ftype);
    const hsize_t stored = H5Dget_storage_size(ds);
    if (static_cast<double>(rows) * static_cast<double>(stored_record_bytes) >
        1032.0 * static_cast<double>(stored) + double(1 << 20))
      fail("corrupt table: declares " + std::to_string(rows) + " rows but stores " + std::to_string(stored) +
               " bytes",
           name);
    std::vector<double> records(static_cast<size_t>(rows) * n);
    // HDF5 converts through buffers of 1 MiB by default, allocated and cleared on every read;
    // a table smaller than that needs no more than its own size.
    const size_t record_bytes = std::max(stored_record_bytes, n * sizeof(double));
    Handle dxpl(H5Pcreate(H5P_DATASET_XFER), H5Pclose);
    H5Pset_buffer(dxpl, std::min<hsize_t>(hsize_t(1) << 20, rows * record_bytes), nullptr, nullptr);
    if (H5Dread(ds, all, H5S_ALL, H5S_ALL, dxpl, records.data()) < 0)
      fail("cannot read the columns" + hdf5_reason(), name);
    for (size_t i = 0; i < n; ++i) {
      std::vector<double>& values = table.columns[i].values;
      values.resize(static_cast<size_t>(rows));
      for (size_t r = 0; r < values.size(); ++r) values[r] = records[r * n + i];
    }
  }
  return table;
}

namespace {
hid_t open_object(hid_t file, const std::string& object) {
  return H5Oopen(file, object.c_str(), H5P_DEFAULT);
}
void replace_attr(hid_t obj, const std::string& key) {
  if (H5Aexists(obj, key.c_str()) > 0) H5Adelete(obj, key.c_str());
}
}  // namespace

void File::set_attr(const std::string& object, const std::string& key, const std::string& value) {
  Handle obj(open_object(id_, object), H5Oclose);
  if (!obj.ok()) fail("no such object for attribute '" + key + "'", object);
  replace_attr(obj, key);
  Handle type(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(type, std::max<size_t>(1, value.size()));
  H5Tset_strpad(type, H5T_STR_NULLPAD);
  H5Tset_cset(type, H5T_CSET_UTF8);
  Handle space(H5Screate(H5S_SCALAR), H5Sclose);
  Handle attr(H5Acreate2(obj, key.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  std::string padded = value.empty() ? std::string(1, '\0') : value;
  if (!attr.ok() || H5Awrite(attr, type, padded.data()) < 0)
    fail("cannot write attribute '" + key + "'", object);
}

void File::set_attr(const std::string& object, const std::string& key, double value) {
  set_attr(object, key, std::vector<double>{value});
}

void File::set_attr(const std::string& object, const std::string& key, const std::vector<double>& v) {
  Handle obj(open_object(id_, object), H5Oclose);
  if (!obj.ok()) fail("no such object for attribute '" + key + "'", object);
  replace_attr(obj, key);
  hsize_t n = v.size();
  Handle space(n == 1 ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &n, nullptr), H5Sclose);
  Handle attr(H5Acreate2(obj, key.c_str(), H5T_NATIVE_DOUBLE, space, H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  if (!attr.ok() || (n > 0 && H5Awrite(attr, H5T_NATIVE_DOUBLE, v.data()) < 0))
    fail("cannot write attribute '" + key + "'", object);
}

bool File::has_attr(const std::string& object, const std::string& key) const {
  if (object != "/" && !has(object)) return false;
  Handle obj(open_object(id_, object), H5Oclose);
  return obj.ok() && H5Aexists(obj, key.c_str()) > 0;
}

std::string File::attr_string(const std::string& object, const std::string& key) const {
  if (!has_attr(object, key)) fail("missing attribute '" + key + "'", object);
  Handle obj(open_object(id_, object), H5Oclose);
  Handle attr(H5Aopen(obj, key.c_str(), H5P_DEFAULT), H5Aclose);
  Handle ftype(H5Aget_type(attr), H5Tclose);
  if (H5Tget_class(ftype) != H5T_STRING) fail("attribute '" + key + "' is not a string", object);
  if (H5Tis_variable_str(ftype) > 0) {  // written by h5py
    Handle mtype(H5Tcopy(H5T_C_S1), H5Tclose);
    H5Tset_size(mtype, H5T_VARIABLE);
    char* s = nullptr;
    H5Aread(attr, mtype, &s);
    std::string out = s ? s : "";
    H5free_memory(s);
    return out;
  }
  size_t size = H5Tget_size(ftype);
  std::string out(size, '\0');
  H5Aread(attr, ftype, out.data());
  out.resize(std::strlen(out.c_str()));
  return out;
}

std::vector<double> File::attr_doubles(const std::string& object, const std::string& key) const {
  if (!has_attr(object, key)) fail("missing attribute '" + key + "'", object);
  Handle obj(open_object(id_, object), H5Oclose);
  Handle attr(H5Aopen(obj, key.c_str(), H5P_DEFAULT), H5Aclose);
  Handle space(H5Aget_space(attr), H5Sclose);
  hssize_t n = H5Sget_simple_extent_npoints(space);
  std::vector<double> v(static_cast<size_t>(n));
  if (n > 0 && H5Aread(attr, H5T_NATIVE_DOUBLE, v.data()) < 0)
    fail("attribute '" + key + "' is not numeric", object);
  return v;
}

double File::attr_double(const std::string& object, const std::string& key) const {
  auto v = attr_doubles(object, key);
  if (v.size() != 1) fail("attribute '" + key + "' is not a scalar", object);
  return v[0];
}

int64_t File::attr_int(const std::string& object, const std::string& key, int64_t min, int64_t max) const {
  const double v = attr_double(object, key);
  // Compared as double before the conversion: a cast of NaN or of a value beyond int64 is undefined.
  // Beyond 2^53 a double is no longer every whole number, so that is the ceiling.
  const int64_t top = std::min(max, int64_t(1) << 53);
  if (!(v >= static_cast<double>(min) && v <= static_cast<double>(top) && v == std::floor(v)))
    fail("attribute '" + key + "' is " + std::to_string(v) + ", expected a whole number in [" +
             std::to_string(min) + ", " + std::to_string(top) + "]",
         object);
  return static_cast<int64_t>(v);
}

}  // namespace dsir::h5
