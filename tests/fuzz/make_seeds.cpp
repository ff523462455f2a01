// Writes the binary seed corpora of tests/fuzz/corpus (TIFF and HDF5) with dsir's own writers,
// small (a few KB) so that they stay in the repository. Run by scripts/fuzz.sh --seeds; the text
// seeds (CSV, YAML) are kept by hand.
// usage: make_seeds CORPUS_DIR
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "pipeline/csv.h"
#include "pipeline/formats/shard_file.h"
#include "pipeline/h5store.h"
#include "pipeline/tiff.h"

namespace fs = std::filesystem;
using dsir::h5::DType;

namespace {

std::vector<dsir::Emitter> emitters(int64_t frames) {
  std::vector<dsir::Emitter> out;
  for (int64_t f = 0; f < frames; ++f) {
    dsir::Emitter e;
    e.frame = f;
    e.x_nm = 150 + 10 * f;
    e.y_nm = 220.5;
    e.sigma_nm = 110;
    e.photons = 900;
    out.push_back(e);
  }
  return out;
}

void raw_h5(const std::string& path, DType type) {
  auto f = dsir::h5::File::create(path, {{"dsir_version", "fuzz-seed"}});
  f.create_dataset("/frames", type, {3, 4, 5}, {1, 4, 5}, 0);
  std::vector<float> frame(20);
  for (uint64_t k = 0; k < 3; ++k) {
    for (size_t i = 0; i < frame.size(); ++i) frame[i] = float(100 + i + 7 * k);
    if (type == DType::u16) {
      std::vector<uint16_t> u(frame.begin(), frame.end());
      f.write_rows("/frames", k, 1, u.data());
    } else {
      f.write_rows("/frames", k, 1, frame.data());
    }
  }
  f.set_attr("/", "pixel_size_nm", 100.0);
  f.write_table("/emitters", dsir::emitters_to_table(emitters(3)), 0);
  f.commit();
}

void upscaled_h5(const std::string& path) {
  auto f = dsir::h5::File::create(path, {{"dsir_version", "fuzz-seed"}});
  std::vector<float> v(2 * 8 * 8, 0.5f);
  f.write("/inputs", v, {2, 8, 8});
  f.write("/labels", v, {2, 8, 8});
  f.set_attr("/", "factor", 4.0);
  f.set_attr("/", "raw_pixel_size_nm", 100.0);
  f.set_attr("/", "pixel_size_nm", 25.0);
  f.set_attr("/", "normalize", "per-frame");
  f.commit();
}

void checkpoint_h5(const std::string& path) {
  // With checksums, as stages/train/models/checkpoint.cpp writes them.
  auto f = dsir::h5::File::create(path, {{"dsir_version", "fuzz-seed"}}, dsir::h5::Checksum::fletcher32);
  f.write("/state/conv.weight", std::vector<float>(4, 0.25f), {1, 1, 2, 2});
  f.write("/optimizer/exp_avg/conv.weight", std::vector<float>(4, 0.f), {1, 1, 2, 2});
  f.set_attr("/optimizer", "step", 12.0);
  f.set_attr("/optimizer", "lr", 1e-3);
  f.set_attr("/", "arch", "dsir");
  f.set_attr("/", "bn_mode", "running");
  f.set_attr("/", "label_scale", 100.0);
  f.set_attr("/", "factor", 8.0);
  f.set_attr("/", "raw_pixel_size_nm", 100.0);
  f.set_attr("/", "normalize", "per-frame");
  f.set_attr("/", "epoch", 3.0);
  f.set_attr("/", "step", 12.0);
  f.set_attr("/", "val_loss", 0.5);
  f.set_attr("/", "step_in_epoch", 0.0);
  f.set_attr("/", "epochs_since_best", 1.0);
  f.commit();
}

// Through the shard's own writer; its identity is the one fuzz_shard_h5.cpp expects.
void shard_h5(const std::string& path) {
  dsir::Shard shard;
  dsir::ShardInfo& i = shard.info;
  i.source_file = "/data/raw.h5";
  i.source_stat = "100 bytes, modified 1.0";
  i.model_checksum = "0123456789abcdef";
  i.settings_hash = "fedcba9876543210";
  i.frame_range = "0:4";
  i.settings = "threshold=0.5";
  i.bn_mode = "running";
  i.threshold = "0.5";
  i.acquisition = "raw";
  i.first_frame = 0, i.frames = 4, i.acquisition_frames = 4;
  i.pixel_size_nm = 25, i.raw_pixel_size_nm = 100;
  i.raw_width = 2, i.raw_height = 2;
  shard.height = shard.width = 8;
  shard.sum.assign(8 * 8, 0.125);
  shard.localizations = emitters(4);
  dsir::write_shard(path, {{"dsir_version", "fuzz-seed"}}, shard);
}

template <class T>
void tiff(const std::string& path, dsir::tiff::WriteFormat format, dsir::tiff::Writer::Unit unit,
          int frames) {
  dsir::tiff::Writer w(path, 4, 3, format, 100, frames);
  w.set_unit(unit);
  std::vector<T> frame(12);
  for (int k = 0; k < frames; ++k) {
    for (size_t i = 0; i < frame.size(); ++i) frame[i] = T(10 * k + i);
    w.write_frame(frame.data());
  }
  w.commit();
}

// ImageJ's layout for stacks beyond 4 GiB, in miniature: one IFD, "images=3", the three 2x2
// 8-bit frames one after the other (tiff.cpp's contiguous reading). Bytes written by hand.
void imagej_contiguous(const std::string& path) {
  std::vector<uint8_t> b = {'I', 'I', 42, 0, 8, 0, 0, 0};
  auto u16 = [&](uint16_t v) { b.push_back(v & 0xff), b.push_back(v >> 8); };
  auto u32 = [&](uint32_t v) {
    for (int i = 0; i < 4; ++i) b.push_back((v >> (8 * i)) & 0xff);
  };
  const std::string desc = std::string("ImageJ=1.53t\nimages=3\n") + '\0';
  const uint32_t desc_at = 8 + 2 + 10 * 12 + 4, data_at = desc_at + uint32_t(desc.size());
  auto entry = [&](uint16_t tag, uint16_t type, uint32_t count, uint32_t value) {
    u16(tag), u16(type), u32(count), u32(value);
  };
  u16(10);
  entry(256, 3, 1, 2);                            // ImageWidth
  entry(257, 3, 1, 2);                            // ImageLength
  entry(258, 3, 1, 8);                            // BitsPerSample
  entry(259, 3, 1, 1);                            // Compression: none
  entry(262, 3, 1, 1);                            // Photometric: min is black
  entry(270, 2, uint32_t(desc.size()), desc_at);  // ImageDescription
  entry(273, 4, 1, data_at);                      // StripOffsets
  entry(277, 3, 1, 1);                            // SamplesPerPixel
  entry(278, 3, 1, 2);                            // RowsPerStrip
  entry(279, 4, 1, 4);                            // StripByteCounts: the first frame
  u32(0);                                         // no next IFD
  b.insert(b.end(), desc.begin(), desc.end());
  for (uint8_t v = 0; v < 12; ++v) b.push_back(v);
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char*>(b.data()), std::streamsize(b.size()));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_seeds CORPUS_DIR\n");
    return 2;
  }
  const fs::path dir = argv[1];
  for (const char* t : {"tiff", "raw_h5", "upscaled_h5", "checkpoint_h5", "shard_h5"})
    fs::create_directories(dir / t);
  using dsir::tiff::WriteFormat;
  using Unit = dsir::tiff::Writer::Unit;
  tiff<uint16_t>((dir / "tiff/u16-3frames-um.tif").string(), WriteFormat::U16, Unit::Micrometre, 3);
  tiff<float>((dir / "tiff/f32-1frame-nm.tif").string(), WriteFormat::F32, Unit::Nanometre, 1);
  imagej_contiguous((dir / "tiff/imagej-contiguous-u8.tif").string());
  raw_h5((dir / "raw_h5/u16.h5").string(), DType::u16);
  raw_h5((dir / "raw_h5/f32.h5").string(), DType::f32);
  upscaled_h5((dir / "upscaled_h5/upscaled.h5").string());
  checkpoint_h5((dir / "checkpoint_h5/checkpoint.h5").string());
  shard_h5((dir / "shard_h5/shard-00000.h5").string());
  return 0;
}
