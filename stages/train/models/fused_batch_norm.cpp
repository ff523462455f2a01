#include "stages/train/models/fused_batch_norm.h"

#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/csrc/autograd/grad_mode.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "pipeline/errors.h"
#include "pipeline/mpi_context.h"
#include "stages/train/models/avx2.h"
#include "stages/train/models/sync_batch_norm.h"

namespace dsir {

namespace {

// One channel's BatchNorm as (x - mean)·scale + shift.
struct ChannelNorm {
  float mean, scale, shift;
};
// One channel's input gradient as dy·scale + (x - mean)·slope + offset.
struct ChannelGrad {
  float mean, scale, slope, offset;
};
// A plane's gradient sums: Σ dy and Σ dy·(x - mean).
struct GradSums {
  double dy = 0, dy_centred = 0;
};

#ifdef DSIR_X86_KERNELS

using avx2::evens;
using avx2::horizontal_sum;
using avx2::interleave;
using avx2::odds;

// ReLU as torch.relu: NaN stays NaN (max_ps returns its second operand on NaN).
DSIR_AVX2 __m256 relu(__m256 v) { return _mm256_max_ps(_mm256_setzero_ps(), v); }
inline float relu(float v) { return v < 0.0f ? 0.0f : v; }

// n·mean and M2 + n·mean² of n floats (M2: the centred sum of squares), from sums of x - x[0] in
// double, so that planes (and ranks) combine without a second pass over the data.
DSIR_AVX2 void plane_moments(const float* x, int64_t n, double* n_mean, double* m2_plus) {
  if (n == 0) {
    *n_mean = *m2_plus = 0;
    return;
  }
  const double shift = x[0];
  const __m256d vshift = _mm256_set1_pd(shift);
  __m256d s1a = _mm256_setzero_pd(), s1b = s1a, s2a = s1a, s2b = s1a;
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    const __m256d lo = _mm256_sub_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(v)), vshift);
    const __m256d hi = _mm256_sub_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)), vshift);
    s1a = _mm256_add_pd(s1a, lo);
    s1b = _mm256_add_pd(s1b, hi);
    s2a = _mm256_fmadd_pd(lo, lo, s2a);
    s2b = _mm256_fmadd_pd(hi, hi, s2b);
  }
  double s1 = horizontal_sum(_mm256_add_pd(s1a, s1b)), s2 = horizontal_sum(_mm256_add_pd(s2a, s2b));
  for (; i < n; ++i) {
    const double d = x[i] - shift;
    s1 += d;
    s2 += d * d;
  }
  const double dn = static_cast<double>(n);
  *n_mean = dn * shift + s1;
  *m2_plus = (s2 - s1 * s1 / dn) + (*n_mean) * (*n_mean) / dn;
}

DSIR_AVX2 void bn_relu_plane(const float* x, int64_t n, ChannelNorm k, float* y) {
  const __m256 vm = _mm256_set1_ps(k.mean), va = _mm256_set1_ps(k.scale), vb = _mm256_set1_ps(k.shift);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(y + i, relu(_mm256_fmadd_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), vm), va, vb)));
  for (; i < n; ++i) y[i] = relu((x[i] - k.mean) * k.scale + k.shift);
}

// The four values of the 2x2 window at column col of rows a and b, normalised and rectified, in
// max_pool2d's scan order, with its first maximum.
struct Window {
  float centred[4], y[4];
  int arg = 0;
};
inline Window window(const float* row_a, const float* row_b, int64_t col, ChannelNorm k) {
  Window win;
  const float x[4] = {row_a[col], row_a[col + 1], row_b[col], row_b[col + 1]};
  for (int q = 0; q < 4; ++q) {
    win.centred[q] = x[q] - k.mean;
    win.y[q] = relu(win.centred[q] * k.scale + k.shift);
    if (win.y[q] > win.y[win.arg]) win.arg = q;
  }
  return win;
}

DSIR_AVX2 void bn_relu_pool_plane(const float* x, int64_t h, int64_t w, ChannelNorm k, float* out) {
  const int64_t ho = h / 2, wo = w / 2;
  const __m256 vm = _mm256_set1_ps(k.mean), va = _mm256_set1_ps(k.scale), vb = _mm256_set1_ps(k.shift);
  auto norm = [&](const float* p)
                  DSIR_AVX2 { return relu(_mm256_fmadd_ps(_mm256_sub_ps(_mm256_loadu_ps(p), vm), va, vb)); };
  for (int64_t i = 0; i < ho; ++i) {
    const float *ra = x + 2 * i * w, *rb = ra + w;
    float* o = out + i * wo;
    int64_t j = 0;
    for (; j + 8 <= wo; j += 8) {
      const __m256 v0 = _mm256_max_ps(norm(ra + 2 * j), norm(rb + 2 * j));
      const __m256 v1 = _mm256_max_ps(norm(ra + 2 * j + 8), norm(rb + 2 * j + 8));
      _mm256_storeu_ps(o + j, _mm256_max_ps(evens(v0, v1), odds(v0, v1)));
    }
    for (; j < wo; ++j) {
      const Window win = window(ra, rb, 2 * j, k);
      o[j] = win.y[win.arg];
    }
  }
}

