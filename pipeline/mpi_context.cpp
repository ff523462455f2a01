#include "pipeline/mpi_context.h"

#include <mpi.h>
#if __has_include(<mpi-ext.h>)
#include <mpi-ext.h>  // Open MPI: MPIX_CUDA_AWARE_SUPPORT
#endif

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <limits>
#include <string>
#include <thread>

#include "pipeline/errors.h"

namespace dsir {
namespace {
MpiContext* g_context = nullptr;

int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v ? std::atoi(v) : fallback;
}

// Whether this process was started without mpirun or srun: neither has set its rank.
bool launched_alone() {
  for (const char* launched : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"})
    if (std::getenv(launched)) return false;
  return true;
}

// Open MPI 4 gives every process started without mpirun (a singleton) a session folder under one
// shared $TMPDIR/ompi.HOST.UID, which it creates if missing and removes when empty at exit,
// without guarding either against another process doing the same at that moment: singletons
// starting and ending together on a node without that folder (a fresh container, a test suite
// run in parallel, a job array) fail MPI_Init with "mkdir ... File exists" or "No such file or
// directory" (seen twice in one `make test` in a fresh podman container). A singleton of dsir
// therefore takes a top folder of its own, named by its pid, unless the user set one.
void private_session_folder() {
#if defined(OMPI_MAJOR_VERSION) && OMPI_MAJOR_VERSION < 5
  const char* tmp = std::getenv("TMPDIR");
  const std::string folder =
      std::string(tmp && *tmp ? tmp : "/tmp") + "/ompi.dsir." + std::to_string(static_cast<long>(getpid()));
  setenv("OMPI_MCA_orte_top_session_dir", folder.c_str(), 0);
#endif
}
}  // namespace

bool MpiContext::cuda_aware() const {
#if defined(MPIX_CUDA_AWARE_SUPPORT) && MPIX_CUDA_AWARE_SUPPORT
  return MPIX_Query_cuda_support() == 1;
#else
  return false;
#endif
}

struct MpiContext::Aside {
  MPI_Comm comm = MPI_COMM_NULL;
  MPI_Comm errors = MPI_COMM_NULL;  // only for agreeing on errors (fail_together)
};

MpiContext::MpiContext(int* argc, char*** argv) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  // Serialized: gradient hooks may call MPI from the autograd engine's thread (CUDA), never
  // concurrently with the main thread, which waits in backward().
  int provided = 0;
  if (!initialized) {
    singleton_ = launched_alone();
    if (singleton_) private_session_folder();
    MPI_Init_thread(argc, argv, MPI_THREAD_SERIALIZED, &provided);
  }
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &size_);
  // Which GPU a rank takes on a node: Open MPI and Slurm both say.
  local_rank_ = env_int("OMPI_COMM_WORLD_LOCAL_RANK", env_int("SLURM_LOCALID", 0));
  aside_ = std::make_unique<Aside>();
  MPI_Comm_dup(MPI_COMM_WORLD, &aside_->comm);
  MPI_Comm_dup(MPI_COMM_WORLD, &aside_->errors);
  g_context = this;
}

MpiContext::~MpiContext() {
  g_context = nullptr;
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) {
    MPI_Comm_free(&aside_->comm);
    MPI_Comm_free(&aside_->errors);
    MPI_Finalize();
  }
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

