#pragma once
// The localization settings that suit a trained model: the threshold and one emitter's mass
// (stages/infer/localize.h). Training items are simulated, so their emitters are known: the
// model's maps of validation items are searched for peaks once at the lowest candidate threshold
// and, for every pair of candidates, localized and matched to the emitters at 50 nm. The pair
// with the best Jaccard index becomes the model's own (model.h5's localize_threshold and
// localize_emitter_mass; infer.threshold and infer.emitter_mass: auto). On dense data a fixed
// threshold of 0.3 cost the DSIR net a sixth of its JI@50 (0.322 against 0.387 at 0.1), and one
// localization per peak missed the emitters that share a peak (docs/accuracy.md).
#include <cstdint>
#include <utility>
#include <vector>

#include "pipeline/csv.h"
#include "stages/infer/localize.h"

namespace dsir {

class LocalizationScores {
 public:
  static constexpr double kToleranceNm = 50;
  static const std::vector<double>& thresholds();      // emitter masses, ascending
  static const std::vector<double>& emitter_masses();  // ascending, 0 first: one localization per peak

  LocalizationScores();
  // One item (its peaks, found at thresholds().front() or lower, and its emitters in the same
  // coordinates; emitters outside width_nm x height_nm are left out).
  void add(const std::vector<Peak>& peaks, const std::vector<Emitter>& emitters, double width_nm,
           double height_nm);
  // true positives, false positives, false negatives per (threshold, emitter mass) pair, the
  // threshold's index major: sum them over ranks in place.
  std::vector<double>& counts() { return counts_; }
  double jaccard(size_t threshold, size_t emitter_mass) const;  // metrics::jaccard_index of the counts
  // The pair with the best Jaccard index; on a tie the higher threshold, then one localization per
  // peak or the larger emitter mass (fewer localizations for the same score).
  std::pair<size_t, size_t> best() const;
  uint64_t emitters() const;  // summed: true positives + false negatives of any pair

 private:
  size_t index(size_t threshold, size_t emitter_mass) const;
  std::vector<double> counts_;
};

}  // namespace dsir
