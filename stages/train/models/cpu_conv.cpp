#include "stages/train/models/cpu_conv.h"

#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/enum.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "pipeline/errors.h"
#include "stages/train/models/avx2.h"

namespace dsir {

namespace {

int64_t round8(int64_t n) { return (n + 7) / 8 * 8; }

// The three input rows r - 1, r, r + 1 of every channel of one frame that a 3x3 convolution's
// output row r reads, each with a zero pixel either side and room for whole vectors past the
// end (rows outside the frame read as zeros). Moving down one row copies one row per channel, so
// the input is copied once, into a few KiB that stay in the L1 cache.
class RowWindow {
 public:
  RowWindow(int64_t channels, int64_t h, int64_t w)
      : channels_(channels),
        h_(h),
        w_(w),
        stride_(round8(w) + 8),
        data_(static_cast<size_t>(channels * 3 * stride_), 0.0f) {}

  // Places the window on output row r of the frame whose planes start at frame.
  void move_to(const float* frame, int64_t r) {
    if (frame == frame_ && r == row_ + 1) {
      load(r + 1);
    } else {
      frame_ = frame;
      for (int64_t k = r - 1; k <= r + 1; ++k) load(k);
    }
    row_ = r;
  }
  // Channel i's input row r - 1 + ky; element c is pixel c - 1.
  const float* row(int64_t i, int ky) const { return data_.data() + (i * 3 + slot(row_ - 1 + ky)) * stride_; }

