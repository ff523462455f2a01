#include "stages/train/threshold.h"

#include "stages/evaluate/metrics.h"

namespace dsir {

const std::vector<double>& ThresholdScores::candidates() {
  static const std::vector<double> c{0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.7, 1.0};
  return c;
}

ThresholdScores::ThresholdScores() : counts_(3 * candidates().size(), 0.0) {}

void ThresholdScores::add(const std::vector<Emitter>& localizations, const std::vector<Emitter>& emitters,
                          double width_nm, double height_nm) {
  std::vector<metrics::Point> truth;
  for (const Emitter& e : emitters)
    if (e.x_nm >= 0 && e.y_nm >= 0 && e.x_nm < width_nm && e.y_nm < height_nm)
      truth.push_back({0, e.x_nm, e.y_nm});
  for (size_t k = 0; k < candidates().size(); ++k) {
    std::vector<metrics::Point> kept;
    for (const Emitter& l : localizations)
      if (l.confidence >= candidates()[k]) kept.push_back({0, l.x_nm, l.y_nm});
    const metrics::MatchResult r = metrics::match(kept, truth, kToleranceNm, metrics::Matching::Hungarian);
    counts_[3 * k] += static_cast<double>(r.tp);
    counts_[3 * k + 1] += static_cast<double>(r.fp);
    counts_[3 * k + 2] += static_cast<double>(r.fn);
  }
}

double ThresholdScores::jaccard(size_t k) const {
  return metrics::jaccard_index(counts_[3 * k], counts_[3 * k + 1], counts_[3 * k + 2]);
}

size_t ThresholdScores::best() const {
  size_t best = 0;
  for (size_t k = 1; k < candidates().size(); ++k)
    if (jaccard(k) >= jaccard(best)) best = k;
  return best;
}

uint64_t ThresholdScores::emitters() const { return static_cast<uint64_t>(counts_[0] + counts_[2]); }

}  // namespace dsir
