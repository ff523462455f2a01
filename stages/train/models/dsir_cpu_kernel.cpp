#include "stages/train/models/dsir_cpu_kernel.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <utility>

// Only the kernel's functions use AVX2 and FMA; no kernel is constructed where supported() is false.
#include "stages/train/models/avx2.h"

namespace dsir {

namespace {

int round8(int n) { return (n + 7) / 8 * 8; }

// Channels of one activation, each plane zero-padded by one pixel (the convolutions' padding)
// and with rows long enough for whole 8-float vectors: pixel (r, x) of channel c lies at
// row(c, r)[x + 1] for r in [-1, h], x in [-1, stride - 2].
struct Planes {
  float* data = nullptr;
  int channels = 0, h = 0, w = 0, stride = 0;
  size_t plane = 0;

  static size_t floats(int channels, int h, int w) {
    return static_cast<size_t>(channels) * static_cast<size_t>(h + 2) * static_cast<size_t>(round8(w) + 8);
  }
  Planes(std::vector<float>& storage, int c, int height, int width) : channels(c), h(height), w(width) {
    stride = round8(width) + 8;
    plane = static_cast<size_t>(h + 2) * static_cast<size_t>(stride);
    if (storage.size() < floats(c, h, w)) storage.assign(floats(c, h, w), 0.0f);
    data = storage.data();
    clear_border();
  }
  float* row(int c, int r) const {
    return data + static_cast<size_t>(c) * plane + static_cast<size_t>(r + 1) * stride;
  }
  // The padding reads as zero; the interior is written by the layer that fills these planes.
  void clear_border() {
    for (int c = 0; c < channels; ++c) {
      std::fill(row(c, -1), row(c, -1) + stride, 0.0f);
      std::fill(row(c, h), row(c, h) + stride, 0.0f);
      for (int r = 0; r < h; ++r) {
        row(c, r)[0] = 0.0f;
        std::fill(row(c, r) + w + 1, row(c, r) + stride, 0.0f);
      }
    }
  }
};

// Precision: DSIR's weights have channels whose standard deviation is a thousandth of their mean,
// so per-frame BatchNorm magnifies every rounding there. Each convolution therefore computes its
// output minus a shift near the channel's mean (bias - shift as the starting value, the shift
// from the input's means), so that sums, statistics and the normalisation all work on small
// numbers; BatchNorm and pooling are blind to the shift.
//
// A layer's BatchNorm per channel as (x - mean)·a + b on the shifted outputs x, from the frame's
// statistics (sums of x over n pixels) or from the running ones.
struct Affine {
  float mean, a, b;
};
void batchnorm_affine(const DsirCpuWeights::BatchNorm& bn, bool per_frame, int channels, const double* shift,
                      const double* sum, const double* sum_sq, double n, Affine* out) {
  for (int k = 0; k < channels; ++k) {
    double mean = bn.running_mean[k] - shift[k], var = bn.running_var[k];
    if (per_frame) {
      mean = sum[k] / n;
      var = std::max(0.0, sum_sq[k] / n - mean * mean);
    }
    out[k] = {static_cast<float>(mean), static_cast<float>(bn.weight[k] / std::sqrt(var + bn.eps)),
              bn.bias[k]};
  }
}

// Each output channel's shift: its mean over the frame but for the border's zero padding (the
// bias plus the input channels' means through the kernel's weights, averaged over the four
// phases of a transposed convolution), and the accumulators' starting value bias - shift.
void output_shifts(const DsirCpuWeights::Conv& conv, int in_channels, int out_channels, bool transposed,
                   const double* in_mean, double* shift, float* start) {
  const int taps = transposed ? 4 : 9;
  for (int co = 0; co < out_channels; ++co) {
    shift[co] = conv.bias[co];
    for (int ci = 0; ci < in_channels; ++ci) {
      const size_t first =
          static_cast<size_t>(transposed ? ci * out_channels + co : co * in_channels + ci) * taps;
      double weights = 0;
      for (int t = 0; t < taps; ++t) weights += conv.weight[first + t];
      shift[co] += weights / (transposed ? 4 : 1) * in_mean[ci];
    }
    start[co] = static_cast<float>(conv.bias[co] - shift[co]);
  }
}

// Weights broadcast to 8 lanes, so the FMAs take them from memory: wide[i * 8 + lane] = w[i].
std::vector<float> widen(const std::vector<float>& w) {
  std::vector<float> wide(w.size() * 8);
  for (size_t i = 0; i < w.size(); ++i) std::fill(wide.begin() + i * 8, wide.begin() + i * 8 + 8, w[i]);
  return wide;
}

#ifdef DSIR_X86_KERNELS

DSIR_AVX2 inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
  return _mm_cvtss_f32(s);
}

// One output row y of a 3x3 convolution (padding 1) for CO output channels, NX vectors of 8
// pixels at a time: out[co * out_stride + x] for x < round8(w). `wide` holds the CO channels'
// weights [co][ci][3][3], widened.
template <int CI, int CO, int NX>
DSIR_AVX2 void conv3x3_row(const Planes& in, int y, int first_vec, int vecs, const float* wide,
                           const float* bias, float* out, int out_stride) {
  for (int v = first_vec; v + NX <= vecs; v += NX) {
    __m256 acc[CO][NX];
    for (int co = 0; co < CO; ++co)
      for (int j = 0; j < NX; ++j) acc[co][j] = _mm256_set1_ps(bias[co]);
    for (int ci = 0; ci < CI; ++ci) {
      for (int ky = 0; ky < 3; ++ky) {
        const float* src = in.row(ci, y + ky - 1) + v * 8;  // column x - 1 of the first output pixel
        for (int kx = 0; kx < 3; ++kx) {
          for (int j = 0; j < NX; ++j) {
            const __m256 x = _mm256_loadu_ps(src + j * 8 + kx);
            for (int co = 0; co < CO; ++co) {
              const __m256 wv = _mm256_loadu_ps(wide + ((co * CI + ci) * 9 + ky * 3 + kx) * 8);
              acc[co][j] = _mm256_fmadd_ps(wv, x, acc[co][j]);
            }
          }
        }
      }
    }
    for (int co = 0; co < CO; ++co)
      for (int j = 0; j < NX; ++j) _mm256_storeu_ps(out + co * out_stride + (v + j) * 8, acc[co][j]);
  }
}

// All output channels of a convolution row, in groups of 8 (few channels: several vectors at once).
template <int CI, int CO>
DSIR_AVX2 void conv3x3_all(const Planes& in, int y, const float* wide, const float* bias, float* out,
                           int out_stride) {
  const int vecs = round8(in.w) / 8;
  if constexpr (CO >= 8) {
    for (int g = 0; g < CO; g += 8)
      conv3x3_row<CI, 8, 1>(in, y, 0, vecs, wide + g * CI * 9 * 8, bias + g, out + g * out_stride,
                            out_stride);
  } else {
    constexpr int NX = 8 / CO;
    const int whole = vecs / NX * NX;
    conv3x3_row<CI, CO, NX>(in, y, 0, whole, wide, bias, out, out_stride);
    conv3x3_row<CI, CO, 1>(in, y, whole, vecs, wide, bias, out, out_stride);
  }
}

// Sums of x and its square over x[0, n) into double accumulators.
DSIR_AVX2 void accumulate(const float* x, int n, double& sum, double& sum_sq) {
  __m256 s = _mm256_setzero_ps(), ss = _mm256_setzero_ps();
  int i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 d = _mm256_loadu_ps(x + i);
    s = _mm256_add_ps(s, d);
    ss = _mm256_fmadd_ps(d, d, ss);
  }
  float ts = hsum(s), tss = hsum(ss);
  for (; i < n; ++i) {
    const float d = x[i];
    ts += d;
    tss += d * d;
  }
  sum += ts;
  sum_sq += tss;
}

