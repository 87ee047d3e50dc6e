// AVX-512 shared pieces of the block-sparse GEMM family: vector math, the fused
// epilogue, the 16x16 transpose and the threaded driver. Included ONLY by the
// ISA-named .cpp files (compiled with -mavx512*). Everything lives in an anonymous
// namespace so each ISA translation unit keeps its own copy (no ODR mixing of code
// compiled with different flags).
//
// Driver: M is cut into panels of up to KT::kMaxMt tokens; N into tiles of 16 output
// channels. A thread takes a contiguous range of (panel, n-chunk) items; per panel it
// prepares the activation panel in the layout the micro-kernel wants (feature-major,
// [K][mt], or VNNI order), unless the user's feature-major input can be used in place.
// Per 16-channel tile, the micro-kernel computes nb rows of a small fp32 tile C[16][mt]
// (tokens in zmm lanes, weights broadcast: the weight is the streamed sparse operand,
// the activation rows it selects are loaded once and feed nb dot products), then the
// epilogue applies scale, bias, activation, residual and the output conversion,
// transposing 16x16 blocks for token-major output.
#pragma once
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "kernels/avx512_transpose.hpp"
#include "kernels/env.hpp"
#include "kernels/sparse_gemm/bsgemm_internal.hpp"

namespace ne::sparse {
namespace {

// ---------------------------------------------------------------- vector math
// exp: range reduction x = n ln2 + r, |r| <= ln2/2, Taylor to r^7 (rel err ~1e-7).
inline __m512 v_exp(__m512 x) {
  x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-87.3f)), _mm512_set1_ps(88.7f));
  __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                  _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.428606765330187045e-06f), r);
  __m512 p = _mm512_set1_ps(1.f / 5040);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f / 720));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f / 120));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f / 24));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f / 6));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f));
  return _mm512_scalef_ps(p, n);
}

// tanh: |x| < 0.25 odd Taylor series to x^11; else (1 - e^-2|x|) / (1 + e^-2|x|).
inline __m512 v_tanh(__m512 x) {
  const __m512 ax = _mm512_abs_ps(x);
  const __m512 t = v_exp(_mm512_mul_ps(ax, _mm512_set1_ps(-2.f)));
  __m512 big = _mm512_div_ps(_mm512_sub_ps(_mm512_set1_ps(1.f), t), _mm512_add_ps(_mm512_set1_ps(1.f), t));
  const __m512 x2 = _mm512_mul_ps(x, x);
  __m512 p = _mm512_set1_ps(-1382.f / 155925);
  p = _mm512_fmadd_ps(p, x2, _mm512_set1_ps(62.f / 2835));
  p = _mm512_fmadd_ps(p, x2, _mm512_set1_ps(-17.f / 315));
  p = _mm512_fmadd_ps(p, x2, _mm512_set1_ps(2.f / 15));
  p = _mm512_fmadd_ps(p, x2, _mm512_set1_ps(-1.f / 3));
  p = _mm512_mul_ps(p, x2);
  const __m512 small = _mm512_fmadd_ps(p, ax, ax);
  const __mmask16 is_small = _mm512_cmp_ps_mask(ax, _mm512_set1_ps(0.25f), _CMP_LT_OQ);
  const __m512 r = _mm512_mask_blend_ps(is_small, big, small);
  // copy the sign of x
  return _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(r),
      _mm512_and_si512(_mm512_castps_si512(x), _mm512_set1_epi32(int(0x80000000u)))));
}

