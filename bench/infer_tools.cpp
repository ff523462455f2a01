// Inputs and probes for bench/infer_bench.sh:
//   infer_tools make-model REF.h5 OUT.h5          DSIR's pretrained weights (PyTorch state dict in
//                                                 REF:/state_dict) as a dsir model (per-frame BN)
//   infer_tools make-stack OUT.h5 FRAMES SIZE     raw.h5 of Poisson(120) uint16 frames, as the peer
//                                                 draws them; 256 distinct frames, repeated
//   infer_tools memory SIZE [BATCH] [BN]          peak-RSS growth of one network call on SIZE x SIZE
//                                                 raw frames (x8), per upscaled pixel and frame
//   infer_tools read-rss RAW.h5                   reads every frame as infer does (RawFileReader, one
//                                                 frame per read), printing the peak RSS on the way
#include <ATen/ops/from_blob.h>
#include <ATen/ops/randn.h>
#include <sys/resource.h>
#include <torch/csrc/autograd/grad_mode.h>

#include <cstdio>
#include <random>
#include <string>

#include "pipeline/formats/raw_file.h"
#include "pipeline/h5store.h"
#include "pipeline/mpi_context.h"
#include "stages/train/models/checkpoint.h"
#include "stages/train/models/model_registry.h"
#include "stages/train/models/torch_setup.h"
#include "stages/upscale/upscale.h"

namespace {

double peak_rss_mib() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / 1024.0;
}

int make_model(const std::string& ref, const std::string& out) {
  auto model = dsir::make_model("dsir");
  dsir::load_state(dsir::h5::File::open(ref), "/state_dict", *model);
  dsir::ModelMeta meta;
  meta.arch = "dsir";
  meta.bn_mode = "per-frame";  // DSIR never calls eval()
  meta.label_scale = 1;
  meta.factor = 8;
  meta.raw_pixel_size_nm = 100;
  meta.normalize = "per-frame";
  dsir::save_checkpoint(out, *model, nullptr, meta, {{"source", ref}});
  return 0;
}

int make_stack(const std::string& out, uint64_t frames, int size) {
  std::mt19937 rng(1);
  std::poisson_distribution<int> p(120);
  const size_t px = static_cast<size_t>(size) * static_cast<size_t>(size);
  const uint64_t distinct = 256, block = 64;
  std::vector<uint16_t> pool(distinct * px);
  for (auto& v : pool) v = static_cast<uint16_t>(p(rng));
  auto f = dsir::h5::File::create(out, {{"camera", R"({"base_level": 0, "e_per_adu": 1, "em_gain": 0})"}});
  f.create_dataset("/frames", dsir::h5::DType::u16, {frames, uint64_t(size), uint64_t(size)},
                   {1, uint64_t(size), uint64_t(size)}, 0);
  std::vector<uint16_t> buf(block * px);
  for (uint64_t k = 0; k < frames; k += block) {
    const uint64_t n = std::min(block, frames - k);
    for (uint64_t i = 0; i < n; ++i)
      std::copy_n(pool.data() + ((k + i) % distinct) * px, px, buf.data() + i * px);
    f.write_rows("/frames", k, n, buf.data());
  }
  f.set_attr("/", "pixel_size_nm", 100.0);
  f.set_attr("/frames", "pixel_size_nm", 100.0);
  f.commit();
  return 0;
}

int memory(int size, int batch, const std::string& bn) {
  dsir::setup_torch_threads(1);
  auto model = dsir::make_model("dsir");
  model->eval();
  model->set_bn_mode(dsir::parse_bn_mode(bn));
  const int64_t s = int64_t(size) * 8;
  std::vector<float> up(static_cast<size_t>(batch * s * s), 0.5f);
  for (size_t i = 0; i < up.size(); i += 7) up[i] = 2.0f;
  torch::NoGradGuard no_grad;
  // A small call first: the libraries' own memory is not the network's.
  model->forward(at::randn({1, 1, 64, 64}));
  const double before = peak_rss_mib();
  auto y = model->forward(at::from_blob(up.data(), {batch, 1, s, s}, torch::kFloat));
  const double after = peak_rss_mib();
  const double bytes = (after - before) * 1024 * 1024 / (double(batch) * s * s);
  std::printf(
      "{\"raw_size\": %d, \"batch\": %d, \"bn\": \"%s\", \"peak_rss_before_mib\": %.1f, "
      "\"peak_rss_after_mib\": %.1f, \"bytes_per_upscaled_pixel\": %.1f}\n",
      size, batch, bn.c_str(), before, after, bytes);
  return y.numel() > 0 ? 0 : 1;
}

int read_rss(const std::string& path) {
  dsir::RawFileReader raw(path);
  const uint64_t n = raw.frames();
  double sum = 0;
  for (uint64_t k = 0, next = 1; k < n; ++k) {
    for (float v : raw.read(k, 1)) sum += v;
    if (k + 1 == next || k + 1 == n) {
      std::printf("{\"frames_read\": %llu, \"peak_rss_mib\": %.1f}\n", static_cast<unsigned long long>(k + 1),
                  peak_rss_mib());
      next *= 4;
    }
  }
  return sum > 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  dsir::MpiContext mpi(&argc, &argv);
  const std::string cmd = argc > 1 ? argv[1] : "";
  try {
    if (cmd == "make-model" && argc == 4) return make_model(argv[2], argv[3]);
    if (cmd == "make-stack" && argc == 5)
      return make_stack(argv[2], std::stoull(argv[3]), std::stoi(argv[4]));
    if (cmd == "read-rss" && argc == 3) return read_rss(argv[2]);
    if (cmd == "memory" && argc >= 3)
      return memory(std::stoi(argv[2]), argc > 3 ? std::stoi(argv[3]) : 1, argc > 4 ? argv[4] : "per-frame");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "infer_tools: %s\n", e.what());
    return 1;
  }
  std::fprintf(stderr,
               "usage: infer_tools make-model REF.h5 OUT.h5 | make-stack OUT.h5 FRAMES SIZE | "
               "memory SIZE [BATCH] [running|per-frame] | read-rss RAW.h5\n");
  return 2;
}
