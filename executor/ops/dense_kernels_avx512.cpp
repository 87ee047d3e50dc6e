// AVX-512 row kernels of the dense fp32 ops: softmax, layernorm, gelu (erf and tanh forms).
// Built with -mavx512f/bw/vl/dq; called only when ne::dense::use_avx512() is true.
//
// exp:  Cody-Waite reduction x = n*ln2 + r, |r| <= ln2/2, degree-5 minimax polynomial
//       (Cephes expf coefficients), 2^n applied with vscalefps (handles underflow to 0).
//       About 1-2 ulp on [-104, 88.7].
// erf:  the piecewise rational approximations of fdlibm's s_erff.c (coefficients there:
//       Copyright (C) 1993 Sun Microsystems, freely usable with this notice), evaluated for all
//       lanes and blended; the Gelu is formed from 1+erf(u) without cancellation for u < 0
//       (via erfc), so it is accurate to a few ulp of the result everywhere.
// GCC 12 warns falsely on _mm512_undefined_ps inside the intrinsics headers.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <cmath>

#include "executor/ops/dense_common.hpp"

namespace ne::dense {
namespace {

inline __m512 exp_ps(__m512 x) {
  const __m512 lo = _mm512_set1_ps(-104.0f), hi = _mm512_set1_ps(88.72283935546875f);
  x = _mm512_min_ps(_mm512_max_ps(lo, x), hi);  // max(lo, x) keeps NaN
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  const __m512 r2 = _mm512_mul_ps(r, r);
  p = _mm512_fmadd_ps(p, r2, _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  return _mm512_scalef_ps(p, n);
}

inline __m512 c(float v) { return _mm512_set1_ps(v); }

// 1 + erf(u), accurate for both signs (for u < 0 it is erfc(|u|), computed directly).
inline __m512 one_plus_erf_ps(__m512 u) {
  const __m512 a = _mm512_abs_ps(u);
  const __mmask16 neg = _mm512_cmp_ps_mask(u, _mm512_setzero_ps(), _CMP_LT_OQ);
  const __mmask16 r1 = _mm512_cmp_ps_mask(a, c(0.84375f), _CMP_LT_OQ);
  const __mmask16 r2 = _mm512_cmp_ps_mask(a, c(1.25f), _CMP_LT_OQ) & ~r1;
  const __mmask16 r3 = _mm512_cmp_ps_mask(a, c(2.857142925262451f), _CMP_LT_OQ) & ~(r1 | r2);
  const __mmask16 r4 = ~(r1 | r2 | r3);
  __m512 g = _mm512_setzero_ps();
  if (r1) {  // |u| < 0.84375: erf(a) = a + a*P(z)/Q(z), z = a^2
    const __m512 z = _mm512_mul_ps(a, a);
    __m512 p = _mm512_fmadd_ps(c(-2.3763017452e-05f), z, c(-5.7702702470e-03f));
    p = _mm512_fmadd_ps(p, z, c(-2.8481749818e-02f));
    p = _mm512_fmadd_ps(p, z, c(-3.2504209876e-01f));
    p = _mm512_fmadd_ps(p, z, c(1.2837916613e-01f));
    __m512 q = _mm512_fmadd_ps(c(-3.9602282413e-06f), z, c(1.3249473704e-04f));
    q = _mm512_fmadd_ps(q, z, c(5.0813062117e-03f));
    q = _mm512_fmadd_ps(q, z, c(6.5022252500e-02f));
    q = _mm512_fmadd_ps(q, z, c(3.9791721106e-01f));
    q = _mm512_fmadd_ps(q, z, c(1.0f));
    const __m512 ay = _mm512_mul_ps(a, _mm512_div_ps(p, q));
    const __m512 pos = _mm512_add_ps(_mm512_add_ps(c(1.0f), a), ay);
    const __m512 ng = _mm512_sub_ps(_mm512_sub_ps(c(1.0f), a), ay);
    g = _mm512_mask_mov_ps(g, r1, _mm512_mask_mov_ps(pos, neg, ng));
  }
  if (r2) {  // 0.84375 <= |u| < 1.25: erf(a) = erx + P(s)/Q(s), s = a - 1
    const __m512 s = _mm512_sub_ps(a, c(1.0f));
    __m512 p = _mm512_fmadd_ps(c(-2.1663755178e-03f), s, c(3.5478305072e-02f));
    p = _mm512_fmadd_ps(p, s, c(-1.1089469492e-01f));
    p = _mm512_fmadd_ps(p, s, c(3.1834661961e-01f));
    p = _mm512_fmadd_ps(p, s, c(-3.7220788002e-01f));
    p = _mm512_fmadd_ps(p, s, c(4.1485610604e-01f));
    p = _mm512_fmadd_ps(p, s, c(-2.3621185683e-03f));
    __m512 q = _mm512_fmadd_ps(c(1.1984500103e-02f), s, c(1.3637083583e-02f));
    q = _mm512_fmadd_ps(q, s, c(1.2617121637e-01f));
    q = _mm512_fmadd_ps(q, s, c(7.1828655899e-02f));
    q = _mm512_fmadd_ps(q, s, c(5.4039794207e-01f));
    q = _mm512_fmadd_ps(q, s, c(1.0642088205e-01f));
    q = _mm512_fmadd_ps(q, s, c(1.0f));
    const __m512 pq = _mm512_div_ps(p, q);
    const float erx = 8.4506291151e-01f;
    const __m512 pos = _mm512_add_ps(c(1.0f + erx), pq);
    const __m512 ng = _mm512_sub_ps(c(1.0f - erx), pq);  // 1 - erx is exact
    g = _mm512_mask_mov_ps(g, r2, _mm512_mask_mov_ps(pos, neg, ng));
  }
  if (r3 | r4) {  // |u| >= 1.25: erfc(a) = exp(-a^2 - 0.5625 + R(s)/S(s)) / a, s = 1/a^2
    const __m512 s = _mm512_div_ps(c(1.0f), _mm512_mul_ps(a, a));
    __m512 R = _mm512_setzero_ps(), S = _mm512_setzero_ps();
    if (r3) {
      __m512 p = _mm512_fmadd_ps(c(-9.8143291473e+00f), s, c(-8.1287437439e+01f));
      p = _mm512_fmadd_ps(p, s, c(-1.8460508728e+02f));
      p = _mm512_fmadd_ps(p, s, c(-1.6239666748e+02f));
      p = _mm512_fmadd_ps(p, s, c(-6.2375331879e+01f));
      p = _mm512_fmadd_ps(p, s, c(-1.0558626175e+01f));
      p = _mm512_fmadd_ps(p, s, c(-6.9385856390e-01f));
      p = _mm512_fmadd_ps(p, s, c(-9.8649440333e-03f));
      __m512 q = _mm512_fmadd_ps(c(-6.0424413532e-02f), s, c(6.5702495575e+00f));
      q = _mm512_fmadd_ps(q, s, c(1.0863500214e+02f));
      q = _mm512_fmadd_ps(q, s, c(4.2900814819e+02f));
      q = _mm512_fmadd_ps(q, s, c(6.4538726807e+02f));
      q = _mm512_fmadd_ps(q, s, c(4.3456588745e+02f));
      q = _mm512_fmadd_ps(q, s, c(1.3765776062e+02f));
      q = _mm512_fmadd_ps(q, s, c(1.9651271820e+01f));
      q = _mm512_fmadd_ps(q, s, c(1.0f));
      R = _mm512_mask_mov_ps(R, r3, p);
      S = _mm512_mask_mov_ps(S, r3, q);
    }
    if (r4) {
      __m512 p = _mm512_fmadd_ps(c(-4.8351919556e+02f), s, c(-1.0250950928e+03f));
      p = _mm512_fmadd_ps(p, s, c(-6.3756646729e+02f));
      p = _mm512_fmadd_ps(p, s, c(-1.6063638306e+02f));
      p = _mm512_fmadd_ps(p, s, c(-1.7757955551e+01f));
      p = _mm512_fmadd_ps(p, s, c(-7.9928326607e-01f));
      p = _mm512_fmadd_ps(p, s, c(-9.8649431020e-03f));
      __m512 q = _mm512_fmadd_ps(c(-2.2440952301e+01f), s, c(4.7452853394e+02f));
      q = _mm512_fmadd_ps(q, s, c(2.5530502930e+03f));
      q = _mm512_fmadd_ps(q, s, c(3.1998581543e+03f));
      q = _mm512_fmadd_ps(q, s, c(1.5367296143e+03f));
      q = _mm512_fmadd_ps(q, s, c(3.2579251099e+02f));
      q = _mm512_fmadd_ps(q, s, c(3.0338060379e+01f));
      q = _mm512_fmadd_ps(q, s, c(1.0f));
      R = _mm512_mask_mov_ps(R, r4, p);
      S = _mm512_mask_mov_ps(S, r4, q);
    }
    S = _mm512_mask_mov_ps(S, r1 | r2, c(1.0f));  // keep unused lanes finite
    // z = a with its low 13 mantissa bits cleared: z*z is exact, so -a^2 loses nothing.
    const __m512 z = _mm512_castsi512_ps(
        _mm512_and_si512(_mm512_castps_si512(a), _mm512_set1_epi32(int(0xffffe000u))));
    const __m512 e1 = exp_ps(_mm512_fnmadd_ps(z, z, c(-0.5625f)));
    const __m512 e2 =
        exp_ps(_mm512_fmadd_ps(_mm512_sub_ps(z, a), _mm512_add_ps(z, a), _mm512_div_ps(R, S)));
    const __m512 erfc = _mm512_div_ps(_mm512_mul_ps(e1, e2), a);
    const __m512 pos = _mm512_sub_ps(c(2.0f), erfc);
    g = _mm512_mask_mov_ps(g, r3 | r4, _mm512_mask_mov_ps(pos, neg, erfc));
  }
  // NaN input: propagate.
  const __mmask16 nan = _mm512_cmp_ps_mask(u, u, _CMP_UNORD_Q);
  return _mm512_mask_mov_ps(g, nan, u);
}

inline __m512 gelu_erf_ps(__m512 x) {
  const __m512 u = _mm512_mul_ps(x, c(0.7071067811865476f));
  return _mm512_mul_ps(_mm512_mul_ps(c(0.5f), x), one_plus_erf_ps(u));
}

// 0.5x(1+tanh(y)) = x / (1 + exp(-2y)), y = sqrt(2/pi)(x + 0.044715x^3): no cancellation.
inline __m512 gelu_tanh_ps(__m512 x) {
  const __m512 x2 = _mm512_mul_ps(x, x);
  const __m512 y = _mm512_mul_ps(_mm512_mul_ps(x, c(0.7978845608028654f)),
                                 _mm512_fmadd_ps(x2, c(0.044715f), c(1.0f)));
  const __m512 e = exp_ps(_mm512_mul_ps(y, c(-2.0f)));
  return _mm512_div_ps(x, _mm512_add_ps(c(1.0f), e));
}

inline __mmask16 tail_mask(int64_t left) {
  return left >= 16 ? __mmask16(0xffff) : __mmask16((1u << left) - 1);
}

template <class F>
inline void map_ps(const float* src, float* dst, int64_t n, F f) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(dst + i, f(_mm512_loadu_ps(src + i)));
  if (i < n) {
    const __mmask16 m = tail_mask(n - i);
    _mm512_mask_storeu_ps(dst + i, m, f(_mm512_maskz_loadu_ps(m, src + i)));
  }
}

}  // namespace

void gelu_erf_avx512(const float* src, float* dst, int64_t n) { map_ps(src, dst, n, gelu_erf_ps); }
void gelu_tanh_avx512(const float* src, float* dst, int64_t n) {
  map_ps(src, dst, n, gelu_tanh_ps);
}

void softmax_rows_avx512(const float* src, float* dst, int64_t rows, int64_t n) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* x = src + r * n;
    float* y = dst + r * n;
    __m512 vmax = _mm512_set1_ps(-INFINITY);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) vmax = _mm512_max_ps(vmax, _mm512_loadu_ps(x + i));
    if (i < n)
      vmax = _mm512_mask_max_ps(vmax, tail_mask(n - i), vmax,
                                _mm512_maskz_loadu_ps(tail_mask(n - i), x + i));
    const __m512 mx = _mm512_set1_ps(_mm512_reduce_max_ps(vmax));
    __m512 vsum = _mm512_setzero_ps();
    for (i = 0; i + 16 <= n; i += 16) {
      const __m512 e = exp_ps(_mm512_sub_ps(_mm512_loadu_ps(x + i), mx));
      _mm512_storeu_ps(y + i, e);
      vsum = _mm512_add_ps(vsum, e);
    }
    if (i < n) {
      const __mmask16 m = tail_mask(n - i);
      const __m512 e = exp_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), mx));
      _mm512_mask_storeu_ps(y + i, m, e);
      vsum = _mm512_mask_add_ps(vsum, m, vsum, e);
    }
    const __m512 inv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(vsum));
    for (i = 0; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, _mm512_mul_ps(_mm512_loadu_ps(y + i), inv));
    if (i < n) {
      const __mmask16 m = tail_mask(n - i);
      _mm512_mask_storeu_ps(y + i, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, y + i), inv));
    }
  }
}