// GELU-erf: 0.5 x (1 + erf(x / sqrt2)), with erf(z) = z P(z^2) / Q(z^2), the degree-13/8
// rational of Eigen's generic_fast_erf_float (|error| < 7e-8 on [0, 4] in exact arithmetic),
// evaluated on z clamped to +-3.875 and saturated to +-1 for |z| >= 3.8325 (there
// 1 - erf(z) < 6e-8, half an ulp of 1): 12 fma + one division, no exp, no branch blend
// between two full evaluations. Measured against double 0.5 x erfc(-x / sqrt2) over all
// floats in [-40, 40] at 1e-6 steps: <= 1.0e-6 absolute (9.98e-7 at x ~ 5.2: the fp32 Horner rounding times
// |x| / 2 near x ~ 5), exact 0 below x ~ -5.42 and exactly x above 5.42. The absolute error
// is what counts here; relative to the tiny negative tail (x < -3) it is poor (1 + erf
// cancels), unlike the old erfc-via-exp form, which cost ~2.6x as much (14.7 vs 5.6 ns per
// 16 lanes on Zen 5) and doubled the cost of the FFN1 GEMM. The division measured faster
// than vrcp14ps + Newton on Zen 5 (5.6 vs 6.7 ns per vector) at the same accuracy.
inline __m512 v_gelu_erf(__m512 x) {
  const __m512 z = _mm512_min_ps(_mm512_max_ps(_mm512_mul_ps(x, _mm512_set1_ps(0.70710678118654752f)),
                                               _mm512_set1_ps(-3.875f)), _mm512_set1_ps(3.875f));
  const __m512 z2 = _mm512_mul_ps(z, z);
  __m512 p = _mm512_set1_ps(-2.72614225801306e-10f);
  p = _mm512_fmadd_ps(p, z2, _mm512_set1_ps(2.77068142495902e-08f));
  p = _mm512_fmadd_ps(p, z2, _mm512_set1_ps(-2.10102402082508e-06f));
  p = _mm512_fmadd_ps(p, z2, _mm512_set1_ps(-5.69250639462346e-05f));
  p = _mm512_fmadd_ps(p, z2, _mm512_set1_ps(-7.34990630326855e-04f));
  p = _mm512_fmadd_ps(p, z2, _mm512_set1_ps(-2.95459980854025e-03f));
  p = _mm512_fmadd_ps(p, z2, _mm512_set1_ps(-1.60960333262415e-02f));
  p = _mm512_mul_ps(p, z);
  __m512 q = _mm512_set1_ps(-1.45660718464996e-05f);
  q = _mm512_fmadd_ps(q, z2, _mm512_set1_ps(-2.13374055278905e-04f));
  q = _mm512_fmadd_ps(q, z2, _mm512_set1_ps(-1.68282697438203e-03f));
  q = _mm512_fmadd_ps(q, z2, _mm512_set1_ps(-7.37332916720468e-03f));
  q = _mm512_fmadd_ps(q, z2, _mm512_set1_ps(-1.42647390514189e-02f));
  __m512 e = _mm512_div_ps(p, q);
  e = _mm512_mask_mov_ps(e, _mm512_cmp_ps_mask(z, _mm512_set1_ps(3.8325f), _CMP_GE_OQ), _mm512_set1_ps(1.f));
  e = _mm512_mask_mov_ps(e, _mm512_cmp_ps_mask(z, _mm512_set1_ps(-3.8325f), _CMP_LE_OQ), _mm512_set1_ps(-1.f));
  const __m512 hx = _mm512_mul_ps(x, _mm512_set1_ps(0.5f));
  return _mm512_fmadd_ps(hx, e, hx);
}

inline __m512 v_act(__m512 v, Act act) {
  switch (act) {
    case Act::none: return v;
    case Act::relu: return _mm512_max_ps(v, _mm512_setzero_ps());
    case Act::gelu_erf: return v_gelu_erf(v);
    case Act::gelu_tanh: {
      const __m512 v3 = _mm512_mul_ps(_mm512_mul_ps(v, v), v);
      const __m512 u = _mm512_mul_ps(_mm512_set1_ps(0.7978845608028654f),
                                     _mm512_fmadd_ps(v3, _mm512_set1_ps(0.044715f), v));
      return _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(0.5f), v),
                           _mm512_add_ps(_mm512_set1_ps(1.f), v_tanh(u)));
    }
    case Act::tanh: return v_tanh(v);
  }
  return v;
}

inline __mmask16 tail_mask(int n) { return n >= 16 ? __mmask16(0xffff) : __mmask16((1u << n) - 1); }

// Store 16 fp32 lanes (masked) as the output dtype. inv_scale = 1 / p.dst_scale (u8 / s8): a
// multiply instead of a division per vector (the result differs from y / dst_scale only where
// the quotient lies within an ulp of a .5 tie: at most one step, as the tests allow).
inline void v_store(void* dst, __m512 v, __mmask16 k, const PostOps& p, __m512 inv_scale) {
  switch (p.dst_dtype) {
    case DType::f32: _mm512_mask_storeu_ps(dst, k, v); break;
    case DType::bf16: {
      __m512i u = _mm512_castps_si512(v);
      __m512i r = _mm512_add_epi32(_mm512_set1_epi32(0x7fff), _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1)));
      u = _mm512_srli_epi32(_mm512_add_epi32(u, r), 16);
      _mm256_mask_storeu_epi16(dst, k, _mm512_cvtepi32_epi16(u));
      break;
    }
    case DType::u8:
    case DType::s8: {
      __m512 q = _mm512_roundscale_ps(_mm512_mul_ps(v, inv_scale),
                                      _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      q = _mm512_add_ps(q, _mm512_set1_ps(float(p.dst_zero_point)));
      const bool u8 = p.dst_dtype == DType::u8;
      q = _mm512_max_ps(q, _mm512_set1_ps(u8 ? 0.f : -128.f));
      q = _mm512_min_ps(q, _mm512_set1_ps(u8 ? 255.f : 127.f));
      _mm_mask_storeu_epi8(dst, k, _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(q)));
      break;
    }
    default: break;
  }
}

