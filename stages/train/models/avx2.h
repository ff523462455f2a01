#pragma once
// What the hand-written CPU kernels share: the AVX2 target attribute (only the kernels are compiled
// for AVX2; callers check avx2_supported() first) and a few vector helpers.
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define DSIR_X86_KERNELS 1
#include <immintrin.h>
#define DSIR_AVX2 __attribute__((target("avx2,fma")))
#endif

namespace dsir {

// Whether this CPU runs the kernels (x86-64 with AVX2 and FMA).
inline bool avx2_supported() {
#ifdef DSIR_X86_KERNELS
  static const bool ok = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  }();
  return ok;
#else
  return false;
#endif
}

#ifdef DSIR_X86_KERNELS
namespace avx2 {

DSIR_AVX2 inline double horizontal_sum(__m256d v) {
  const __m128d s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
  return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
}
// In double: the eight lanes widened, then added.
DSIR_AVX2 inline double horizontal_sum(__m256 v) {
  return horizontal_sum(_mm256_add_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(v)),
                                      _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1))));
}

// The even and the odd elements of 16 consecutive floats (v0, v1), each in order.
DSIR_AVX2 inline __m256 in_order(__m256 v) {  // [0 1 4 5 | 2 3 6 7] -> [0 .. 7], in 64-bit pairs
  return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(v), 0xD8));
}
DSIR_AVX2 inline __m256 evens(__m256 v0, __m256 v1) { return in_order(_mm256_shuffle_ps(v0, v1, 0x88)); }
DSIR_AVX2 inline __m256 odds(__m256 v0, __m256 v1) { return in_order(_mm256_shuffle_ps(v0, v1, 0xDD)); }
// The inverse: 16 consecutive floats stored from their even and odd elements.
DSIR_AVX2 inline void interleave(__m256 even, __m256 odd, float* out) {
  const __m256 lo = _mm256_unpacklo_ps(even, odd), hi = _mm256_unpackhi_ps(even, odd);
  _mm256_storeu_ps(out, _mm256_permute2f128_ps(lo, hi, 0x20));
  _mm256_storeu_ps(out + 8, _mm256_permute2f128_ps(lo, hi, 0x31));
}

}  // namespace avx2
#endif

}  // namespace dsir