// relu((x - mean)·a + b) over n floats in place; returns their sum (the next layer's shift
// needs the mean).
DSIR_AVX2 double affine_relu(float* x, int n, Affine f) {
  const __m256 vm = _mm256_set1_ps(f.mean), va = _mm256_set1_ps(f.a), vb = _mm256_set1_ps(f.b);
  const __m256 zero = _mm256_setzero_ps();
  __m256 s = zero;
  int i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 y = _mm256_max_ps(_mm256_fmadd_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), vm), va, vb), zero);
    _mm256_storeu_ps(x + i, y);
    s = _mm256_add_ps(s, y);
  }
  double total = hsum(s);
  for (; i < n; ++i) {
    x[i] = std::max(0.0f, std::fma(x[i] - f.mean, f.a, f.b));
    total += x[i];
  }
  return total;
}

// Encoder layer: conv 3x3 + BatchNorm + ReLU + 2x2 max-pool in one pass over the output rows.
// Returns, per output channel, the mean of the activation written to `out` (h/2 x w/2).
template <int CI, int CO>
DSIR_AVX2 void encode(const Planes& in, const float* wide, const DsirCpuWeights::Conv& conv,
                      const DsirCpuWeights::BatchNorm& bn, bool per_frame, const double* in_mean, Planes& out,
                      std::vector<float>& scratch, double* out_mean) {
  const int h = in.h, w = in.w, ho = h / 2, wo = w / 2, w8 = round8(w);
  // Pooled maxima go straight to `out`, minima to `pmin` (rows as long as out's, so whole vectors
  // fit; what lands beyond the frame's columns is cleared at the end).
  const size_t pooled = static_cast<size_t>(ho) * static_cast<size_t>(out.stride);
  scratch.resize(static_cast<size_t>(2 * CO * w8) + CO * pooled);
  float* r0 = scratch.data();
  float* r1 = r0 + CO * w8;
  float* pmin = r1 + CO * w8;  // [co][ho][out.stride]

  // Shift: the convolution's mean over the frame, but for the border's zero padding.
  double shift[CO], sum[CO] = {}, sum_sq[CO] = {};
  float start[CO];
  output_shifts(conv, CI, CO, false, in_mean, shift, start);
  const int pair_vecs = w8 / 16;  // 16 inputs -> 8 pooled outputs
  for (int yo = 0; yo < ho; ++yo) {
    conv3x3_all<CI, CO>(in, 2 * yo, wide, start, r0, w8);
    conv3x3_all<CI, CO>(in, 2 * yo + 1, wide, start, r1, w8);
    for (int co = 0; co < CO; ++co) {
      float* a = r0 + co * w8;
      float* b = r1 + co * w8;
      accumulate(a, w, sum[co], sum_sq[co]);
      accumulate(b, w, sum[co], sum_sq[co]);
      for (int x = 0; x < w8; x += 8) {  // vertical pairs: max into a, min into b
        const __m256 va = _mm256_loadu_ps(a + x), vb = _mm256_loadu_ps(b + x);
        _mm256_storeu_ps(a + x, _mm256_max_ps(va, vb));
        _mm256_storeu_ps(b + x, _mm256_min_ps(va, vb));
      }
      float* pair_max = out.row(co, yo) + 1;
      float* pair_min = pmin + co * pooled + static_cast<size_t>(yo) * out.stride;
      int xo = 0;
      for (int k = 0; k < pair_vecs; ++k, xo += 8) {  // horizontal pairs of 16 columns
        const __m256 a0 = _mm256_loadu_ps(a + 16 * k), a1 = _mm256_loadu_ps(a + 16 * k + 8);
        const __m256 b0 = _mm256_loadu_ps(b + 16 * k), b1 = _mm256_loadu_ps(b + 16 * k + 8);
        // even/odd columns, lanes ordered [0 1 4 5 | 2 3 6 7] -> restored by the 64-bit permute
        const __m256 mx = _mm256_max_ps(_mm256_shuffle_ps(a0, a1, 0x88), _mm256_shuffle_ps(a0, a1, 0xDD));
        const __m256 mn = _mm256_min_ps(_mm256_shuffle_ps(b0, b1, 0x88), _mm256_shuffle_ps(b0, b1, 0xDD));
        _mm256_storeu_ps(pair_max + xo, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(mx), 0xD8)));
        _mm256_storeu_ps(pair_min + xo, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(mn), 0xD8)));
      }
      for (; xo < wo; ++xo) {
        pair_max[xo] = std::max(a[2 * xo], a[2 * xo + 1]);
        pair_min[xo] = std::min(b[2 * xo], b[2 * xo + 1]);
      }
    }
  }
  Affine norm[CO];
  batchnorm_affine(bn, per_frame, CO, shift, sum, sum_sq, static_cast<double>(h) * w, norm);
  // relu((x - m)·a + b) is monotone in x: its pooled maximum is at the max of x for a ≥ 0, the min for a < 0.
  for (int co = 0; co < CO; ++co) {
    double total = 0;
    for (int yo = 0; yo < ho; ++yo) {
      float* dst = out.row(co, yo) + 1;
      if (norm[co].a < 0)
        std::memcpy(dst, pmin + co * pooled + static_cast<size_t>(yo) * out.stride,
                    static_cast<size_t>(wo) * sizeof(float));
      total += affine_relu(dst, wo, norm[co]);
    }
    out_mean[co] = total / (static_cast<double>(ho) * wo);
  }
  out.clear_border();
}

