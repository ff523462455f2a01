#include "pipeline/mpi_context.h"

#include <mpi.h>

#include <cstdlib>
#include <limits>

#include "pipeline/errors.h"

namespace dsir {
namespace {
MpiContext* g_context = nullptr;

int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v ? std::atoi(v) : fallback;
}
}  // namespace

MpiContext::MpiContext(int* argc, char*** argv) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) MPI_Init(argc, argv);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &size_);
  // Which GPU a rank takes on a node: Open MPI and Slurm both say.
  local_rank_ = env_int("OMPI_COMM_WORLD_LOCAL_RANK", env_int("SLURM_LOCALID", 0));
  g_context = this;
}

MpiContext::~MpiContext() {
  g_context = nullptr;
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
}

MpiContext& MpiContext::get() {
  if (!g_context) throw Error("internal: MPI context not initialised");
  return *g_context;
}

void MpiContext::barrier() const { MPI_Barrier(MPI_COMM_WORLD); }

void MpiContext::abort(int code) const {
  MPI_Abort(MPI_COMM_WORLD, code);
  std::_Exit(code);
}

namespace {
// MPI counts are int: split large buffers.
template <class T, class F>
void in_pieces(T* data, size_t n, F&& f) {
  const size_t max_piece = static_cast<size_t>(std::numeric_limits<int>::max() / 2);
  for (size_t off = 0; off < n; off += max_piece)
    f(data + off, static_cast<int>(std::min(max_piece, n - off)));
}
}  // namespace

void MpiContext::allreduce_sum(float* data, size_t n) const {
  in_pieces(data, n, [](float* p, int k) {
    MPI_Allreduce(MPI_IN_PLACE, p, k, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
  });
}
void MpiContext::allreduce_sum(double* data, size_t n) const {
  in_pieces(data, n, [](double* p, int k) {
    MPI_Allreduce(MPI_IN_PLACE, p, k, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
  });
}
double MpiContext::allreduce_max(double v) const {
  double out = v;
  MPI_Allreduce(&v, &out, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  return out;
}
void MpiContext::broadcast(float* data, size_t n, int root) const {
  in_pieces(data, n, [root](float* p, int k) { MPI_Bcast(p, k, MPI_FLOAT, root, MPI_COMM_WORLD); });
}
void MpiContext::broadcast(std::string& s, int root) const {
  unsigned long long n = s.size();
  MPI_Bcast(&n, 1, MPI_UNSIGNED_LONG_LONG, root, MPI_COMM_WORLD);
  s.resize(n);
  in_pieces(s.data(), n, [root](char* p, int k) { MPI_Bcast(p, k, MPI_CHAR, root, MPI_COMM_WORLD); });
}

void MpiContext::send_bytes(const std::string& bytes, int dest, int tag) const {
  unsigned long long n = bytes.size();
  MPI_Send(&n, 1, MPI_UNSIGNED_LONG_LONG, dest, tag, MPI_COMM_WORLD);
  in_pieces(bytes.data(), n, [dest, tag](const char* p, int k) {
    MPI_Send(p, k, MPI_CHAR, dest, tag, MPI_COMM_WORLD);
  });
}

std::string MpiContext::recv_bytes(int source, int tag) const {
  unsigned long long n = 0;
  MPI_Recv(&n, 1, MPI_UNSIGNED_LONG_LONG, source, tag, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
  std::string bytes(n, '\0');
  in_pieces(bytes.data(), n, [source, tag](char* p, int k) {
    MPI_Recv(p, k, MPI_CHAR, source, tag, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
  });
  return bytes;
}

std::vector<std::string> MpiContext::gather_to_root(const std::string& text) const {
  std::vector<std::string> out;
  if (!is_root()) {
    send_bytes(text, 0, 32767);
    return out;
  }
  out.push_back(text);
  for (int r = 1; r < size_; ++r) out.push_back(recv_bytes(r, 32767));
  return out;
}

std::string MpiContext::library_version() const {
  char buf[MPI_MAX_LIBRARY_VERSION_STRING];
  int len = 0;
  MPI_Get_library_version(buf, &len);
  std::string s(buf, static_cast<size_t>(len));
  auto cut = s.find_first_of(",\n");
  return cut == std::string::npos ? s : s.substr(0, cut);
}

Range block_range(uint64_t n, int rank, int size) {
  uint64_t base = n / static_cast<uint64_t>(size), extra = n % static_cast<uint64_t>(size);
  uint64_t r = static_cast<uint64_t>(rank);
  Range out;
  out.begin = r * base + std::min(r, extra);
  out.end = out.begin + base + (r < extra ? 1 : 0);
  return out;
}

}  // namespace dsir
