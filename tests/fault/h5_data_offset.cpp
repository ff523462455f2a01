// Where a dataset's data lies in its HDF5 file, for tests that corrupt it byte-wise:
// prints "OFFSET SIZE" (bytes) of its contiguous storage or of its first chunk.
// usage: h5_data_offset FILE DATASET
#include <hdf5.h>

#include <cstdio>

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s FILE DATASET\n", argv[0]);
    return 2;
  }
  const hid_t file = H5Fopen(argv[1], H5F_ACC_RDONLY, H5P_DEFAULT);
  const hid_t ds = file < 0 ? -1 : H5Dopen2(file, argv[2], H5P_DEFAULT);
  if (ds < 0) return 1;
  const hid_t dcpl = H5Dget_create_plist(ds);
  haddr_t offset = HADDR_UNDEF;
  hsize_t size = 0;
  if (H5Pget_layout(dcpl) == H5D_CHUNKED) {
    const hid_t space = H5Dget_space(ds);
    hsize_t origin[H5S_MAX_RANK];
    unsigned mask = 0;
    if (H5Dget_chunk_info(ds, space, 0, origin, &mask, &offset, &size) < 0) return 1;
  } else {
    offset = H5Dget_offset(ds);
    size = H5Dget_storage_size(ds);
  }
  if (offset == HADDR_UNDEF || size == 0) return 1;
  std::printf("%llu %llu\n", static_cast<unsigned long long>(offset), static_cast<unsigned long long>(size));
  return 0;
}