void layernorm_rows_avx512(const float* src, float* dst, int64_t rows, int64_t n,
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

void layernorm_cols_stats_avx512(const float* src, int64_t cols, int64_t r0, int64_t r1, int64_t c0, int64_t c1,
                                 float* mean, float* m2) {
  for (int64_t cb = c0; cb < c1;) {
    const int64_t w = std::min<int64_t>(128, c1 - cb);
    if (w > 64) ln_cols_stats<8>(src, cols, r0, r1, cb, w, mean + (cb - c0), m2 + (cb - c0));
    else ln_cols_stats<4>(src, cols, r0, r1, cb, w, mean + (cb - c0), m2 + (cb - c0));
    cb += w;
  }
}

void layernorm_cols_apply_avx512(const float* src, float* dst, int64_t cols, int64_t r0, int64_t r1, int64_t c0,
                                 int64_t c1, const float* mean, const float* rstd, const float* gamma,
                                 const float* beta) {
  for (int64_t cb = c0; cb < c1;) {
    const int64_t w = std::min<int64_t>(128, c1 - cb);
    if (w > 64) ln_cols_apply<8>(src, dst, cols, r0, r1, cb, w, mean + (cb - c0), rstd + (cb - c0), gamma, beta);
    else ln_cols_apply<4>(src, dst, cols, r0, r1, cb, w, mean + (cb - c0), rstd + (cb - c0), gamma, beta);
    cb += w;
  }
}

void layernorm_cols_avx512(const float* src, float* dst, int64_t n, int64_t cols, int64_t c0, int64_t c1,
                           const float* gamma, const float* beta, float eps) {
  alignas(64) float mean[128], m2[128];
  for (int64_t cb = c0; cb < c1;) {
    const int64_t w = std::min<int64_t>(128, c1 - cb);
    layernorm_cols_stats_avx512(src, cols, 0, n, cb, cb + w, mean, m2);
    for (int64_t j = 0; j < w; ++j) m2[j] = 1.f / std::sqrt(m2[j] / float(n) + eps);  // rstd
    layernorm_cols_apply_avx512(src, dst, cols, 0, n, cb, cb + w, mean, m2, gamma, beta);
    cb += w;
  }
}

}  // namespace ne::dense