// The gradient sums of relu(bn(x)) given dL/dy, over one plane.
DSIR_AVX2 GradSums bn_relu_sums(const float* x, const float* g, int64_t n, ChannelNorm k) {
  const __m256 vm = _mm256_set1_ps(k.mean), va = _mm256_set1_ps(k.scale), vb = _mm256_set1_ps(k.shift);
  const __m256 zero = _mm256_setzero_ps();
  GradSums sums;
  int64_t i = 0;
  while (i + 8 <= n) {
    // Float partial sums over at most 256 values, then double.
    __m256 f_dy = zero, f_dyc = zero;
    for (const int64_t end = std::min(n - n % 8, i + 256); i < end; i += 8) {
      const __m256 c = _mm256_sub_ps(_mm256_loadu_ps(x + i), vm);
      const __m256 positive = _mm256_cmp_ps(_mm256_fmadd_ps(c, va, vb), zero, _CMP_GT_OQ);
      const __m256 dy = _mm256_and_ps(_mm256_loadu_ps(g + i), positive);
      f_dy = _mm256_add_ps(f_dy, dy);
      f_dyc = _mm256_fmadd_ps(dy, c, f_dyc);
    }
    sums.dy += horizontal_sum(f_dy);
    sums.dy_centred += horizontal_sum(f_dyc);
  }
  for (; i < n; ++i) {
    const float c = x[i] - k.mean;
    if (c * k.scale + k.shift > 0) {
      sums.dy += g[i];
      sums.dy_centred += static_cast<double>(g[i]) * c;
    }
  }
  return sums;
}

DSIR_AVX2 void bn_relu_grad_plane(const float* x, const float* g, int64_t n, ChannelNorm k, ChannelGrad d,
                                  float* dx) {
  const __m256 vm = _mm256_set1_ps(k.mean), va = _mm256_set1_ps(k.scale), vb = _mm256_set1_ps(k.shift);
  const __m256 vs = _mm256_set1_ps(d.scale), vslope = _mm256_set1_ps(d.slope),
               voff = _mm256_set1_ps(d.offset);
  const __m256 zero = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 c = _mm256_sub_ps(_mm256_loadu_ps(x + i), vm);
    const __m256 positive = _mm256_cmp_ps(_mm256_fmadd_ps(c, va, vb), zero, _CMP_GT_OQ);
    const __m256 dy = _mm256_and_ps(_mm256_loadu_ps(g + i), positive);
    _mm256_storeu_ps(dx + i, _mm256_fmadd_ps(c, vslope, _mm256_fmadd_ps(dy, vs, voff)));
  }
  for (; i < n; ++i) {
    const float c = x[i] - k.mean;
    const float dy = c * k.scale + k.shift > 0 ? g[i] : 0.0f;
    dx[i] = c * d.slope + (dy * d.scale + d.offset);
  }
}

// Eight 2x2 windows (16 columns of rows a and b): each position's centred input and whether it is
// its window's first maximum, as max_pool2d chooses.
struct Windows8 {
  __m256 centred[4];  // a-even, a-odd, b-even, b-odd
  __m256 chosen[4];
};
DSIR_AVX2 Windows8 windows8(const float* ra, const float* rb, __m256 vm, __m256 va, __m256 vb) {
  Windows8 w;
  const __m256 a0 = _mm256_loadu_ps(ra), a1 = _mm256_loadu_ps(ra + 8);
  const __m256 b0 = _mm256_loadu_ps(rb), b1 = _mm256_loadu_ps(rb + 8);
  w.centred[0] = _mm256_sub_ps(evens(a0, a1), vm);
  w.centred[1] = _mm256_sub_ps(odds(a0, a1), vm);
  w.centred[2] = _mm256_sub_ps(evens(b0, b1), vm);
  w.centred[3] = _mm256_sub_ps(odds(b0, b1), vm);
  __m256 y[4];
  for (int q = 0; q < 4; ++q) y[q] = relu(_mm256_fmadd_ps(w.centred[q], va, vb));
  const __m256 m = _mm256_max_ps(_mm256_max_ps(y[0], y[1]), _mm256_max_ps(y[2], y[3]));
  // Only a positive maximum passes a gradient (ReLU's derivative is 0 at 0).
  __m256 open = _mm256_cmp_ps(m, _mm256_setzero_ps(), _CMP_GT_OQ);
  for (int q = 0; q < 4; ++q) {
    w.chosen[q] = _mm256_and_ps(open, _mm256_cmp_ps(y[q], m, _CMP_EQ_OQ));
    open = _mm256_andnot_ps(w.chosen[q], open);
  }
  return w;
}

