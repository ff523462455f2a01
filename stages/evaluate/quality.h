#pragma once
// Quality of localizations without ground truth: FRC resolution (Nieuwenhuizen et al. 2013, Nat.
// Methods 10:557) and NeNA localization precision (Endesfelder et al. 2014, Histochem. Cell Biol.
// 141:629).
#include <complex>
#include <cstdint>
#include <string>
#include <vector>

#include "stages/evaluate/metrics.h"

namespace dsir::quality {

struct FrcOptions {
  double pixel_nm = 5;       // histogram pixel (coarsened when the field needs more than max_size)
  int64_t block_frames = 1;  // halves: odd/even blocks of this many frames (1 = odd/even frames)
  int max_size = 4096;       // largest FFT side
  size_t min_per_half = 100;
};

struct FrcResult {
  bool defined = false;
  std::string why;  // when not defined
  double resolution_nm = 0;
  double crossing_per_nm = 0;  // spatial frequency where the smoothed curve first drops below 1/7
  double pixel_nm = 0;         // used (may be coarser than asked)
  int size = 0;                // FFT side (pixels)
  uint64_t half_a = 0, half_b = 0;
  std::vector<double> q_per_nm, frc, frc_smooth;  // per ring, rings 1 .. size/2 - 1
};

// FRC of two histogram images of the localizations split into odd/even frame blocks: per ring of
// spatial frequency q, Re(sum F1 F2*) / sqrt(sum |F1|^2 sum |F2|^2); smoothed over rings; the
// resolution is 1 / q at the first crossing of 1/7.
FrcResult frc(const std::vector<metrics::Point>& locs, const FrcOptions& options = {});

struct NenaOptions {
  double max_nm = 150;  // neighbours farther than this are not pairs
  double bin_nm = 1;
  size_t min_pairs = 100;
};

struct NenaResult {
  bool defined = false;
  std::string why;
  double sigma_nm = 0;
  uint64_t pairs = 0;
  double pair_fraction = 0;                  // of the histogram explained by the NeNA term
  std::vector<double> d_nm, histogram, fit;  // bin centres, counts, fitted counts
};

// Distances from each localization to its nearest neighbour in the next frame, histogrammed and
// fitted with A (d / (2 s^2)) exp(-d^2 / (4 s^2)) + C d (the pair term of the paper's fit and a
// linear term for unrelated neighbours, A, C >= 0) by least squares; sigma_NeNA = s.
NenaResult nena(const std::vector<metrics::Point>& locs, const NenaOptions& options = {});

// frc.png (FRC and smoothed FRC against spatial frequency, the 1/7 line and the crossing) and
// nena.png (histogram and fit).
void save_frc_plot(const std::string& path, const FrcResult& r);
void save_nena_plot(const std::string& path, const NenaResult& r);

// 2-D FFT of an n x n row-major complex image, in place; n a power of two.
void fft2(std::vector<std::complex<double>>& data, int n);

}  // namespace dsir::quality