// Decoder layer: transposed conv 2x2 stride 2 + BatchNorm + ReLU, into `out` (2h x 2w). Weights
// [ci][co][dy][dx] as PyTorch's ConvTranspose2d. Returns the output channels' means.
template <int CI, int CO>
DSIR_AVX2 void decode(const Planes& in, const DsirCpuWeights::Conv& conv, const DsirCpuWeights::BatchNorm& bn,
                      bool per_frame, const double* in_mean, Planes& out, std::vector<float>& scratch,
                      double* out_mean) {
  constexpr int G = 4;  // output channels per pass: 2 x G accumulators
  static_assert(CO % G == 0, "output channels in groups of 4");
  const int h = in.h, w = in.w, w8 = round8(w), vecs = w8 / 8;
  scratch.resize(static_cast<size_t>(2 * w8 + 16));
  float* line = scratch.data();
  double shift[CO], sum[CO] = {}, sum_sq[CO] = {};
  float start[CO];
  output_shifts(conv, CI, CO, true, in_mean, shift, start);
  for (int y = 0; y < h; ++y) {
    for (int dy = 0; dy < 2; ++dy) {
      for (int g = 0; g < CO; g += G) {
        // For each vector of 8 input columns: 16 output columns per channel.
        float* rows[G];
        for (int k = 0; k < G; ++k) rows[k] = out.row(g + k, 2 * y + dy) + 1;
        for (int v = 0; v < vecs; ++v) {
          __m256 acc0[G], acc1[G];
          for (int k = 0; k < G; ++k) acc0[k] = acc1[k] = _mm256_set1_ps(start[g + k]);
          for (int ci = 0; ci < CI; ++ci) {
            const __m256 x = _mm256_loadu_ps(in.row(ci, y) + 1 + v * 8);
            const float* wt = conv.weight.data() + (ci * CO + g) * 4 + dy * 2;
            for (int k = 0; k < G; ++k) {
              acc0[k] = _mm256_fmadd_ps(_mm256_set1_ps(wt[k * 4]), x, acc0[k]);
              acc1[k] = _mm256_fmadd_ps(_mm256_set1_ps(wt[k * 4 + 1]), x, acc1[k]);
            }
          }
          const bool whole = (v + 1) * 8 <= w;  // all 16 outputs inside the frame
          for (int k = 0; k < G; ++k) {
            const __m256 lo = _mm256_unpacklo_ps(acc0[k], acc1[k]);  // [x0 x0' x1 x1' | x4 x4' x5 x5']
            const __m256 hi = _mm256_unpackhi_ps(acc0[k], acc1[k]);  // [x2 x2' x3 x3' | x6 x6' x7 x7']
            float* dst = whole ? rows[k] + v * 16 : line;
            _mm256_storeu_ps(dst, _mm256_permute2f128_ps(lo, hi, 0x20));
            _mm256_storeu_ps(dst + 8, _mm256_permute2f128_ps(lo, hi, 0x31));
            if (!whole)
              std::memcpy(rows[k] + v * 16, line, static_cast<size_t>(2 * (w - v * 8)) * sizeof(float));
          }
        }
        for (int k = 0; k < G; ++k) accumulate(rows[k], 2 * w, sum[g + k], sum_sq[g + k]);
      }
    }
  }
  Affine norm[CO];
  batchnorm_affine(bn, per_frame, CO, shift, sum, sum_sq, 4.0 * h * w, norm);
  for (int co = 0; co < CO; ++co) {
    double total = 0;
    for (int r = 0; r < out.h; ++r) total += affine_relu(out.row(co, r) + 1, out.w, norm[co]);
    out_mean[co] = total / (static_cast<double>(out.h) * out.w);
  }
}