DSIR_AVX2 GradSums bn_relu_pool_sums(const float* x, const float* g, int64_t h, int64_t w, ChannelNorm k) {
  const int64_t ho = h / 2, wo = w / 2;
  const __m256 vm = _mm256_set1_ps(k.mean), va = _mm256_set1_ps(k.scale), vb = _mm256_set1_ps(k.shift);
  GradSums sums;
  for (int64_t i = 0; i < ho; ++i) {
    const float *ra = x + 2 * i * w, *rb = ra + w, *gr = g + i * wo;
    __m256 f_dy = _mm256_setzero_ps(), f_dyc = f_dy;
    int64_t j = 0;
    for (; j + 8 <= wo; j += 8) {
      const Windows8 win = windows8(ra + 2 * j, rb + 2 * j, vm, va, vb);
      const __m256 gj = _mm256_loadu_ps(gr + j);
      for (int q = 0; q < 4; ++q) {
        const __m256 dy = _mm256_and_ps(gj, win.chosen[q]);
        f_dy = _mm256_add_ps(f_dy, dy);
        f_dyc = _mm256_fmadd_ps(dy, win.centred[q], f_dyc);
      }
    }
    sums.dy += horizontal_sum(f_dy);
    sums.dy_centred += horizontal_sum(f_dyc);
    for (; j < wo; ++j) {
      const Window win = window(ra, rb, 2 * j, k);
      if (win.y[win.arg] > 0) {
        sums.dy += gr[j];
        sums.dy_centred += static_cast<double>(gr[j]) * win.centred[win.arg];
      }
    }
  }
  return sums;
}

DSIR_AVX2 void bn_relu_pool_grad_plane(const float* x, const float* g, int64_t h, int64_t w, ChannelNorm k,
                                       ChannelGrad d, float* dx) {
  const int64_t ho = h / 2, wo = w / 2;
  const __m256 vm = _mm256_set1_ps(k.mean), va = _mm256_set1_ps(k.scale), vb = _mm256_set1_ps(k.shift);
  const __m256 vs = _mm256_set1_ps(d.scale), vslope = _mm256_set1_ps(d.slope),
               voff = _mm256_set1_ps(d.offset);
  // Inputs outside every window (an odd last row or column): dy = 0.
  auto outside = [&](int64_t r, int64_t col) {
    const int64_t at = r * w + col;
    dx[at] = (x[at] - k.mean) * d.slope + d.offset;
  };
  for (int64_t r = 0; r < h; ++r)
    for (int64_t col = r < 2 * ho ? 2 * wo : 0; col < w; ++col) outside(r, col);
  for (int64_t i = 0; i < ho; ++i) {
    const float *ra = x + 2 * i * w, *rb = ra + w, *gr = g + i * wo;
    float *da = dx + 2 * i * w, *db = da + w;
    int64_t j = 0;
    for (; j + 8 <= wo; j += 8) {
      const Windows8 win = windows8(ra + 2 * j, rb + 2 * j, vm, va, vb);
      const __m256 gj = _mm256_loadu_ps(gr + j);
      __m256 out[4];
      for (int q = 0; q < 4; ++q)
        out[q] = _mm256_fmadd_ps(win.centred[q], vslope,
                                 _mm256_fmadd_ps(_mm256_and_ps(gj, win.chosen[q]), vs, voff));
      interleave(out[0], out[1], da + 2 * j);
      interleave(out[2], out[3], db + 2 * j);
    }
    for (; j < wo; ++j) {
      const Window win = window(ra, rb, 2 * j, k);
      float* targets[4] = {da + 2 * j, da + 2 * j + 1, db + 2 * j, db + 2 * j + 1};
      for (int q = 0; q < 4; ++q) {
        const float dy = (q == win.arg && win.y[q] > 0) ? gr[j] : 0.0f;
        *targets[q] = win.centred[q] * d.slope + (dy * d.scale + d.offset);
      }
    }
  }
}

#endif  // DSIR_X86_KERNELS