 private:
  static int64_t slot(int64_t input_row) { return (input_row + 1) % 3; }  // input_row >= -1
  void load(int64_t input_row) {
    for (int64_t i = 0; i < channels_; ++i) {
      float* dst = data_.data() + (i * 3 + slot(input_row)) * stride_ + 1;
      if (input_row >= 0 && input_row < h_)
        std::memcpy(dst, frame_ + (i * h_ + input_row) * w_, static_cast<size_t>(w_) * sizeof(float));
      else
        std::fill(dst, dst + w_, 0.0f);
    }
  }
  int64_t channels_, h_, w_, stride_;
  std::vector<float> data_;
  const float* frame_ = nullptr;
  int64_t row_ = -2;
};

#ifdef DSIR_X86_KERNELS

using avx2::horizontal_sum;

// Output channels [o0, o0 + OB) of the window's row, columns [c0, c0 + 8·PV): the bias plus every
// input channel's nine taps; weight [cout][cin][3][3]; out: the frame's output row r planes.
template <int OB, int PV>
DSIR_AVX2 void conv_block(const RowWindow& in, int64_t cin, const float* weight, const float* bias,
                          int64_t o0, int64_t c0, float* out, int64_t plane, int64_t w) {
  // The bias is added last: DSIR's layers have biases far larger than the spread of the sums,
  // and adding small products to a large start loses the digits per-frame BatchNorm magnifies.
  __m256 acc[OB][PV];
  for (auto& a : acc)
    for (auto& p : a) p = _mm256_setzero_ps();
  for (int64_t i = 0; i < cin; ++i)
    for (int ky = 0; ky < 3; ++ky) {
      // Output column c takes input column c + kx - 1: element c + kx of the window's row.
      const float* base = in.row(i, ky) + c0;
      for (int kx = 0; kx < 3; ++kx) {
        __m256 x[PV];
        for (int p = 0; p < PV; ++p) x[p] = _mm256_loadu_ps(base + kx + 8 * p);
        for (int ob = 0; ob < OB; ++ob) {
          const __m256 wv = _mm256_broadcast_ss(weight + ((o0 + ob) * cin + i) * 9 + ky * 3 + kx);
          for (int p = 0; p < PV; ++p) acc[ob][p] = _mm256_fmadd_ps(wv, x[p], acc[ob][p]);
        }
      }
    }
  for (int ob = 0; ob < OB; ++ob) {
    float* row = out + (o0 + ob) * plane;
    const __m256 b = _mm256_set1_ps(bias ? bias[o0 + ob] : 0.0f);
    for (int p = 0; p < PV; ++p) {
      acc[ob][p] = _mm256_add_ps(acc[ob][p], b);
      const int64_t c = c0 + 8 * p;
      if (c + 8 <= w) {
        _mm256_storeu_ps(row + c, acc[ob][p]);
      } else {
        alignas(32) float tail[8];
        _mm256_store_ps(tail, acc[ob][p]);
        std::memcpy(row + c, tail, static_cast<size_t>(w - c) * sizeof(float));
      }
    }
  }
}

// Adds one row's contribution to the nine weight gradients of input channel i and one output
// channel whose gradient row is g (whole vectors, zero past the width): Σ g·x into acc, nine
// float vectors (9 x 8 floats), which the caller empties into double every few rows.
DSIR_AVX2 void weight_grad_row(const RowWindow& in, int64_t i, const float* g, int64_t vectors, float* acc) {
  __m256 a[9];
  for (int t = 0; t < 9; ++t) a[t] = _mm256_loadu_ps(acc + 8 * t);
  for (int64_t v = 0; v < vectors; ++v) {
    const __m256 gv = _mm256_loadu_ps(g + 8 * v);
    for (int ky = 0; ky < 3; ++ky) {
      const float* x = in.row(i, ky) + 8 * v;
      for (int kx = 0; kx < 3; ++kx)
        a[ky * 3 + kx] = _mm256_fmadd_ps(gv, _mm256_loadu_ps(x + kx), a[ky * 3 + kx]);
    }
  }
  for (int t = 0; t < 9; ++t) _mm256_storeu_ps(acc + 8 * t, a[t]);
}

// Adds a gradient row (whole vectors, zero past the width) into acc (8 floats): the bias gradient.
DSIR_AVX2 void row_sum(const float* g, int64_t vectors, float* acc) {
  __m256 a = _mm256_loadu_ps(acc);
  for (int64_t v = 0; v < vectors; ++v) a = _mm256_add_ps(a, _mm256_loadu_ps(g + 8 * v));
  _mm256_storeu_ps(acc, a);
}

// Transposed 2x2 stride-2 convolution: out[o][2r + a][2c + b] = bias[o] + Σ_i w[i][o][a][b]·x[i][r][c].

// One input row r of one frame, output channel o, columns [c0, c0 + 8·PV): both output rows 2r
// and 2r + 1. x: the frame's input planes; out: the frame's output planes (2h x 2w).
template <int PV>
DSIR_AVX2 void transpose_block(const float* x, int64_t cin, int64_t h, int64_t w, const float* weight,
                               int64_t cout, const float* bias, int64_t o, int64_t r, int64_t c0,
                               float* out) {
  __m256 acc[2][2][PV];  // [a][b][p]; the bias is added last, as in conv_block
  for (auto& a : acc)
    for (auto& b : a)
      for (auto& p : b) p = _mm256_setzero_ps();
  for (int64_t i = 0; i < cin; ++i) {
    __m256 xv[PV];
    for (int p = 0; p < PV; ++p) xv[p] = _mm256_loadu_ps(x + (i * h + r) * w + c0 + 8 * p);
    const float* wio = weight + (i * cout + o) * 4;
    for (int a = 0; a < 2; ++a)
      for (int b = 0; b < 2; ++b) {
        const __m256 wv = _mm256_broadcast_ss(wio + 2 * a + b);
        for (int p = 0; p < PV; ++p) acc[a][b][p] = _mm256_fmadd_ps(wv, xv[p], acc[a][b][p]);
      }
  }
  const __m256 b0 = _mm256_set1_ps(bias ? bias[o] : 0.0f);
  for (int a = 0; a < 2; ++a) {
    float* row = out + (o * 2 * h + 2 * r + a) * 2 * w + 2 * c0;
    for (int p = 0; p < PV; ++p)
      avx2::interleave(_mm256_add_ps(acc[a][0][p], b0), _mm256_add_ps(acc[a][1][p], b0), row + 16 * p);
  }
}

// The input gradient of input channel i, row r, columns [c0, c0 + 8): Σ_o Σ_ab w[i][o][a][b]·
// g[o][2r + a][2c + b], with g's rows split into even and odd columns on the fly.
DSIR_AVX2 void transpose_grad_block(const float* g, int64_t cout, int64_t h, int64_t w, const float* weight,
                                    int64_t cin, int64_t r, int64_t c0, float* grad_x) {
  constexpr int IB = 4;  // input channels per pass, each an accumulator
  for (int64_t i0 = 0; i0 < cin; i0 += IB) {
    const int64_t ib_count = std::min<int64_t>(IB, cin - i0);
    __m256 acc[IB];
    for (auto& a : acc) a = _mm256_setzero_ps();
    for (int64_t o = 0; o < cout; ++o)
      for (int a = 0; a < 2; ++a) {
        const float* row = g + (o * 2 * h + 2 * r + a) * 2 * w + 2 * c0;
        const __m256 v0 = _mm256_loadu_ps(row), v1 = _mm256_loadu_ps(row + 8);
        const __m256 even = avx2::evens(v0, v1), odd = avx2::odds(v0, v1);
        for (int ib = 0; ib < IB; ++ib) {
          if (ib >= ib_count) break;
          const float* wio = weight + ((i0 + ib) * cout + o) * 4 + 2 * a;
          acc[ib] = _mm256_fmadd_ps(_mm256_broadcast_ss(wio), even, acc[ib]);
          acc[ib] = _mm256_fmadd_ps(_mm256_broadcast_ss(wio + 1), odd, acc[ib]);
        }
      }
    for (int64_t ib = 0; ib < ib_count; ++ib)
      _mm256_storeu_ps(grad_x + ((i0 + ib) * h + r) * w + c0, acc[ib]);
  }
}

// Adds input row r's contribution to the weight gradients of every (i, o) pair and to the bias
// gradients: acc holds per pair four float vectors (a, b), then per output channel one.
DSIR_AVX2 void transpose_weight_grad_row(const float* x, const float* g, int64_t cin, int64_t cout, int64_t h,
                                         int64_t w, int64_t r, float* split, float* acc) {
  const int64_t vectors = w / 8;
  for (int64_t o = 0; o < cout; ++o) {
    // g's rows 2r and 2r + 1 split into even and odd columns: split[(2a + b)·w + c].
    __m256 bias_acc = _mm256_loadu_ps(acc + 8 * (cin * cout * 4 + o));
    for (int a = 0; a < 2; ++a) {
      const float* row = g + (o * 2 * h + 2 * r + a) * 2 * w;
      for (int64_t v = 0; v < vectors; ++v) {
        const __m256 v0 = _mm256_loadu_ps(row + 16 * v), v1 = _mm256_loadu_ps(row + 16 * v + 8);
        _mm256_storeu_ps(split + (2 * a) * w + 8 * v, avx2::evens(v0, v1));
        _mm256_storeu_ps(split + (2 * a + 1) * w + 8 * v, avx2::odds(v0, v1));
        bias_acc = _mm256_add_ps(bias_acc, _mm256_add_ps(v0, v1));
      }
    }
    _mm256_storeu_ps(acc + 8 * (cin * cout * 4 + o), bias_acc);
    for (int64_t i = 0; i < cin; ++i) {
      float* pair = acc + 8 * 4 * (i * cout + o);
      __m256 s[4];
      for (int k = 0; k < 4; ++k) s[k] = _mm256_loadu_ps(pair + 8 * k);
      const float* xr = x + (i * h + r) * w;
      for (int64_t v = 0; v < vectors; ++v) {
        const __m256 xv = _mm256_loadu_ps(xr + 8 * v);
        for (int k = 0; k < 4; ++k) s[k] = _mm256_fmadd_ps(xv, _mm256_loadu_ps(split + k * w + 8 * v), s[k]);
      }
      for (int k = 0; k < 4; ++k) _mm256_storeu_ps(pair + 8 * k, s[k]);
    }
  }
}

#endif  // DSIR_X86_KERNELS

// out (frames x cout x h x w) = conv3x3(x) + bias; bias may be null.
void convolve(const float* x, int64_t frames, int64_t cin, int64_t h, int64_t w, const float* weight,
              const float* bias, int64_t cout, float* out) {
#ifdef DSIR_X86_KERNELS
  const int64_t vectors = round8(w) / 8;
  at::parallel_for(0, frames * h, 16, [&](int64_t row0, int64_t row1) {
    RowWindow in(cin, h, w);
    for (int64_t row = row0; row < row1; ++row) {
      const int64_t f = row / h, r = row % h;
      in.move_to(x + f * cin * h * w, r);
      float* out_row = out + f * cout * h * w + r * w;
      int64_t o0 = 0;
      for (; o0 + 4 <= cout; o0 += 4) {
        int64_t v = 0;
        for (; v + 3 <= vectors; v += 3)
          conv_block<4, 3>(in, cin, weight, bias, o0, 8 * v, out_row, h * w, w);
        for (; v < vectors; ++v) conv_block<4, 1>(in, cin, weight, bias, o0, 8 * v, out_row, h * w, w);
      }
      for (; o0 < cout; ++o0) {
        int64_t v = 0;
        for (; v + 8 <= vectors; v += 8)
          conv_block<1, 8>(in, cin, weight, bias, o0, 8 * v, out_row, h * w, w);
        for (; v < vectors; ++v) conv_block<1, 1>(in, cin, weight, bias, o0, 8 * v, out_row, h * w, w);
      }
    }
  });
#else
  (void)x, (void)frames, (void)cin, (void)h, (void)w, (void)weight, (void)bias, (void)cout, (void)out;
  throw Error("internal: cpu_conv3x3 without the x86-64 kernel");
#endif
}

// What a convolution's backward starts from: the saved input and weight, the output gradient.
struct SavedConv {
  torch::Tensor x, weight, g;
  bool has_bias;
  int64_t n, cin, h, w, cout;
};
SavedConv saved_conv(torch::autograd::AutogradContext* ctx, const torch::autograd::variable_list& grads,
                     int weight_out_dim) {
  const auto saved = ctx->get_saved_variables();
  const torch::Tensor &x = saved[0], &weight = saved[1];
  return {x,
          weight,
          grads[0].contiguous(),
          ctx->saved_data["bias"].toBool(),
          x.size(0),
          x.size(1),
          x.size(2),
          x.size(3),
          weight.size(weight_out_dim)};
}

// The weight and bias gradients as sums over frames and rows: each frame's on one thread, into
// float vectors (8 lanes per sum) by add_row(scratch, frame, row, acc) with the thread's
// make_scratch(), emptied into double every 16 rows, the frames added in order: the same bits for
// any number of threads. The last cout sums are the bias's.
template <class MakeScratch, class AddRow>
void weight_gradients(const SavedConv& s, int64_t taps, const MakeScratch& make_scratch,
                      const AddRow& add_row, torch::Tensor& grad_weight, torch::Tensor& grad_bias) {
  const int64_t per_frame = taps + s.cout;
  std::vector<double> sums(static_cast<size_t>(s.n * per_frame), 0.0);
  at::parallel_for(0, s.n, 1, [&](int64_t f0, int64_t f1) {
    std::vector<float> acc(static_cast<size_t>(8 * per_frame), 0.0f);
    auto scratch = make_scratch();
    for (int64_t f = f0; f < f1; ++f)
      for (int64_t r = 0; r < s.h; ++r) {
        add_row(scratch, f, r, acc.data());
        if (r % 16 == 15 || r == s.h - 1) {
          double* frame_sums = &sums[static_cast<size_t>(f * per_frame)];
          for (int64_t k = 0; k < per_frame; ++k)
            for (int lane = 0; lane < 8; ++lane) frame_sums[k] += acc[static_cast<size_t>(8 * k + lane)];
          std::fill(acc.begin(), acc.end(), 0.0f);
        }
      }
  });
  std::vector<double> total(static_cast<size_t>(per_frame), 0.0);
  for (int64_t f = 0; f < s.n; ++f)
    for (int64_t k = 0; k < per_frame; ++k)
      total[static_cast<size_t>(k)] += sums[static_cast<size_t>(f * per_frame + k)];
  grad_weight = at::empty(s.weight.sizes(), s.weight.options());
  for (int64_t k = 0; k < taps; ++k)
    grad_weight.data_ptr<float>()[k] = static_cast<float>(total[static_cast<size_t>(k)]);
  if (s.has_bias) {
    grad_bias = at::empty({s.cout}, s.weight.options());
    for (int64_t o = 0; o < s.cout; ++o)
      grad_bias.data_ptr<float>()[o] = static_cast<float>(total[static_cast<size_t>(taps + o)]);
  }
}

class Conv3x3Function : public torch::autograd::Function<Conv3x3Function> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& weight, const torch::Tensor& bias) {
    const torch::Tensor wc = weight.contiguous();
    ctx->save_for_backward({x, wc});
    const bool has_bias = bias.numel() > 0;
    ctx->saved_data["bias"] = has_bias;
    const int64_t n = x.size(0), cin = x.size(1), h = x.size(2), w = x.size(3), cout = wc.size(0);
    torch::Tensor out = at::empty({n, cout, h, w}, x.options());
    const torch::Tensor bc = bias.contiguous();
    convolve(x.data_ptr<float>(), n, cin, h, w, wc.data_ptr<float>(),
             has_bias ? bc.data_ptr<float>() : nullptr, cout, out.data_ptr<float>());
    return out;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const SavedConv s = saved_conv(ctx, grads, 0);
    const int64_t n = s.n, cin = s.cin, h = s.h, w = s.w, cout = s.cout;
    torch::Tensor grad_x, grad_weight, grad_bias;
    if (ctx->needs_input_grad(0)) {
      // The input gradient is the convolution of g with the kernel flipped and transposed.
      std::vector<float> flipped(static_cast<size_t>(cin * cout * 9));
      const float* wp = s.weight.data_ptr<float>();
      for (int64_t o = 0; o < cout; ++o)
        for (int64_t i = 0; i < cin; ++i)
          for (int t = 0; t < 9; ++t)
            flipped[static_cast<size_t>((i * cout + o) * 9 + t)] = wp[(o * cin + i) * 9 + 8 - t];
      grad_x = at::empty_like(s.x);
      convolve(s.g.data_ptr<float>(), n, cout, h, w, flipped.data(), nullptr, cin, grad_x.data_ptr<float>());
    }
#ifdef DSIR_X86_KERNELS
    if (ctx->needs_input_grad(1) || (s.has_bias && ctx->needs_input_grad(2))) {
      const int64_t vectors = round8(w) / 8;
      const float *xp = s.x.data_ptr<float>(), *gp = s.g.data_ptr<float>();
      // Per thread: the input's row window and a gradient row zero past the width.
      struct Scratch {
        RowWindow in;
        std::vector<float> grad_row;
      };
      const auto make_scratch = [&] {
        return Scratch{RowWindow(cin, h, w), std::vector<float>(static_cast<size_t>(8 * vectors), 0.0f)};
      };
      const auto add_row = [&](Scratch& sc, int64_t f, int64_t r, float* acc) {
        sc.in.move_to(xp + f * cin * h * w, r);
        for (int64_t o = 0; o < cout; ++o) {
          const float* g_row = gp + ((f * cout + o) * h + r) * w;
          if (w % 8 != 0) {
            std::memcpy(sc.grad_row.data(), g_row, static_cast<size_t>(w) * sizeof(float));
            g_row = sc.grad_row.data();
          }
          row_sum(g_row, vectors, acc + 8 * (cout * cin * 9 + o));
          for (int64_t i = 0; i < cin; ++i)
            weight_grad_row(sc.in, i, g_row, vectors, acc + 8 * 9 * (o * cin + i));
        }
      };
      weight_gradients(s, cout * cin * 9, make_scratch, add_row, grad_weight, grad_bias);
    }
#endif
    return {grad_x, grad_weight, grad_bias};
  }
};

