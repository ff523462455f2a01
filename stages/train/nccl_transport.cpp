// The NCCL backend of the gradient all-reduce (built only when CMake finds NCCL and LibTorch has
// CUDA). The communicator's id is made on rank 0 and handed to the others over MPI; sums run on
// the current CUDA stream, ordered with the backward kernels around them, so nothing waits here.
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <nccl.h>

#include <cstring>

#include "pipeline/errors.h"
#include "stages/train/distributed.h"

namespace dsir {
namespace {

void check(ncclResult_t r, const char* what) {
  if (r != ncclSuccess) throw Error(std::string("NCCL: ") + what + ": " + ncclGetErrorString(r));
}

class NcclTransport : public BucketTransport {
 public:
  NcclTransport(const MpiContext& mpi, torch::Device device) : device_(device) {
    ncclUniqueId id;
    if (mpi.is_root()) check(ncclGetUniqueId(&id), "ncclGetUniqueId");
    std::string bytes(reinterpret_cast<const char*>(&id), sizeof id);
    mpi.broadcast(bytes, 0);
    std::memcpy(&id, bytes.data(), sizeof id);
    c10::cuda::CUDAGuard guard(device_.index());
    check(ncclCommInitRank(&comm_, mpi.size(), id, mpi.rank()), "ncclCommInitRank");
  }
  ~NcclTransport() override { ncclCommDestroy(comm_); }
  std::string name() const override { return "nccl"; }
  void start(size_t, torch::Tensor& flat) override {
    const auto stream = c10::cuda::getCurrentCUDAStream(device_.index());
    check(ncclAllReduce(flat.data_ptr<float>(), flat.data_ptr<float>(), static_cast<size_t>(flat.numel()),
                        ncclFloat, ncclSum, comm_, stream.stream()),
          "ncclAllReduce");
  }
  void finish(size_t, torch::Tensor&) override {}  // stream-ordered: later kernels see the sum

 private:
  torch::Device device_;
  ncclComm_t comm_ = nullptr;
};

}  // namespace

std::unique_ptr<BucketTransport> make_nccl_transport(const MpiContext& mpi, torch::Device device) {
  return std::make_unique<NcclTransport>(mpi, device);
}

}  // namespace dsir