struct Shape {
  int64_t n, c, h, w;
  explicit Shape(const torch::Tensor& x) : n(x.size(0)), c(x.size(1)), h(x.size(2)), w(x.size(3)) {}
  int64_t planes() const { return n * c; }
  int64_t plane() const { return h * w; }
};

// Runs f(p) for each of the shape's planes (n·c + channel), on LibTorch's threads.
template <class F>
void for_each_plane(const Shape& s, const F& f) {
  at::parallel_for(0, s.planes(), 1, [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) f(p);
  });
}

std::vector<ChannelNorm> channel_norms(const torch::Tensor& mean, const torch::Tensor& invstd,
                                       const torch::Tensor& weight, const torch::Tensor& bias) {
  const torch::Tensor w = weight.detach().to(torch::kDouble).contiguous(),
                      b = bias.detach().to(torch::kDouble).contiguous();
  std::vector<ChannelNorm> k(static_cast<size_t>(mean.numel()));
  for (size_t c = 0; c < k.size(); ++c)
    k[c] = {static_cast<float>(mean.data_ptr<double>()[c]),
            static_cast<float>(w.data_ptr<double>()[c] * invstd.data_ptr<double>()[c]),
            static_cast<float>(b.data_ptr<double>()[c])};
  return k;
}

class FusedBnReluFunction : public torch::autograd::Function<FusedBnReluFunction> {
 public:
  // mean and invstd (double, per channel) come in as computed over the batch (all ranks with sync).
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& weight, const torch::Tensor& bias,
                               const torch::Tensor& mean, const torch::Tensor& invstd, double count,
                               bool pool, bool sync) {
    ctx->save_for_backward({x, weight, bias});
    ctx->saved_data["mean"] = mean;
    ctx->saved_data["invstd"] = invstd;
    ctx->saved_data["count"] = count;
    ctx->saved_data["pool"] = pool;
    ctx->saved_data["sync"] = sync;
    const Shape s(x);
    const std::vector<ChannelNorm> k = channel_norms(mean, invstd, weight, bias);
    torch::Tensor y = at::empty(
        pool ? std::vector<int64_t>{s.n, s.c, s.h / 2, s.w / 2} : std::vector<int64_t>{s.n, s.c, s.h, s.w},
        x.options());
#ifdef DSIR_X86_KERNELS
    const float* in = x.data_ptr<float>();
    float* out = y.data_ptr<float>();
    const int64_t out_plane = y.numel() / std::max<int64_t>(1, s.planes());
    for_each_plane(s, [&](int64_t p) {
      const ChannelNorm& kc = k[static_cast<size_t>(p % s.c)];
      if (pool)
        bn_relu_pool_plane(in + p * s.plane(), s.h, s.w, kc, out + p * out_plane);
      else
        bn_relu_plane(in + p * s.plane(), s.plane(), kc, out + p * out_plane);
    });
#endif
    return y;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor &x = saved[0], &weight = saved[1], &bias = saved[2];
    const torch::Tensor mean = ctx->saved_data["mean"].toTensor(),
                        invstd = ctx->saved_data["invstd"].toTensor();
    const double count = ctx->saved_data["count"].toDouble();
    const bool pool = ctx->saved_data["pool"].toBool(), sync = ctx->saved_data["sync"].toBool();
    const torch::Tensor g = grads[0].contiguous();
    const Shape s(x);
    const std::vector<ChannelNorm> k = channel_norms(mean, invstd, weight, bias);
    torch::Tensor dx = at::empty_like(x);
#ifdef DSIR_X86_KERNELS
    const float *in = x.data_ptr<float>(), *gin = g.data_ptr<float>();
    const int64_t g_plane = g.numel() / std::max<int64_t>(1, s.planes());
    std::vector<GradSums> plane_sums(static_cast<size_t>(s.planes()));
    for_each_plane(s, [&](int64_t p) {
      const ChannelNorm& kc = k[static_cast<size_t>(p % s.c)];
      plane_sums[static_cast<size_t>(p)] =
          pool ? bn_relu_pool_sums(in + p * s.plane(), gin + p * g_plane, s.h, s.w, kc)
               : bn_relu_sums(in + p * s.plane(), gin + p * g_plane, s.plane(), kc);
    });
    // This rank's sums give the weight and bias gradients (the gradient reducer adds the ranks);
    // the global sums give the input gradient, which depends on every rank's frames.
    std::vector<double> local(2 * static_cast<size_t>(s.c), 0.0);
    for (int64_t p = 0; p < s.planes(); ++p) {
      local[static_cast<size_t>(p % s.c)] += plane_sums[static_cast<size_t>(p)].dy;
      local[static_cast<size_t>(s.c + p % s.c)] += plane_sums[static_cast<size_t>(p)].dy_centred;
    }
    std::vector<double> global = local;
    if (sync) MpiContext::get().allreduce_sum_aside(global.data(), global.size());
    const torch::Tensor w64 = weight.detach().to(torch::kDouble).contiguous();
    torch::Tensor grad_weight = at::empty({s.c}, torch::kDouble),
                  grad_bias = at::empty({s.c}, torch::kDouble);
    std::vector<ChannelGrad> d(static_cast<size_t>(s.c));
    for (int64_t c = 0; c < s.c; ++c) {
      const size_t i = static_cast<size_t>(c);
      const double inv = invstd.data_ptr<double>()[c], scale = w64.data_ptr<double>()[c] * inv;
      grad_weight.data_ptr<double>()[c] = local[s.c + i] * inv;
      grad_bias.data_ptr<double>()[c] = local[i];
      d[i] = {k[i].mean, static_cast<float>(scale),
              static_cast<float>(-scale * inv * inv * global[s.c + i] / count),
              static_cast<float>(-scale * global[i] / count)};
    }
    float* out = dx.data_ptr<float>();
    for_each_plane(s, [&](int64_t p) {
      const size_t c = static_cast<size_t>(p % s.c);
      if (pool)
        bn_relu_pool_grad_plane(in + p * s.plane(), gin + p * g_plane, s.h, s.w, k[c], d[c],
                                out + p * s.plane());
      else
        bn_relu_grad_plane(in + p * s.plane(), gin + p * g_plane, s.plane(), k[c], d[c], out + p * s.plane());
    });
#else
    throw Error("internal: fused BatchNorm backward without the x86-64 kernel");
#endif
    return {dx,
            grad_weight.to(weight.scalar_type()),
            grad_bias.to(bias.scalar_type()),
            torch::Tensor(),
            torch::Tensor(),
            torch::Tensor(),
            torch::Tensor(),
            torch::Tensor()};
  }
};

}  // namespace

