// AVX-512 (avx512_core tier: F/BW/VL/DQ) entries of the element-wise family
// (eltwise_kernels.inc; contract in eltwise.hpp): gelu (erf and tanh forms), softmax over rows.
// Built with -mavx512f/bw/vl/dq; dispatched only when ne::cpu::mayiuse(avx512_core).
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

#include "kernels/eltwise/eltwise.hpp"

namespace ne::kernels::eltwise {
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
  const __m512 t = _mm512_mul_ps(y, c(-2.0f));
  const __m512 r = _mm512_div_ps(x, _mm512_add_ps(c(1.0f), exp_ps(t)));
  // exp_ps clamps its argument at 88.72 (e = 3.4e38): beyond (x < -10.2) x / (1 + e) would be
  // x / 3.4e38 (-1 for x = -3.4e38) instead of the true value below 1e-38 (libm's expf gives inf
  // there, so the generic entry returns -0): return -0 as it does.
  return _mm512_mask_mov_ps(r, _mm512_cmp_ps_mask(t, c(88.72283935546875f), _CMP_GT_OQ), c(-0.0f));
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

void gelu_erf_f32__avx512(const float* src, float* dst, int64_t n) { map_ps(src, dst, n, gelu_erf_ps); }
void gelu_tanh_f32__avx512(const float* src, float* dst, int64_t n) {
  map_ps(src, dst, n, gelu_tanh_ps);
}

void softmax_f32_rows__avx512(const float* src, float* dst, int64_t rows, int64_t n) {
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

}  // namespace ne::kernels::eltwise