void MpiContext::allreduce_sum_aside(double* data, size_t n) const {
  in_pieces(data, n, [this](double* p, int k) {
    MPI_Allreduce(MPI_IN_PLACE, p, k, MPI_DOUBLE, MPI_SUM, aside_->comm);
  });
}
void MpiContext::allreduce_sum(float* data, size_t n) const {
  in_pieces(data, n,
            [](float* p, int k) { MPI_Allreduce(MPI_IN_PLACE, p, k, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD); });
}
void MpiContext::allreduce_sum(double* data, size_t n) const {
  in_pieces(data, n,
            [](double* p, int k) { MPI_Allreduce(MPI_IN_PLACE, p, k, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD); });
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

MpiContext::Request MpiContext::iallreduce_sum(float* data, size_t n) const {
  if (n > static_cast<size_t>(std::numeric_limits<int>::max()))
    throw Error("internal: iallreduce of more than 2^31 values");
  auto* req = new MPI_Request;
  MPI_Iallreduce(MPI_IN_PLACE, data, static_cast<int>(n), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, req);
  return Request{req};
}

void MpiContext::wait(Request& r) const {
  if (!r.handle) return;
  auto* req = static_cast<MPI_Request*>(r.handle);
  MPI_Wait(req, MPI_STATUS_IGNORE);
  delete req;
  r.handle = nullptr;
}

bool MpiContext::test(Request& r) const {
  if (!r.handle) return true;
  int done = 0;
  MPI_Test(static_cast<MPI_Request*>(r.handle), &done, MPI_STATUS_IGNORE);
  return done != 0;
}

void MpiContext::send_bytes(const std::string& bytes, int dest, int tag) const {
  unsigned long long n = bytes.size();
  MPI_Send(&n, 1, MPI_UNSIGNED_LONG_LONG, dest, tag, MPI_COMM_WORLD);
  in_pieces(bytes.data(), n,
            [dest, tag](const char* p, int k) { MPI_Send(p, k, MPI_CHAR, dest, tag, MPI_COMM_WORLD); });
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

MpiContext::SharedFailure MpiContext::fail_together(int code, const std::string& message,
                                                    double timeout_s) const {
  SharedFailure f;
  f.code = code;
  if (size_ == 1) {
    f.all_ranks = true;
    f.messages = {message};
    return f;
  }
  MPI_Request barrier;
  MPI_Ibarrier(aside_->errors, &barrier);
  const double deadline = MPI_Wtime() + timeout_s;
  int done = 0;
  while (true) {
    MPI_Test(&barrier, &done, MPI_STATUS_IGNORE);
    if (done || MPI_Wtime() > deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  if (!done) return f;  // a one-rank error: the caller aborts (the barrier cannot be cancelled)
  f.all_ranks = true;
  // Every rank is here: the messages to rank 0, the largest exit code to all.
  MPI_Allreduce(&code, &f.code, 1, MPI_INT, MPI_MAX, aside_->errors);
  int length = static_cast<int>(std::min<size_t>(message.size(), 1 << 20));
  std::vector<int> lengths(is_root() ? size_ : 0), offsets(is_root() ? size_ : 0);
  MPI_Gather(&length, 1, MPI_INT, lengths.data(), 1, MPI_INT, 0, aside_->errors);
  std::string all;
  if (is_root()) {
    for (int r = 0; r < size_; ++r) offsets[r] = r == 0 ? 0 : offsets[r - 1] + lengths[r - 1];
    all.resize(static_cast<size_t>(offsets.back() + lengths.back()));
  }
  MPI_Gatherv(message.data(), length, MPI_CHAR, all.data(), lengths.data(), offsets.data(), MPI_CHAR, 0,
              aside_->errors);
  if (is_root())
    for (int r = 0; r < size_; ++r) f.messages.push_back(all.substr(offsets[r], lengths[r]));
  return f;
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

namespace {
constexpr uint64_t kNoItem = std::numeric_limits<uint64_t>::max();
// A request carries the units finished since the previous one; a final report, sent after the
// answer "no more", carries the units of a rank's last item.
constexpr int kRequestTag = 1, kAnswerTag = 2, kFinalTag = 3;
}  // namespace

struct WorkQueue::Impl {
  MPI_Comm comm = MPI_COMM_NULL;
  int rank = 0, size = 1;
  uint64_t items = 0;
  bool exhausted = false;  // this rank has had its last answer
  // Rank 0 only.
  uint64_t next_item = 0, done_units = 0;
  int told_done = 0, final_reports = 0;  // other ranks told "no more"; their final reports

  void handle(const MPI_Status& st) {
    uint64_t units = 0;
    MPI_Recv(&units, 1, MPI_UINT64_T, st.MPI_SOURCE, st.MPI_TAG, comm, MPI_STATUS_IGNORE);
    done_units += units;
    if (st.MPI_TAG == kFinalTag) {
      ++final_reports;
      return;
    }
    const uint64_t item = next_item < items ? next_item++ : kNoItem;
    if (item == kNoItem) ++told_done;
    MPI_Send(&item, 1, MPI_UINT64_T, st.MPI_SOURCE, kAnswerTag, comm);
  }
  void serve_pending() {
    for (;;) {
      int waiting = 0;
      MPI_Status st;
      MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, comm, &waiting, &st);
      if (!waiting) return;
      handle(st);
    }
  }
};

WorkQueue::WorkQueue(const MpiContext& mpi, uint64_t items) : impl_(std::make_unique<Impl>()) {
  Impl& q = *impl_;
  q.rank = mpi.rank();
  q.size = mpi.size();
  q.items = items;
  MPI_Comm_dup(MPI_COMM_WORLD, &q.comm);
  if (q.rank != 0) {
    const uint64_t none = 0;  // the first request: nothing done yet
    MPI_Send(&none, 1, MPI_UINT64_T, 0, kRequestTag, q.comm);
  }
}

WorkQueue::~WorkQueue() {
  // Freed only after a normal end: unwinding from an error, other ranks may still send, and the
  // driver is about to abort the job anyway.
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (impl_->exhausted && !finalized && impl_->comm != MPI_COMM_NULL) MPI_Comm_free(&impl_->comm);
}

bool WorkQueue::next(uint64_t* item, uint64_t units_done) {
  Impl& q = *impl_;
  if (q.exhausted) return false;
  if (q.rank == 0) {
    q.done_units += units_done;
    q.serve_pending();
    if (q.next_item < q.items) {
      *item = q.next_item++;
      return true;
    }
    // Every other rank has one request outstanding until it is told "no more", then reports
    // its last units: wait for both, so units_done() ends exact.
    while (q.told_done < q.size - 1 || q.final_reports < q.size - 1) {
      MPI_Status st;
      MPI_Probe(MPI_ANY_SOURCE, MPI_ANY_TAG, q.comm, &st);
      q.handle(st);
    }
    q.exhausted = true;
    return false;
  }
  uint64_t answer = kNoItem;
  MPI_Recv(&answer, 1, MPI_UINT64_T, 0, kAnswerTag, q.comm, MPI_STATUS_IGNORE);
  if (answer == kNoItem) {
    MPI_Send(&units_done, 1, MPI_UINT64_T, 0, kFinalTag, q.comm);
    q.exhausted = true;
    return false;
  }
  // Ask for the following item now, reporting what was finished, so the answer is likely
  // waiting when this one is done.
  MPI_Send(&units_done, 1, MPI_UINT64_T, 0, kRequestTag, q.comm);
  *item = answer;
  return true;
}

void WorkQueue::serve() {
  if (impl_->rank == 0 && !impl_->exhausted) impl_->serve_pending();
}

uint64_t WorkQueue::units_done() const { return impl_->rank == 0 ? impl_->done_units : 0; }

}  // namespace dsir
