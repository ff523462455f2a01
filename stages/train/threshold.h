#pragma once
// The localization threshold that suits a trained model. Training items are simulated, so their
// emitters are known: the model's maps of validation items are localized once at the lowest
// candidate threshold (a localization's mass decides only whether it is kept) and matched to the
// emitters at 50 nm for every candidate. The one with the best Jaccard index becomes the model's
// own (model.h5's localize_threshold; infer.threshold: auto). On dense data a fixed 0.3 cost the
// DSIR net a sixth of its JI@50 (0.322 against 0.387 at 0.1, docs/accuracy.md).
#include <cstdint>
#include <vector>

#include "pipeline/csv.h"

namespace dsir {

class ThresholdScores {
 public:
  static constexpr double kToleranceNm = 50;
  static const std::vector<double>& candidates();  // emitter masses, ascending

  ThresholdScores();
  // One item (its localizations, confidence = mass, at candidates().front() or lower, and its
  // emitters in the same coordinates; emitters outside width_nm x height_nm are left out).
  void add(const std::vector<Emitter>& localizations, const std::vector<Emitter>& emitters, double width_nm,
           double height_nm);
  // true positives, false positives, false negatives per candidate: sum them over ranks in place.
  std::vector<double>& counts() { return counts_; }
  double jaccard(size_t candidate) const;  // metrics::jaccard_index of the candidate's counts
  // The candidate with the best Jaccard index (the higher threshold on a tie: fewer false
  // positives for the same score; so the highest with nothing to match).
  size_t best() const;
  uint64_t emitters() const;  // summed: true positives + false negatives at any candidate

 private:
  std::vector<double> counts_;
};

}  // namespace dsir
