#pragma once
// The one upscale function (DSIR's preprocessing), used by the upscale stage for training data
// and on the fly by inference: bilinear resize exactly as skimage.transform.resize(order=1,
// mode='reflect', anti_aliasing=False) followed by a z-score.
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "pipeline/csv.h"
#include "pipeline/formats/raw_file.h"

namespace dsir {

class Config;

enum class Normalization { PerFrame, Global, None };
Normalization parse_normalization(const std::string& name);  // "per-frame" | "global" | "none"
std::string to_string(Normalization norm);

// Bilinear resize of a height x width frame by an integer factor: output pixel (r, c) samples the
// input at ((r + 0.5) / f - 0.5, (c + 0.5) / f - 0.5); outside the input the image is mirrored
// about the edge pixels (numpy's 'reflect', which skimage passes to scipy as 'mirror').
void resize_bilinear(const float* in, int height, int width, int factor, float* out);

// The same resize as a matrix, for batched upscaling on a device (U = A_h · frame · A_wᵀ): the
// (n·factor) x n row-major weights along one axis, two taps per row (summed where the mirror
// folds them onto one pixel).
std::vector<float> resize_matrix(int n, int factor);

// (x - mean) / std over the frame (population std, as numpy), in double precision.
void zscore(float* data, size_t n);

// DSIR's preprocessing for one frame: resize, then normalise. For Global, (x - mean) / std with
// the given dataset statistics of the raw frames.
void upscale_frame(const float* raw, int height, int width, int factor, Normalization norm,
                   double global_mean, double global_std, float* out);

// Adds weight x a unit 2-D Gaussian centred at (fx, fy) with the given sigma (pixels of the
// oh x ow image `out`; pixel (r, c) spans [c, c + 1) x [r, r + 1)), integrated over each pixel
// within reach_sigmas x sigma of the centre; the mass beyond that or beyond the image is lost.
void add_gaussian(double fx, double fy, double sigma, double weight, double reach_sigmas, int64_t oh,
                  int64_t ow, float* out);

enum class LabelMode { Dsir, DeepStorm, Gaussian };
LabelMode parse_label_mode(const std::string& name);  // "dsir" | "deepstorm" | "gaussian"

// Emitter map on the upscaled grid (height*factor x width*factor). DSIR: pixel
// (int(y·f/px), int(x·f/px)) set to 1. Deep-STORM: rounded position, counts add up. Gaussian:
// each emitter a 2-D Gaussian of sigma_px upscaled pixels at its exact position, integrated over
// each pixel (unit mass, cut at 4 sigma; mass beyond the field is lost), heat maps adding up.
// Emitters outside the field are dropped; returns how many were dropped.
uint64_t render_labels(const std::vector<Emitter>& emitters, int height, int width, int factor,
                       double pixel_size_nm, LabelMode mode, float* out, double sigma_px = 1.0);

// Training patches (Deep-STORM style): `count` random patch x patch windows of a height x width
// frame, as (row, column) origins. A function of (seed, frame) only, so any rank draws the same.
std::vector<std::pair<int, int>> patch_origins(uint64_t seed, uint64_t frame, int height, int width,
                                               int patch, int count);
// Patch k of that list alone (the same origin, without drawing the k before it).
std::pair<int, int> patch_origin(uint64_t seed, uint64_t frame, int height, int width, int patch, uint64_t k);
// Copies the window at (row0, col0) of size ph x pw out of a frame of width `width`.
void crop(const float* frame, int width, int row0, int col0, int ph, int pw, float* out);

// What a training item is (the upscale.* keys and run.seed): factor, normalisation, labels and
// whole frames or random patches of them.
struct ItemSpec {
  int factor = 8;
  Normalization normalize = Normalization::PerFrame;
  LabelMode labels = LabelMode::Dsir;
  double label_sigma_px = 1;
  int patch_size = 0;  // 0: whole frames
  uint64_t patches_per_frame = 1;
  uint64_t seed = 0;
};
ItemSpec item_spec(const Config& config);  // ConfigError naming the key

// The training items of a raw.h5, one definition for both their uses: the upscale stage writes
// them into upscaled.h5; training renders them on the fly when its input is a raw.h5 (a frame
// read is factor² times smaller than its upscaled item). Item i is patch i % per_frame() of frame
// i / per_frame(): its upscaled, normalised input and its label map.
class TrainingItems {
 public:
  // ConfigError when a patch exceeds the frames. Reads the ground truth (and, for the global
  // normalisation, every frame's statistics) once.
  TrainingItems(const RawFileReader& raw, const ItemSpec& spec);
  uint64_t count() const { return raw_.frames() * per_frame_; }
  uint64_t per_frame() const { return per_frame_; }
  int height() const { return item_height_ * spec_.factor; }  // of an upscaled item
  int width() const { return item_width_ * spec_.factor; }
  int raw_height() const { return item_height_; }  // of an item before the upscale
  int raw_width() const { return item_width_; }
  const ItemSpec& spec() const { return spec_; }
  double global_mean() const { return global_mean_; }  // 0 and 1 unless normalised globally
  double global_std() const { return global_std_; }
  // Item `item` from its frame's raw pixels (raw.height() x raw.width()) into height() x width()
  // inputs and labels; returns the emitters left out of the labels (outside the field or patch).
  uint64_t render(uint64_t item, const float* frame, float* input, float* label) const;
  // The same item with its input not upscaled: its raw_height() x raw_width() window of the
  // frame, for an upscale on the device that trains (upscale_batch); the labels as render's.
  uint64_t render_raw(uint64_t item, const float* frame, float* window, float* label) const;
  // The ground truth of item `item`, in nm from the item's corner (pixel k spans [k, k+1) raw
  // pixels): its frame's emitters, those outside the item included (the labels drop them).
  std::vector<Emitter> emitters(uint64_t item) const;

 private:
  std::pair<int, int> origin(uint64_t item) const;  // (row, column) of its corner in the frame

  const RawFileReader& raw_;
  ItemSpec spec_;
  uint64_t per_frame_ = 1;
  int item_height_ = 0, item_width_ = 0;  // raw pixels
  double global_mean_ = 0, global_std_ = 1;
  std::vector<Emitter> truth_;  // sorted by frame
};

}  // namespace dsir
