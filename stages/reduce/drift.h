#pragma once
// Drift correction of localizations by redundant cross-correlation (RCC; Wang et al. 2014,
// Opt. Express 22:15982): time bins rendered as histograms, every pair of bins cross-correlated,
// per-bin drift by least squares over all pairs with outlier pairs dropped, a cubic spline to
// every frame.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "pipeline/csv.h"

namespace dsir::drift {

struct Options {
  int bins = 10;               // time bins (RCC's segments)
  double pixel_nm = 5;         // histogram pixel of the fine correlation
  double max_drift_nm = 1000;  // largest drift between two bins that the search covers
  double rmax_nm = 20;         // pairs whose least-squares residual exceeds this are dropped
  size_t min_locs_per_bin = 100;
};

struct Estimate {
  std::vector<double> x_nm, y_nm;                     // per frame (0-based index), drift(frame 0) = 0
  std::vector<double> bin_frame, bin_x_nm, bin_y_nm;  // per bin: mean frame of its localizations, drift
  size_t pairs = 0, pairs_dropped = 0;
  double residual_rms_nm = 0;  // of the pairs kept, after the final solve
};

// One measured bin pair: bin j's localizations lie (rx, ry) from bin i's (i < j).
struct Pair {
  int i = 0, j = 0;
  double rx = 0, ry = 0;
  bool active = true;
};

struct PairSolution {
  std::vector<double> x_nm, y_nm;  // per bin, bin 0 at 0
  size_t dropped = 0;
  double residual_rms_nm = 0;  // of the pairs kept
};

// Least squares for the per-bin drift from D_j - D_i = (rx, ry) over the pairs, dropping the worst
// pair while its residual exceeds rmax_nm and the others still connect every bin (RCC's rmax).
// Error when the pairs do not connect all `bins`.
PairSolution solve_pairs(std::vector<Pair> pairs, int bins, double rmax_nm);

// Drift of `locs` (frames 0 .. frames-1) by RCC. InputError naming `where` when a bin has fewer
// than min_locs_per_bin localizations or no pair of bins correlates.
Estimate estimate_rcc(const std::vector<Emitter>& locs, uint64_t frames, const Options& options,
                      const std::string& where);

// Subtracts the drift of each localization's frame; keeps the input in x_raw_nm / y_raw_nm.
void apply(std::vector<Emitter>& locs, const Estimate& drift);

// drift.csv (frame 1-based as the localization CSV, drift_x_nm, drift_y_nm) and drift.png
// (drift x and y against frame), both atomic.
void write_csv(const std::string& path, const Estimate& drift);
void save_plot(const std::string& path, const Estimate& drift);

// What reduce does per acquisition (after merging, before any export) under reduce.drift: rcc:
// estimate (errors name `where`, the shard folder), apply, write <dir>/drift.{csv,png}; returns a
// log line. Under none: removes a drift.csv and drift.png an earlier rcc run left in <dir>,
// returns "".
std::string correct(std::vector<Emitter>& locs, uint64_t frames, const std::string& where,
                    const std::string& dir, const std::optional<Options>& rcc);

// Natural cubic spline through (t, v) evaluated at 0 .. n-1, extended linearly beyond the ends.
std::vector<double> spline(const std::vector<double>& t, const std::vector<double>& v, size_t n);

}  // namespace dsir::drift