// In-register 16x16 transpose of 32-bit elements (kernels/avx512_transpose.hpp).
inline void transpose16(__m512 r[16]) { ne::simd::transpose16x16(r); }

// Transpose a [rows<=16][cols<=16] block of 32-bit elements (row stride lds, elements)
// into dst (row stride ldd): dst[c][r] = src[r][c]; missing rows read as zero.
inline void transpose_block32(const uint32_t* src, int64_t lds, int rows, int cols, uint32_t* dst, int64_t ldd) {
  __m512 r[16];
  const __mmask16 cm = tail_mask(cols);
  for (int i = 0; i < 16; ++i)
    r[i] = i < rows ? _mm512_castsi512_ps(_mm512_maskz_loadu_epi32(cm, src + i * lds)) : _mm512_setzero_ps();
  transpose16(r);
  for (int c = 0; c < cols; ++c) _mm512_storeu_ps(dst + c * ldd, r[c]);
}

// ------------------------------------------------------------------ epilogue
// C: [16][ldc] fp32 tile of output channels n0.. (rows) x tokens m0.. (columns).
// stream: fp32 output far larger than the caches (see stream_output()): full, 64-byte
// aligned 16-float rows go out with non-temporal stores (no read-for-ownership of lines
// that are entirely overwritten); partial or unaligned rows use ordinary stores.
inline void epilogue(const GemmArgs& a, float* C, int ldc, int n0, int nn, int m0, int mt, bool stream = false) {
  const PostOps& p = a.post;
  const size_t os = dtype_size(p.dst_dtype);
  uint8_t* dst = static_cast<uint8_t*>(a.dst);
  const __m512 inv_scale = _mm512_set1_ps(p.dst_scale != 0.f ? 1.f / p.dst_scale : 0.f);
  auto store = [&](uint8_t* d, __m512 v, __mmask16 k) {
    if (stream && k == 0xffff && (reinterpret_cast<uintptr_t>(d) & 63) == 0) _mm512_stream_ps(reinterpret_cast<float*>(d), v);
    else v_store(d, v, k, p, inv_scale);
  };
  if (a.layout == Layout::feature_major) {
    for (int i = 0; i < nn; ++i) {
      const int n = n0 + i;
      const __m512 sc = _mm512_set1_ps(p.scale ? p.scale[n] : 1.f);
      const __m512 bi = _mm512_set1_ps(p.bias ? p.bias[n] : 0.f);
      for (int m = 0; m < mt; m += 16) {
        const __mmask16 k = tail_mask(mt - m);
        __m512 v = _mm512_fmadd_ps(_mm512_loadu_ps(C + i * ldc + m), sc, bi);
        v = v_act(v, p.act);
        if (p.residual) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(k, p.residual + int64_t(n) * p.ld_residual + m0 + m));
        store(dst + (int64_t(n) * a.ld_dst + m0 + m) * os, v, k);
      }
    }
  } else {
    const __mmask16 kn = tail_mask(nn);
    __m512 sc = p.scale ? _mm512_maskz_loadu_ps(kn, p.scale + n0) : _mm512_set1_ps(1.f);
    __m512 bi = p.bias ? _mm512_maskz_loadu_ps(kn, p.bias + n0) : _mm512_setzero_ps();
    if (p.act != Act::none) {
      // Scale, bias and the activation on the channel rows of C before the transpose: one
      // vector live at a time. (After it, with the 16 transposed vectors live, GELU's
      // polynomial spilled: it doubled the time of BERT's FFN1 kernel.)
      for (int i = 0; i < nn; ++i) {
        const __m512 s1 = _mm512_set1_ps(p.scale ? p.scale[n0 + i] : 1.f);
        const __m512 b1 = _mm512_set1_ps(p.bias ? p.bias[n0 + i] : 0.f);
        for (int m = 0; m < mt; m += 16)
          _mm512_storeu_ps(C + i * ldc + m, v_act(_mm512_fmadd_ps(_mm512_loadu_ps(C + i * ldc + m), s1, b1), p.act));
      }
      sc = _mm512_set1_ps(1.f), bi = _mm512_setzero_ps();
    }
    for (int mb = 0; mb < mt; mb += 16) {
      __m512 r[16];
      for (int i = 0; i < 16; ++i) r[i] = _mm512_loadu_ps(C + i * ldc + mb);
      transpose16(r);
      const int mm = std::min(16, mt - mb);
      for (int j = 0; j < mm; ++j) {
        const int64_t m = m0 + mb + j;
        __m512 v = _mm512_fmadd_ps(r[j], sc, bi);
        if (p.residual) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(kn, p.residual + m * p.ld_residual + n0));
        store(dst + (m * a.ld_dst + n0) * os, v, kn);
      }
    }
  }
}

