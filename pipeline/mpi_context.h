#pragma once
// The MPI context: one per process, created by the driver (or the test main). Stages get it
// through the Context. Keeps <mpi.h> out of widely-included headers.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace dsir {

class MpiContext {
 public:
  MpiContext(int* argc, char*** argv);  // MPI_Init (singleton when not launched by mpirun)
  ~MpiContext();                        // MPI_Finalize
  MpiContext(const MpiContext&) = delete;
  MpiContext& operator=(const MpiContext&) = delete;

  static MpiContext& get();  // the process's context; throws if none was created

  int rank() const { return rank_; }
  int size() const { return size_; }
  int local_rank() const { return local_rank_; }
  bool is_root() const { return rank_ == 0; }
  // Started without mpirun or srun (Open MPI's "singleton").
  bool singleton() const { return singleton_; }

  void barrier() const;
  [[noreturn]] void abort(int code) const;

  // Collectives on the world communicator.
  void allreduce_sum(float* data, size_t n) const;
  void allreduce_sum(double* data, size_t n) const;
  double allreduce_max(double v) const;
  void broadcast(float* data, size_t n, int root = 0) const;
  // Non-blocking sum in place (MPI_Iallreduce); wait() completes it, test() makes progress.
  // n must fit an int (gradient buckets do).
  struct Request {
    void* handle = nullptr;  // MPI_Request, kept opaque here
  };
  Request iallreduce_sum(float* data, size_t n) const;
  void wait(Request& r) const;
  bool test(Request& r) const;
  void broadcast(std::string& s, int root = 0) const;
  // A sum on a communicator of its own: for collectives issued inside backward (SyncBatchNorm)
  // while gradient all-reduces are in flight on the world communicator, so the two sequences
  // never have to interleave identically.
  void allreduce_sum_aside(double* data, size_t n) const;
  // Point-to-point of byte buffers (used to stream chunks to the writer rank).
  void send_bytes(const std::string& bytes, int dest, int tag) const;
  std::string recv_bytes(int source, int tag) const;

  // Every rank's text, in rank order, on rank 0 (empty elsewhere): rank 0 reports for all.
  std::vector<std::string> gather_to_root(const std::string& text) const;

  // After an error, on each rank that has one: whether every rank reached an error within
  // `timeout_s` (agreed on a communicator of its own, so a rank still inside one of the stage's
  // collectives does not disturb it). If so (all_ranks), rank 0 holds every rank's message in
  // rank order and every rank the largest exit code: the job can end cleanly with one report.
  // If not, the error is one rank's and the caller aborts the job.
  struct SharedFailure {
    bool all_ranks = false;
    int code = 1;
    std::vector<std::string> messages;  // rank 0 only
  };
  SharedFailure fail_together(int code, const std::string& message, double timeout_s) const;

  std::string library_version() const;
  // The library reads and writes GPU memory itself (Open MPI built with CUDA support, asked at
  // run time); otherwise GPU buffers go through host copies.
  bool cuda_aware() const;

 private:
  int rank_ = 0;
  int size_ = 1;
  int local_rank_ = 0;
  bool singleton_ = false;
  struct Aside;
  std::unique_ptr<Aside> aside_;
};

// [begin, end) of n items for this rank: contiguous blocks, the first n % size ranks get one more.
struct Range {
  uint64_t begin = 0, end = 0;
  uint64_t size() const { return end - begin; }
};
Range block_range(uint64_t n, int rank, int size);

// Computes chunks 0..n_chunks-1 spread round-robin over the ranks and hands each result,
// in chunk order, to `consume` on rank 0. Memory stays bounded to a few chunks per rank.
// produce(chunk) runs on the owning rank; consume(chunk, bytes) runs on rank 0 only.
template <class Produce, class Consume>
void ordered_chunks_to_root(const MpiContext& mpi, uint64_t n_chunks, Produce&& produce, Consume&& consume) {
  for (uint64_t c = 0; c < n_chunks; ++c) {
    int owner = static_cast<int>(c % static_cast<uint64_t>(mpi.size()));
    if (owner == mpi.rank()) {
      std::string bytes = produce(c);
      if (mpi.is_root())
        consume(c, bytes);
      else
        mpi.send_bytes(bytes, 0, static_cast<int>(c % 32768));
    } else if (mpi.is_root()) {
      consume(c, mpi.recv_bytes(owner, static_cast<int>(c % 32768)));
    }
  }
}

// Dynamic assignment of items 0..n-1 (a rank-0 work queue): ranks ask rank 0 for the next item,
// so faster ranks take more. Rank 0 works on items too and answers requests whenever it calls
// next() or serve(); each other rank keeps one request ahead (asked for when it receives an
// item) so it rarely waits. Items are handed out in increasing order. Construct on every rank
// at the same point (it duplicates the world communicator, keeping its messages apart).
class WorkQueue {
 public:
  WorkQueue(const MpiContext& mpi, uint64_t items);
  ~WorkQueue();
  WorkQueue(const WorkQueue&) = delete;
  WorkQueue& operator=(const WorkQueue&) = delete;

  // The next item for this rank; false when none are left (on rank 0: once every other rank
  // has been told so and has reported its last units). `units_done`: work this rank finished
  // since its previous call, summed on rank 0 (for progress: frames, say).
  bool next(uint64_t* item, uint64_t units_done = 0);
  // Rank 0: answer the requests waiting now, without blocking (call it between pieces of long
  // work). No-op elsewhere.
  void serve();
  // Rank 0: units reported done by all ranks so far, its own included (0 elsewhere).
  uint64_t units_done() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dsir