// Last layer: conv 3x3 to one channel + BatchNorm + ReLU, into the caller's h x w map.
DSIR_AVX2 void head(const Planes& in, const float* wide, const DsirCpuWeights::Conv& conv,
                    const DsirCpuWeights::BatchNorm& bn, bool per_frame, const double* in_mean, float* out,
                    std::vector<float>& scratch) {
  const int h = in.h, w = in.w, w8 = round8(w);
  scratch.resize(static_cast<size_t>(w8));
  double shift, sum = 0, sum_sq = 0;
  float start;
  output_shifts(conv, 8, 1, false, in_mean, &shift, &start);
  for (int y = 0; y < h; ++y) {
    conv3x3_all<8, 1>(in, y, wide, &start, scratch.data(), w8);
    float* dst = out + static_cast<size_t>(y) * w;
    std::memcpy(dst, scratch.data(), static_cast<size_t>(w) * sizeof(float));
    accumulate(dst, w, sum, sum_sq);
  }
  Affine norm;
  batchnorm_affine(bn, per_frame, 1, &shift, &sum, &sum_sq, static_cast<double>(h) * w, &norm);
  affine_relu(out, h * w, norm);
}

#endif  // DSIR_X86_KERNELS

void check_conv(const DsirCpuWeights::Conv& c, size_t weights, size_t biases, const char* name) {
  if (c.weight.size() != weights || c.bias.size() != biases)
    throw std::invalid_argument(std::string("DsirCpuKernel: ") + name + " has the wrong shape");
}

