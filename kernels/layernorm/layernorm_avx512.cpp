// AVX-512 (avx512_core tier: F/BW/VL/DQ) entries of the LayerNorm family
// (layernorm_kernels.inc; contract in layernorm.hpp): rows (token-major) and columns
// (feature-major, "layernorm_ba"), the latter also as its two halves (stats, apply).
// Built with -mavx512f/bw/vl/dq; dispatched only when ne::cpu::mayiuse(avx512_core).
// GCC 12 warns falsely on _mm512_undefined_ps inside the intrinsics headers.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <algorithm>
#include <cmath>

#include "kernels/layernorm/layernorm.hpp"

namespace ne::kernels::layernorm {
namespace {

inline __mmask16 tail_mask(int64_t left) {
  return left >= 16 ? __mmask16(0xffff) : __mmask16((1u << left) - 1);
}

}  // namespace

void layernorm_f32_rows__avx512(const float* src, float* dst, int64_t rows, int64_t n,
                           const float* gamma, const float* beta, float eps) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* x = src + r * n;
    float* y = dst + r * n;
    // Two passes (mean, then centred sum of squares): no cancellation of E[x^2] - E[x]^2.
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
      s0 = _mm512_add_ps(s0, _mm512_loadu_ps(x + i));
      s1 = _mm512_add_ps(s1, _mm512_loadu_ps(x + i + 16));
    }
    for (; i < n; i += 16) s0 = _mm512_add_ps(s0, _mm512_maskz_loadu_ps(tail_mask(n - i), x + i));
    const float mean = _mm512_reduce_add_ps(_mm512_add_ps(s0, s1)) / float(n);
    const __m512 vm = _mm512_set1_ps(mean);
    s0 = _mm512_setzero_ps();
    s1 = _mm512_setzero_ps();
    for (i = 0; i + 32 <= n; i += 32) {
      const __m512 d0 = _mm512_sub_ps(_mm512_loadu_ps(x + i), vm);
      const __m512 d1 = _mm512_sub_ps(_mm512_loadu_ps(x + i + 16), vm);
      s0 = _mm512_fmadd_ps(d0, d0, s0);
      s1 = _mm512_fmadd_ps(d1, d1, s1);
    }
    for (; i < n; i += 16) {
      const __mmask16 m = tail_mask(n - i);
      const __m512 d = _mm512_maskz_sub_ps(m, _mm512_maskz_loadu_ps(m, x + i), vm);
      s0 = _mm512_fmadd_ps(d, d, s0);
    }
    const float var = _mm512_reduce_add_ps(_mm512_add_ps(s0, s1)) / float(n);
    const __m512 rstd = _mm512_set1_ps(1.0f / std::sqrt(var + eps));
    for (i = 0; i < n; i += 16) {
      const __mmask16 m = tail_mask(n - i);
      const __m512 d = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), vm), rstd);
      const __m512 b = beta ? _mm512_maskz_loadu_ps(m, beta + i) : _mm512_setzero_ps();
      _mm512_mask_storeu_ps(y + i, m, _mm512_fmadd_ps(d, _mm512_maskz_loadu_ps(m, gamma + i), b));
    }
  }
}