class ConvTranspose2x2Function : public torch::autograd::Function<ConvTranspose2x2Function> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& weight, const torch::Tensor& bias) {
    const torch::Tensor wc = weight.contiguous(), bc = bias.contiguous();
    const bool has_bias = bias.numel() > 0;
    ctx->save_for_backward({x, wc});
    ctx->saved_data["bias"] = has_bias;
    const int64_t n = x.size(0), cin = x.size(1), h = x.size(2), w = x.size(3), cout = wc.size(1);
    torch::Tensor out = at::empty({n, cout, 2 * h, 2 * w}, x.options());
#ifdef DSIR_X86_KERNELS
    const float *xp = x.data_ptr<float>(), *wp = wc.data_ptr<float>(),
                *bp = has_bias ? bc.data_ptr<float>() : nullptr;
    float* op = out.data_ptr<float>();
    const int64_t vectors = w / 8;
    at::parallel_for(0, n * h, 16, [&](int64_t row0, int64_t row1) {
      for (int64_t row = row0; row < row1; ++row) {
        const int64_t f = row / h, r = row % h;
        const float* frame = xp + f * cin * h * w;
        float* frame_out = op + f * cout * 4 * h * w;
        for (int64_t o = 0; o < cout; ++o) {
          int64_t v = 0;
          for (; v + 2 <= vectors; v += 2)
            transpose_block<2>(frame, cin, h, w, wp, cout, bp, o, r, 8 * v, frame_out);
          for (; v < vectors; ++v) transpose_block<1>(frame, cin, h, w, wp, cout, bp, o, r, 8 * v, frame_out);
        }
      }
    });
#endif
    return out;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const SavedConv s = saved_conv(ctx, grads, 1);
    const int64_t n = s.n, cin = s.cin, h = s.h, w = s.w, cout = s.cout;
    torch::Tensor grad_x, grad_weight, grad_bias;
#ifdef DSIR_X86_KERNELS
    const float *xp = s.x.data_ptr<float>(), *gp = s.g.data_ptr<float>(), *wp = s.weight.data_ptr<float>();
    if (ctx->needs_input_grad(0)) {
      grad_x = at::empty_like(s.x);
      float* dx = grad_x.data_ptr<float>();
      at::parallel_for(0, n * h, 16, [&](int64_t row0, int64_t row1) {
        for (int64_t row = row0; row < row1; ++row) {
          const int64_t f = row / h, r = row % h;
          for (int64_t c0 = 0; c0 < w; c0 += 8)
            transpose_grad_block(gp + f * cout * 4 * h * w, cout, h, w, wp, cin, r, c0, dx + f * cin * h * w);
        }
      });
    }
    if (ctx->needs_input_grad(1) || (s.has_bias && ctx->needs_input_grad(2))) {
      // Per thread: the output gradient's two rows split into even and odd columns.
      const auto make_scratch = [&] { return std::vector<float>(static_cast<size_t>(4 * w)); };
      const auto add_row = [&](std::vector<float>& split, int64_t f, int64_t r, float* acc) {
        transpose_weight_grad_row(xp + f * cin * h * w, gp + f * cout * 4 * h * w, cin, cout, h, w, r,
                                  split.data(), acc);
      };
      weight_gradients(s, cin * cout * 4, make_scratch, add_row, grad_weight, grad_bias);
    }
#endif
    return {grad_x, grad_weight, grad_bias};
  }
};

