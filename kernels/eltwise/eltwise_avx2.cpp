// Element-wise kernels on ymm (AVX2 + FMA): the CPUs without AVX-512 (this file alone is compiled
// with -mavx2 -mfma). gelu_tanh: x / (1 + exp(-2y)), y = sqrt(2/pi)(x + 0.044715x^3), as the
// AVX-512 entry computes it, with the exponent built from integer bits instead of scalef.
#include <immintrin.h>

#include <cstdint>

#include "kernels/eltwise/eltwise.hpp"

namespace ne::kernels::eltwise {

namespace {

inline __m256 c(float v) { return _mm256_set1_ps(v); }

// exp(x) for x in [-87.3, 88.72] (clamped; 2^n built in the exponent field, n in [-126, 128]:
// 128 gives inf, which the caller masks).
inline __m256 exp_ps(__m256 x) {
  x = _mm256_min_ps(_mm256_max_ps(x, c(-87.33654475f)), c(88.72283935546875f));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, c(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, c(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, c(-2.12194440e-4f), r);
  __m256 p = c(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, c(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, c(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, c(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, c(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, c(5.0000001201e-1f));
  p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, c(1.0f)));
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

inline __m256 gelu_tanh_ps(__m256 x) {
  const __m256 x2 = _mm256_mul_ps(x, x);
  const __m256 y = _mm256_mul_ps(_mm256_mul_ps(x, c(0.7978845608028654f)), _mm256_fmadd_ps(x2, c(0.044715f), c(1.0f)));
  const __m256 t = _mm256_mul_ps(y, c(-2.0f));
  const __m256 r = _mm256_div_ps(x, _mm256_add_ps(c(1.0f), exp_ps(t)));
  // Beyond the clamp (x < -10.2) the true value is below 1e-38: -0, as libm's expf (inf) gives.
  // NaN x: r is NaN already (x / ...).
  return _mm256_blendv_ps(r, c(-0.0f), _mm256_cmp_ps(t, c(88.72283935546875f), _CMP_GT_OQ));
}

}  // namespace

void gelu_tanh_f32__avx2(const float* src, float* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, gelu_tanh_ps(_mm256_loadu_ps(src + i)));
  if (i < n) {
    alignas(32) float buf[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (int64_t j = i; j < n; ++j) buf[j - i] = src[j];
    _mm256_store_ps(buf, gelu_tanh_ps(_mm256_load_ps(buf)));
    for (int64_t j = i; j < n; ++j) dst[j] = buf[j - i];
  }
}

}  // namespace ne::kernels::eltwise