// Feature-major LayerNorm (transpose_mode 1,0) on x [n, cols]: every column normalised over its
// n values. Blocks of 16·NV columns, their statistics in registers: one pass for mean and M2
// (Welford's update, vectorised over the columns: stable, no E[x²]−E[x]² cancellation), one pass
// for the output. Two passes over long contiguous row segments: with cols·4 a multiple of 4 KiB
// (M = 1024 tokens) the rows alias in L1/L2, so a third pass would come from L3.
namespace {
template <int NV>
void ln_cols_stats(const float* src, int64_t cols, int64_t r0, int64_t r1, int64_t cb, int64_t w, float* mean_out,
                   float* m2_out) {
  __mmask16 mk[NV];
  for (int v = 0; v < NV; ++v) mk[v] = w > 16 * v ? tail_mask(w - 16 * v) : __mmask16(0);
  __m512 mean[NV], m2[NV];
  for (int v = 0; v < NV; ++v) mean[v] = _mm512_setzero_ps(), m2[v] = _mm512_setzero_ps();
  for (int64_t i = r0; i < r1; ++i) {
    const float* x = src + i * cols + cb;
    const __m512 r = _mm512_set1_ps(1.f / float(i - r0 + 1));
    #pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) {
      const __m512 xv = _mm512_maskz_loadu_ps(mk[v], x + 16 * v);
      const __m512 d = _mm512_sub_ps(xv, mean[v]);
      mean[v] = _mm512_fmadd_ps(d, r, mean[v]);
      m2[v] = _mm512_fmadd_ps(d, _mm512_sub_ps(xv, mean[v]), m2[v]);
    }
  }
  for (int v = 0; v < NV; ++v) {
    _mm512_mask_storeu_ps(mean_out + 16 * v, mk[v], mean[v]);
    _mm512_mask_storeu_ps(m2_out + 16 * v, mk[v], m2[v]);
  }
}
template <int NV>
void ln_cols_apply(const float* src, float* dst, int64_t cols, int64_t r0, int64_t r1, int64_t cb, int64_t w,
                   const float* mean_in, const float* rstd_in, const float* gamma, const float* beta) {
  __mmask16 mk[NV];
  __m512 mean[NV], rstd[NV];
  for (int v = 0; v < NV; ++v) {
    mk[v] = w > 16 * v ? tail_mask(w - 16 * v) : __mmask16(0);
    mean[v] = _mm512_maskz_loadu_ps(mk[v], mean_in + 16 * v);
    rstd[v] = _mm512_maskz_loadu_ps(mk[v], rstd_in + 16 * v);
  }
  for (int64_t i = r0; i < r1; ++i) {
    const float* x = src + i * cols + cb;
    float* y = dst + i * cols + cb;
    const __m512 g = _mm512_set1_ps(gamma[i]), b = _mm512_set1_ps(beta ? beta[i] : 0.f);
    #pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) {
      const __m512 d = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(mk[v], x + 16 * v), mean[v]), rstd[v]);
      _mm512_mask_storeu_ps(y + 16 * v, mk[v], _mm512_fmadd_ps(d, g, b));
    }
  }
}
}  // namespace

void layernorm_f32_cols_stats__avx512(const float* src, int64_t cols, int64_t r0, int64_t r1, int64_t c0, int64_t c1,
                                 float* mean, float* m2) {
  for (int64_t cb = c0; cb < c1;) {
    const int64_t w = std::min<int64_t>(128, c1 - cb);
    if (w > 64) ln_cols_stats<8>(src, cols, r0, r1, cb, w, mean + (cb - c0), m2 + (cb - c0));
    else ln_cols_stats<4>(src, cols, r0, r1, cb, w, mean + (cb - c0), m2 + (cb - c0));
    cb += w;
  }
}

void layernorm_f32_cols_apply__avx512(const float* src, float* dst, int64_t cols, int64_t r0, int64_t r1, int64_t c0,
                                 int64_t c1, const float* mean, const float* rstd, const float* gamma,
                                 const float* beta) {
  for (int64_t cb = c0; cb < c1;) {
    const int64_t w = std::min<int64_t>(128, c1 - cb);
    if (w > 64) ln_cols_apply<8>(src, dst, cols, r0, r1, cb, w, mean + (cb - c0), rstd + (cb - c0), gamma, beta);
    else ln_cols_apply<4>(src, dst, cols, r0, r1, cb, w, mean + (cb - c0), rstd + (cb - c0), gamma, beta);
    cb += w;
  }
}

void layernorm_f32_cols__avx512(const float* src, float* dst, int64_t n, int64_t cols, int64_t c0, int64_t c1,
                           const float* gamma, const float* beta, float eps) {
  alignas(64) float mean[128], m2[128];
  for (int64_t cb = c0; cb < c1;) {
    const int64_t w = std::min<int64_t>(128, c1 - cb);
    layernorm_f32_cols_stats__avx512(src, cols, 0, n, cb, cb + w, mean, m2);
    for (int64_t j = 0; j < w; ++j) m2[j] = 1.f / std::sqrt(m2[j] / float(n) + eps);  // rstd
    layernorm_f32_cols_apply__avx512(src, dst, cols, 0, n, cb, cb + w, mean, m2, gamma, beta);
    cb += w;
  }
}

}  // namespace ne::kernels::layernorm