// Conv2dOptions::padding is a c10::variant in LibTorch 1.x and a std::variant in 2.x: visit() is
// found by argument-dependent lookup in either.
struct PaddingIs {
  int64_t pixels;
  bool operator()(const torch::ExpandingArray<2>& p) const { return (*p)[0] == pixels && (*p)[1] == pixels; }
  bool operator()(const torch::enumtype::kSame&) const { return pixels == 1; }  // asked of 3x3, stride 1 only
  bool operator()(const torch::enumtype::kValid&) const { return pixels == 0; }
};

}  // namespace

bool cpu_conv3x3_supported(const torch::nn::Conv2dImpl& conv, const torch::Tensor& x) {
  const auto& o = conv.options;
  const auto one = [](const torch::ExpandingArray<2>& a, int64_t v) { return (*a)[0] == v && (*a)[1] == v; };
  // One side of a single channel only (DSIR's conv1, 1 -> 16, and conv4, 8 -> 1): there LibTorch's
  // kernels idle, 2.5-4x slower than these; at 16 -> 8 (conv2) LibTorch's win, 71 against 106 ms
  // (bench_dsir --benchmark_filter=BM_Conv3x3Step, batch 32, forward and backward).
  return avx2_supported() && one(o.kernel_size(), 3) && one(o.stride(), 1) &&
         visit(PaddingIs{1}, o.padding()) && one(o.dilation(), 1) && o.groups() == 1 &&
         torch::enumtype::get_enum_name(o.padding_mode()) == "kZeros" &&
         o.in_channels() * o.out_channels() <= 16 && x.device().is_cpu() &&
         x.scalar_type() == torch::kFloat && x.dim() == 4 && x.size(1) == o.in_channels() &&
         x.is_contiguous() && conv.weight.device().is_cpu() && conv.weight.scalar_type() == torch::kFloat;
}

