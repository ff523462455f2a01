#include "stages/train/threshold.h"

#include "stages/evaluate/metrics.h"

namespace dsir {

const std::vector<double>& LocalizationScores::thresholds() {
  static const std::vector<double> c{0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.7, 1.0};
  return c;
}

// Around one emitter's mass in a 5x5 window of a trained DSIR net's map (0.5-0.6 on the dense
// filaments of docs/accuracy.md).
const std::vector<double>& LocalizationScores::emitter_masses() {
  static const std::vector<double> c{0, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 1.0, 1.25};
  return c;
}

LocalizationScores::LocalizationScores() : counts_(3 * thresholds().size() * emitter_masses().size(), 0.0) {}

size_t LocalizationScores::index(size_t threshold, size_t emitter_mass) const {
  return 3 * (threshold * emitter_masses().size() + emitter_mass);
}

void LocalizationScores::add(const std::vector<Peak>& peaks, const std::vector<Emitter>& emitters,
                             double width_nm, double height_nm) {
  std::vector<metrics::Point> truth;
  for (const Emitter& e : emitters)
    if (e.x_nm >= 0 && e.y_nm >= 0 && e.x_nm < width_nm && e.y_nm < height_nm)
      truth.push_back({0, e.x_nm, e.y_nm});
  std::vector<Emitter> localizations;
  for (size_t t = 0; t < thresholds().size(); ++t)
    for (size_t m = 0; m < emitter_masses().size(); ++m) {
      LocalizeOptions options;
      options.threshold = thresholds()[t];
      options.emitter_mass = emitter_masses()[m];
      localizations.clear();
      localizations_of_peaks(peaks, 0, options, localizations);
      std::vector<metrics::Point> kept;
      for (const Emitter& l : localizations) kept.push_back({0, l.x_nm, l.y_nm});
      const metrics::MatchResult r = metrics::match(kept, truth, kToleranceNm, metrics::Matching::Hungarian);
      counts_[index(t, m)] += static_cast<double>(r.tp);
      counts_[index(t, m) + 1] += static_cast<double>(r.fp);
      counts_[index(t, m) + 2] += static_cast<double>(r.fn);
    }
}

double LocalizationScores::jaccard(size_t threshold, size_t emitter_mass) const {
  const size_t i = index(threshold, emitter_mass);
  return metrics::jaccard_index(counts_[i], counts_[i + 1], counts_[i + 2]);
}

std::pair<size_t, size_t> LocalizationScores::best() const {
  // Emitter masses in order of preference on a tie: 0 (one per peak), then the largest first.
  std::vector<size_t> masses{0};
  for (size_t m = emitter_masses().size(); m-- > 1;) masses.push_back(m);
  std::pair<size_t, size_t> best{0, 0};
  for (size_t t = 0; t < thresholds().size(); ++t)
    for (size_t m : masses)
      if (jaccard(t, m) > jaccard(best.first, best.second) ||
          (jaccard(t, m) == jaccard(best.first, best.second) && t > best.first))
        best = {t, m};
  return best;
}

uint64_t LocalizationScores::emitters() const { return static_cast<uint64_t>(counts_[0] + counts_[2]); }

}  // namespace dsir
