#pragma once
// A ThunderSTORM-style simulator: emitters drawn per frame (uniformly or along filaments,
// optionally weighted by a density mask), imaged with a symmetric Gaussian PSF, then through a
// camera model.
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "pipeline/csv.h"

namespace dsir::sim {

struct Camera {
  double pixel_size_nm = 100;
  double base_level = 100;  // ADU
  double e_per_adu = 1.0;   // photoelectrons per ADU
  double em_gain = 0;       // 0: no EM register
  double read_noise_e = 0;  // Gaussian, electrons RMS
  double quantum_efficiency = 1.0;
  double background_photons = 20;  // per pixel
};

// How a PSF becomes pixel values. Integrated: the Gaussian's mass inside each pixel (erf
// differences; the model and the default). Sampled: the Gaussian density at the pixel
// centre times the pixel area, as ThunderSTORM's generator renders its symmetric Gaussian PSF
// (SymmetricGaussianPSF.getValue at x + 0.5, y + 0.5); the Deep-STORM demo frames were made so
// (docs/simulator.md).
enum class PsfModel { Integrated, Sampled };

struct EmitterRanges {
  double fwhm_min_nm = 200, fwhm_max_nm = 300;
  double photons_min = 80, photons_max = 2050;
  PsfModel psf = PsfModel::Integrated;
};

enum class Structure { Uniform, Filaments };

struct FieldSpec {
  int width = 26, height = 26;   // pixels
  double density_per_um2 = 2.0;  // mean emitters per frame per µm²
  Structure structure = Structure::Uniform;
  int filaments = 8;
  // Filaments drawn anew for every frame (training sets: a network should learn that emitters lie
  // on lines, not where one acquisition's lines lie); otherwise one set for all frames.
  bool filaments_per_frame = false;
};

// Smooth random curves (microtubule-like) across a field, a polyline with 10 nm steps.
class Filaments {
 public:
  Filaments(const FieldSpec& field, double pixel_size_nm, uint64_t seed);
  // A point uniformly distributed along the total length (nm).
  std::pair<double, double> sample(std::mt19937_64& rng) const;
  const std::vector<std::vector<std::pair<double, double>>>& curves() const { return curves_; }

 private:
  std::vector<std::vector<std::pair<double, double>>> curves_;
  std::vector<double> cumulative_;                  // cumulative length over all segments
  std::vector<std::pair<size_t, size_t>> segment_;  // (curve, point index) for each segment
};

// The filaments of frame `frame` of a field with filaments_per_frame: its own, a function of
// (seed, frame) alone, so that a set's frames do not depend on which rank draws them.
Filaments frame_filaments(const FieldSpec& field, double pixel_size_nm, uint64_t seed, int64_t frame);

// Relative emitter density over the field, from an image (ThunderSTORM's "density mask"): the
// image is stretched over the field, its values divided by their maximum, and an emitter at a
// position is kept with the weight there. The mean count per frame is density x area x mean
// weight, as in ThunderSTORM (a Poisson count per mask pixel with mean density x area x weight).
class DensityMask {
 public:
  // `weights` row-major height x width, finite and >= 0 with a positive maximum; `source` names
  // it in errors.
  DensityMask(std::vector<double> weights, int width, int height, std::string source);
  // The first frame of a grayscale TIFF (8/16/32-bit unsigned or float). InputError naming the
  // file when it is unreadable, has several frames, negative or non-finite values, or is all 0.
  static DensityMask from_tiff(const std::string& path);

  // Weight in [0, 1] at a position given as fractions of the field's width and height.
  double weight_at(double fx, double fy) const;
  double mean_weight() const { return mean_; }
  int width() const { return width_; }
  int height() const { return height_; }

 private:
  std::vector<double> weights_;
  int width_, height_;
  double mean_ = 0;
};

// The random stream of one frame: depends on (seed, frame) only, so any rank computes any frame.
std::mt19937_64 frame_rng(uint64_t seed, int64_t frame);

// Expected photons per pixel from the emitters alone (no background), height x width row-major.
// Pixel (r, c) covers [c, c+1) x [r, r+1) in pixel units; emitters use their sigma_nm and photons,
// evaluated to at least 5 sigma around each emitter.
std::vector<double> render_expected(const std::vector<Emitter>& emitters, int width, int height,
                                    double pixel_size_nm, PsfModel psf = PsfModel::Integrated);

// Expected photons -> ADU: (+background) -> QE -> Poisson -> EM gain (Gamma) -> read noise ->
// /e_per_adu -> +base level -> round and clamp to uint16.
std::vector<uint16_t> apply_camera(const std::vector<double>& expected_photons, const Camera& cam,
                                   std::mt19937_64& rng);

// Variance (ADU²) of a pixel whose expected photon count (background included) is `photons`.
double model_variance_adu(double photons, const Camera& cam);

struct Frame {
  std::vector<uint16_t> pixels;
  std::vector<Emitter> emitters;
};

// One frame: a Poisson number of emitters with mean density x area (thinned by `mask` when given),
// positions uniform or on `filaments`, FWHM and photons uniform in `ranges`, then the camera.
Frame simulate_frame(const FieldSpec& field, const Camera& cam, const EmitterRanges& ranges,
                     const Filaments* filaments, uint64_t seed, int64_t frame,
                     const DensityMask* mask = nullptr);

}  // namespace dsir::sim