bool fused_bn_relu_supported(const torch::Tensor& x) {
  return avx2_supported() && x.device().is_cpu() && x.scalar_type() == torch::kFloat && x.dim() == 4 &&
         x.is_contiguous();
}

torch::Tensor fused_bn_relu(torch::nn::BatchNorm2d& bn, const torch::Tensor& x, bool pool,
                            const MpiContext* sync) {
  if (!fused_bn_relu_supported(x))
    throw Error("internal: fused_bn_relu takes a contiguous float32 NCHW CPU tensor");
  const auto& o = bn->options;
  if (!o.affine() || !o.track_running_stats())
    throw Error("internal: fused_bn_relu needs an affine BatchNorm with running statistics");
  const Shape s(x);
  torch::Tensor mean = at::empty({s.c}, torch::kDouble), var = at::empty({s.c}, torch::kDouble);
  double count = 0;
#ifdef DSIR_X86_KERNELS
  {
    // Per-plane moments, combined per channel in plane order (same bits for any thread count).
    std::vector<double> n_mean(static_cast<size_t>(s.planes())), m2_plus(n_mean.size());
    const float* in = x.data_ptr<float>();
    for_each_plane(s, [&](int64_t p) {
      plane_moments(in + p * s.plane(), s.plane(), &n_mean[static_cast<size_t>(p)],
                    &m2_plus[static_cast<size_t>(p)]);
    });
    std::vector<double> sums(2 * static_cast<size_t>(s.c) + 1, 0.0);
    for (int64_t p = 0; p < s.planes(); ++p) {
      sums[static_cast<size_t>(p % s.c)] += n_mean[static_cast<size_t>(p)];
      sums[static_cast<size_t>(s.c + p % s.c)] += m2_plus[static_cast<size_t>(p)];
    }
    sums.back() = static_cast<double>(s.n * s.plane());
    if (sync) sync->allreduce_sum_aside(sums.data(), sums.size());
    count = sums.back();
    if (count < 2) throw Error("BatchNorm: fewer than 2 values per channel in the training batch");
    for (int64_t c = 0; c < s.c; ++c) {
      const double m = sums[static_cast<size_t>(c)] / count;
      mean.data_ptr<double>()[c] = m;
      var.data_ptr<double>()[c] = std::max(0.0, sums[static_cast<size_t>(s.c + c)] / count - m * m);
    }
  }
#endif
  {
    torch::NoGradGuard no_grad;
    update_running_statistics(bn, mean, var, count);
  }
  const torch::Tensor invstd = (var + o.eps()).rsqrt();
  return FusedBnReluFunction::apply(x, bn->weight, bn->bias, mean, invstd, count, pool, sync != nullptr);
}

}  // namespace dsir
