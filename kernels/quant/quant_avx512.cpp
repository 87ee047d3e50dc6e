// AVX-512 (F/BW/VL/DQ: the avx512_core tier) entries of the quantization family
// (quant_kernels.inc; contract in quant.hpp). Built with -mavx512f/bw/vl/dq; dispatched only when
// ne::cpu::mayiuse(avx512_core). Single-threaded: the callers split the range over OpenMP threads.
#include <immintrin.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "kernels/quant/quant.hpp"

namespace ne::kernels::quant {

void minmax_f32__avx512(const float* x, int64_t n, float* mn, float* mx) {
  __m512 lo = _mm512_set1_ps(std::numeric_limits<float>::infinity());
  __m512 hi = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m512 v = _mm512_loadu_ps(x + i);
    lo = _mm512_min_ps(v, lo);  // NaN in v: keeps lo (min_ps returns the 2nd operand)
    hi = _mm512_max_ps(v, hi);
  }
  if (i < n) {
    __mmask16 m = __mmask16((1u << (n - i)) - 1);
    __m512 v = _mm512_maskz_loadu_ps(m, x + i);
    lo = _mm512_mask_min_ps(lo, m, v, lo);
    hi = _mm512_mask_max_ps(hi, m, v, hi);
  }
  *mn = _mm512_reduce_min_ps(lo);
  *mx = _mm512_reduce_max_ps(hi);
}

void quantize_f32_u8s8__avx512(const float* x, void* q, int64_t n, float scale, int zp, bool is_signed) {
  const __m512 vs = _mm512_set1_ps(scale), vz = _mm512_set1_ps(float(zp));
  const __m512 lo = _mm512_set1_ps(is_signed ? -128.f : 0.f), hi = _mm512_set1_ps(is_signed ? 127.f : 255.f);
  // x · (1/scale) instead of the division (vdivps: ~16 cycles per vector, which bounds this loop
  // when x is in cache, e.g. in LayerNorm's fused quantization). It is within 1.5 ulp of x / scale
  // (one rounding for 1/scale, one for the product; fl(x / scale) itself is within 0.5 ulp), so
  // both round to the same integer unless t lies within a few ulp of a half step k + 0.5: lanes
  // closer than |t|·2^-20 (8 ulp) to one, NaN / inf lanes, |t| >= 2^19 and 1/scale = inf redo
  // the true division. Bit for bit the division's result (tests/ops_quant NearHalfSteps).
  const __m512 vinv = _mm512_set1_ps(1.f / scale), half = _mm512_set1_ps(0.5f);
  const __m512 rel = _mm512_set1_ps(1.f / 1048576.f);  // 2^-20
  const __m512i absmask = _mm512_set1_epi32(0x7fffffff);
  auto fabs512 = [&](__m512 v) { return _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(v), absmask)); };
  uint8_t* d = static_cast<uint8_t*>(q);
  auto one = [&](__m512 x) {
    __m512 v = _mm512_mul_ps(x, vinv);
    const __m512 f = _mm512_sub_ps(v, _mm512_roundscale_ps(v, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC));
    const __mmask16 safe =
        _mm512_cmp_ps_mask(fabs512(_mm512_sub_ps(f, half)), _mm512_mul_ps(fabs512(v), rel), _CMP_GT_OQ);
    if (safe != 0xFFFF) v = _mm512_mask_div_ps(v, __mmask16(~safe), x, vs);
    v = _mm512_roundscale_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);  // half to even
    v = _mm512_add_ps(v, vz);
    v = _mm512_min_ps(_mm512_max_ps(v, lo), hi);  // NaN -> lo (max_ps returns the 2nd operand)
    return _mm512_cvtps_epi32(v);                 // exact: v is an integer in range
  };
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m512i r = one(_mm512_loadu_ps(x + i));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(d + i), _mm512_cvtepi32_epi8(r));
  }
  if (i < n) {
    __mmask16 m = __mmask16((1u << (n - i)) - 1);
    __m512i r = one(_mm512_maskz_loadu_ps(m, x + i));
    _mm512_mask_cvtepi32_storeu_epi8(d + i, m, r);
  }
}

void cvt_f32_bf16__avx512(const float* x, uint16_t* y, int64_t n) {
  const __m512i bias = _mm512_set1_epi32(0x7fff), one = _mm512_set1_epi32(1);
  const __m512i absmask = _mm512_set1_epi32(0x7fffffff), inf = _mm512_set1_epi32(0x7f800000);
  const __m512i qbit = _mm512_set1_epi32(0x40 << 16);
  auto conv = [&](__m512i u) {
    __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), one);
    __m512i r = _mm512_add_epi32(u, _mm512_add_epi32(bias, lsb));
    __mmask16 nan = _mm512_cmpgt_epi32_mask(_mm512_and_si512(u, absmask), inf);
    r = _mm512_mask_mov_epi32(r, nan, _mm512_or_si512(u, qbit));
    return _mm512_cvtepi32_epi16(_mm512_srli_epi32(r, 16));
  };
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m256i h = conv(_mm512_castps_si512(_mm512_loadu_ps(x + i)));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(y + i), h);
  }
  if (i < n) {
    __mmask16 m = __mmask16((1u << (n - i)) - 1);
    __m256i h = conv(_mm512_castps_si512(_mm512_maskz_loadu_ps(m, x + i)));
    _mm256_mask_storeu_epi16(y + i, m, h);
  }
}

}  // namespace ne::kernels::quant