// ------------------------------------------------------------------ driver
struct Scratch {
  uint8_t* p = nullptr;
  size_t cap = 0;
  uint8_t* get(size_t n) {
    if (n > cap) {
      std::free(p);
      cap = (n + 4095) & ~size_t(4095);
      p = static_cast<uint8_t*>(std::aligned_alloc(64, cap));
    }
    return p;
  }
  ~Scratch() { std::free(p); }
};

// Non-temporal stores pay when the fp32 output is much larger than the caches: the lines
// are written whole, and an ordinary store would first read each one (from L3 or DRAM).
// Measured on Zen 5 (BERT FFN1, 1024 x 3072 fp32 = 12 MiB): the epilogue 1.27 -> 0.90 ms.
// Threshold: NE_SPARSE_STREAM_BYTES (default 8 MiB; 0 = never).
inline bool stream_output(const GemmArgs& a, int N) {
  const int64_t min_bytes = ne::kernels::env::sparse_stream_bytes();
  if (min_bytes <= 0 || a.post.dst_dtype != DType::f32) return false;
  return int64_t(a.M) * N * 4 >= min_bytes;
}

// KT: kMaxMt, kMGran, panel_bytes(h, mt_pad), prep_panel(a, h, m0, mt, mt_pad, buf,
// &panel, &ldp), compute_group(h, g, panel, ldp, mt_pad, C, ldc).
template <class KT>
void run_driver(const GemmArgs& a, const PackedHeader& h, int nthreads) {
  const int M = a.M, N = h.N;
  const int npanels = (M + KT::kMaxMt - 1) / KT::kMaxMt;
  int mt_base = (M + npanels - 1) / npanels;
  mt_base = (mt_base + KT::kMGran - 1) / KT::kMGran * KT::kMGran;
  const int npan = (M + mt_base - 1) / mt_base;
  const int ntiles = (N + 15) / 16;
  int nchunks = 1;
  if (npan < 4 * nthreads) nchunks = std::min(ntiles, (4 * nthreads + npan - 1) / npan);
  const int tiles_per_chunk = (ntiles + nchunks - 1) / nchunks;
  nchunks = (ntiles + tiles_per_chunk - 1) / tiles_per_chunk;
  const int items = npan * nchunks;
  nthreads = std::max(1, std::min(nthreads, items));
  const int gpt = 16 / h.nb;  // groups per 16-channel tile
  constexpr int ldc = KT::kMaxMt;
  const bool stream = stream_output(a, N);

#pragma omp parallel num_threads(nthreads)
  {
    static thread_local Scratch scratch;
    const int T = omp_get_num_threads(), t = omp_get_thread_num();
    const int it0 = int(int64_t(items) * t / T), it1 = int(int64_t(items) * (t + 1) / T);
    const size_t pbytes = (KT::panel_bytes(h, mt_base) + 63) & ~size_t(63);
    uint8_t* buf = scratch.get(pbytes + sizeof(float) * 16 * ldc);
    float* C = reinterpret_cast<float*>(buf + pbytes);
    int cur_panel = -1;
    const void* panel = nullptr;
    int64_t ldp = 0;
    int m0 = 0, mt = 0, mt_pad = 0;
    for (int it = it0; it < it1; ++it) {
      const int pi = it / nchunks, ci = it % nchunks;
      if (pi != cur_panel) {
        cur_panel = pi;
        m0 = pi * mt_base;
        mt = std::min(mt_base, M - m0);
        mt_pad = (mt + KT::kMGran - 1) / KT::kMGran * KT::kMGran;
        KT::prep_panel(a, h, m0, mt, mt_pad, buf, &panel, &ldp);
      }
      const int t0 = ci * tiles_per_chunk, t1 = std::min(ntiles, t0 + tiles_per_chunk);
      for (int tile = t0; tile < t1; ++tile) {
        const int n0 = tile * 16, nn = std::min(16, N - n0);
        const int g0 = n0 / h.nb, g1 = std::min(h.groups, g0 + gpt);
        for (int g = g0; g < g1; ++g) KT::compute_group(h, g, panel, ldp, mt_pad, C + (g - g0) * h.nb * ldc, ldc);
        epilogue(a, C, ldc, n0, nn, m0, mt, stream);
      }
    }
    if (stream) _mm_sfence();
  }
}

}  // namespace
}  // namespace ne::sparse