torch::Tensor cpu_conv3x3(torch::nn::Conv2dImpl& conv, const torch::Tensor& x) {
  if (!cpu_conv3x3_supported(conv, x)) throw Error("internal: cpu_conv3x3 does not take this layer or input");
  // No bias goes in as an empty tensor (autograd functions take no undefined inputs here).
  return Conv3x3Function::apply(x, conv.weight,
                                conv.options.bias() ? conv.bias : at::empty({0}, x.options()));
}

bool cpu_conv_transpose2x2_supported(const torch::nn::ConvTranspose2dImpl& conv, const torch::Tensor& x) {
  const auto& o = conv.options;
  const auto is = [](const torch::ExpandingArray<2>& a, int64_t v) { return (*a)[0] == v && (*a)[1] == v; };
  return avx2_supported() && is(o.kernel_size(), 2) && is(o.stride(), 2) &&
         visit(PaddingIs{0}, o.padding()) && is(o.output_padding(), 0) && is(o.dilation(), 1) &&
         o.groups() == 1 && torch::enumtype::get_enum_name(o.padding_mode()) == "kZeros" &&
         x.device().is_cpu() && x.scalar_type() == torch::kFloat && x.dim() == 4 &&
         x.size(1) == o.in_channels() && x.size(3) % 8 == 0 && x.is_contiguous() &&
         conv.weight.device().is_cpu() && conv.weight.scalar_type() == torch::kFloat;
}

torch::Tensor cpu_conv_transpose2x2(torch::nn::ConvTranspose2dImpl& conv, const torch::Tensor& x) {
  if (!cpu_conv_transpose2x2_supported(conv, x))
    throw Error("internal: cpu_conv_transpose2x2 does not take this layer or input");
  return ConvTranspose2x2Function::apply(x, conv.weight,
                                         conv.options.bias() ? conv.bias : at::empty({0}, x.options()));
}

}  // namespace dsir