void check_bn(const DsirCpuWeights::BatchNorm& b, size_t n, const char* name) {
  if (b.weight.size() != n || b.bias.size() != n || b.running_mean.size() != n || b.running_var.size() != n)
    throw std::invalid_argument(std::string("DsirCpuKernel: ") + name + " has the wrong shape");
}

}  // namespace

DsirCpuKernel::DsirCpuKernel(DsirCpuWeights weights) : w_(std::move(weights)) {
  check_conv(w_.conv1, 16 * 1 * 9, 16, "conv1");
  check_conv(w_.conv2, 8 * 16 * 9, 8, "conv2");
  check_conv(w_.conv3, 8 * 8 * 9, 8, "conv3");
  check_conv(w_.conv4, 1 * 8 * 9, 1, "conv4");
  check_conv(w_.convt1, 8 * 8 * 4, 8, "convt1");
  check_conv(w_.convt2, 8 * 16 * 4, 16, "convt2");
  check_conv(w_.convt3, 16 * 8 * 4, 8, "convt3");
  check_bn(w_.bn1, 16, "bn1");
  check_bn(w_.bn2, 8, "bn2");
  check_bn(w_.bn4, 1, "bn4");
  if (!supported()) throw std::runtime_error("DsirCpuKernel: this CPU lacks AVX2/FMA");
  for (const auto* conv : {&w_.conv1, &w_.conv2, &w_.conv3, &w_.conv4}) {
    const std::vector<float> wide = widen(conv->weight);
    wide_offsets_.push_back(wide_.size());
    wide_.insert(wide_.end(), wide.begin(), wide.end());
  }
}

bool DsirCpuKernel::supported() { return avx2_supported(); }

void DsirCpuKernel::forward(const float* frame, int height, int width, float* out) {
  if (height % 8 != 0 || width % 8 != 0 || height <= 0 || width <= 0)
    throw std::invalid_argument("DsirCpuKernel: frames must be multiples of 8 pixels");
#ifdef DSIR_X86_KERNELS
  const bool pf = w_.per_frame_bn;
  const int h = height, w = width;

  Planes input(buf_a_, 1, h, w);
  double mean0 = 0, sum_sq0 = 0;
  for (int r = 0; r < h; ++r) {
    std::memcpy(input.row(0, r) + 1, frame + static_cast<size_t>(r) * w,
                static_cast<size_t>(w) * sizeof(float));
    accumulate(frame + static_cast<size_t>(r) * w, w, mean0, sum_sq0);
  }
  mean0 /= static_cast<double>(h) * w;

  double m1[16], m2[8], m3[8], d1[8], d2[16], d3[8];
  Planes p1(buf_b_, 16, h / 2, w / 2);
  encode<1, 16>(input, wide_.data() + wide_offsets_[0], w_.conv1, w_.bn1, pf, &mean0, p1, scratch_, m1);
  Planes p2(buf_a_, 8, h / 4, w / 4);
  encode<16, 8>(p1, wide_.data() + wide_offsets_[1], w_.conv2, w_.bn2, pf, m1, p2, scratch_, m2);
  Planes p3(buf_b_, 8, h / 8, w / 8);
  encode<8, 8>(p2, wide_.data() + wide_offsets_[2], w_.conv3, w_.bn2, pf, m2, p3, scratch_, m3);
  Planes u1(buf_a_, 8, h / 4, w / 4);
  decode<8, 8>(p3, w_.convt1, w_.bn2, pf, m3, u1, scratch_, d1);
  Planes u2(buf_b_, 16, h / 2, w / 2);
  decode<8, 16>(u1, w_.convt2, w_.bn1, pf, d1, u2, scratch_, d2);
  Planes u3(buf_a_, 8, h, w);
  decode<16, 8>(u2, w_.convt3, w_.bn2, pf, d2, u3, scratch_, d3);
  head(u3, wide_.data() + wide_offsets_[3], w_.conv4, w_.bn4, pf, d3, out, scratch_);
#else
  (void)frame, (void)out;
  throw std::runtime_error("DsirCpuKernel: built without the x86-64 kernel");
#endif
}

}  // namespace dsir
