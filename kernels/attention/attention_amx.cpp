// attn_bf16_f32acc_16x16__amx: fused attention on AMX (tdpbf16ps), bf16 products, fp32
// accumulation, fp32 softmax. Built with -mamx-tile -mamx-bf16 plus the AVX-512 (BF16) flags;
// dispatched only where CPUID, XCR0 and arch_prctl(XTILEDATA) agree (Isa::avx512_core_amx).
//
// Per problem t (one (batch, head)):
//  1. K' and V' are packed once, as bf16 B tiles in VNNI pairs, zero padded:
//       Kp: per 16-key block nb and 32-d chunk dc one tile [16 d-pairs][16 keys][2]
//       Vp: per 16-column block eb and 32-key chunk kc one tile [16 key-pairs][16 cols][2]
//     (Sk, D, Dv padded to multiples of 32; the padding is zero, so it adds nothing.)
//  2. Per block of 32 query rows (16 for a last block of <= 16 rows):
//     Q rows -> bf16 A panel [32][Dp] (zero padded); S = Q·Kᵀ with 2x2 C tiles of 16x16 fp32
//     (tmm0-3 C, tmm4-5 A, tmm6-7 B), stored into the per-thread score tile [32][Skp] fp32;
//     per row s = scale·acc + mask, max, p = exp(s - max) rounded to bf16 into P [32][Skp]
//     (zeros beyond Sk), sum of the ROUNDED p (so the weights that multiply V sum to 1);
//     O = P·V with 2x2 C tiles, each output row scaled by 1/sum and written to the O view.
// Any strides: operands are read through 16x16 fp32 blocks (row loads where the column stride
// is 1, column loads + in-register transpose where the row stride is 1, gathers otherwise),
// so the BERT layout [B,S,H,D] and the feature-major [H,D,B,S] views both run here.
// Threads: problems split over threads; with fewer problems than threads the query blocks of
// a problem are split too (each thread then packs that problem's K and V itself).
//
// GCC 12: _tile_loadd / _tile_stored declare no memory access (kernels/amx_tile.hpp), so
// tile_gemm() puts compiler barriers between the plain stores of the A / B sources (the Q panel,
// the packed K and V, P) and the tile loads that read them, and around the C tile stores (the
// plain reads of S / ot from the previous block before them, the reads after them).
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/amx_tile.hpp"
#include "kernels/attention/attention.hpp"
#include "kernels/avx512_transpose.hpp"

namespace ne::attention {
namespace {

using ne::simd::transpose16x16;

using ne::amx::compiler_barrier;
using ne::amx::TileConfig;

inline __mmask16 tail16(int64_t n) {
  return n >= 16 ? __mmask16(0xffff) : n <= 0 ? __mmask16(0) : __mmask16((1u << n) - 1);
}
inline int64_t up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

// r[i][j] = X[i*rs + j*cs] for i < nr, j < nc; zero elsewhere (nr, nc <= 16; may be <= 0).
inline void load_block(const float* X, int64_t rs, int64_t cs, int64_t nr, int64_t nc, __m512 r[16]) {
  if (nr <= 0 || nc <= 0) {
    for (int i = 0; i < 16; ++i) r[i] = _mm512_setzero_ps();
    return;
  }
  if (cs == 1 || nc == 1) {
    const __mmask16 km = tail16(nc);
    for (int i = 0; i < 16; ++i) r[i] = i < nr ? _mm512_maskz_loadu_ps(km, X + i * rs) : _mm512_setzero_ps();
  } else if (rs == 1 || nr == 1) {
    const __mmask16 km = tail16(nr);
    for (int j = 0; j < 16; ++j) r[j] = j < nc ? _mm512_maskz_loadu_ps(km, X + j * cs) : _mm512_setzero_ps();
    transpose16x16(r);
  } else {
    alignas(64) float b[16][16];
    for (int i = 0; i < 16; ++i)
      for (int j = 0; j < 16; ++j) b[i][j] = i < nr && j < nc ? X[i * rs + j * cs] : 0.f;
    for (int i = 0; i < 16; ++i) r[i] = _mm512_load_ps(b[i]);
  }
}

// A panel: rows m < nr of X (X[m*rs + d*cs], d < D) as bf16 rows of Dp (multiple of 32), zero
// padded to `rows` rows (multiple of 16).
void pack_a(const float* X, int64_t rs, int64_t cs, int64_t nr, int64_t D, int64_t Dp, int64_t rows, uint16_t* dst) {
  __m512 r[16];
  for (int64_t m0 = 0; m0 < rows; m0 += 16)
    for (int64_t d0 = 0; d0 < Dp; d0 += 32) {
      __m512 h[16];
      load_block(X + m0 * rs + d0 * cs, rs, cs, nr - m0, D - d0, r);
      load_block(X + m0 * rs + (d0 + 16) * cs, rs, cs, nr - m0, D - d0 - 16, h);
      for (int i = 0; i < 16; ++i)
        _mm512_storeu_si512(dst + (m0 + i) * Dp + d0, (__m512i)_mm512_cvtne2ps_pbh(h[i], r[i]));
    }
}

// B tiles in VNNI pairs of the reduction index k: the operand B[k][c] = X[k*ks + c*cs]
// (k < Kd reduced, c < Nc columns). Tile (cb, kc) for columns 16cb.. and k 32kc..: 1 KiB,
// row p = k pair, dword c = (B[32kc+2p][16cb+c], B[32kc+2p+1][16cb+c]) bf16. Tiles ordered
// cb-major: dst + (cb * nkc + kc) * 512. Padded with zeros to Ncp (mult of 32) and Kp (mult of 32).
void pack_b(const float* X, int64_t ks, int64_t cs, int64_t Kd, int64_t Nc, int64_t Kp, int64_t Ncp, uint16_t* dst) {
  const int64_t nkc = Kp / 32;
  __m512 lo[16], hi[16];
  for (int64_t c0 = 0; c0 < Ncp; c0 += 16)
    for (int64_t kc = 0; kc < nkc; ++kc) {
      const int64_t k0 = kc * 32;
      // Rows = columns c, cols = k: block[c][k] = X[(k0+k)*ks + (c0+c)*cs]
      load_block(X + c0 * cs + k0 * ks, cs, ks, Nc - c0, Kd - k0, lo);
      load_block(X + c0 * cs + (k0 + 16) * ks, cs, ks, Nc - c0, Kd - k0 - 16, hi);
      for (int i = 0; i < 16; ++i) lo[i] = (__m512)_mm512_cvtne2ps_pbh(hi[i], lo[i]);  // row c: 16 k-pair dwords
      transpose16x16(lo);                                                          // row p: 16 column dwords
      uint16_t* t = dst + ((c0 / 16) * nkc + kc) * 512;
      for (int p = 0; p < 16; ++p) _mm512_store_ps(reinterpret_cast<float*>(t + p * 32), lo[p]);
    }
}

// pack_b's layout when the columns are contiguous (cs == 1, e.g. V' in the BERT layout): each
// tile row p interleaves rows k = 2p and 2p+1 lane-wise (one convert, one word permute).
void pack_b_rows(const float* X, int64_t ks, int64_t Kd, int64_t Nc, int64_t Kp, int64_t Ncp, uint16_t* dst) {
  const int64_t nkc = Kp / 32;
  alignas(64) static const uint16_t kIdx[32] = {0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23,
                                                8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31};
  const __m512i idx = _mm512_load_si512(kIdx);
  for (int64_t c0 = 0; c0 < Ncp; c0 += 16) {
    const __mmask16 km = tail16(Nc - c0);
    for (int64_t kc = 0; kc < nkc; ++kc) {
      uint16_t* t = dst + ((c0 / 16) * nkc + kc) * 512;
      for (int p = 0; p < 16; ++p) {
        const int64_t k = kc * 32 + 2 * p;
        const __m512 e = k < Kd ? _mm512_maskz_loadu_ps(km, X + k * ks + c0) : _mm512_setzero_ps();
        const __m512 o = k + 1 < Kd ? _mm512_maskz_loadu_ps(km, X + (k + 1) * ks + c0) : _mm512_setzero_ps();
        const __m512i w = (__m512i)_mm512_cvtne2ps_pbh(o, e);  // [e0..15 | o0..15]
        _mm512_store_si512(t + p * 32, _mm512_permutexvar_epi16(idx, w));
      }
    }
  }
}

// exp(x) for x <= 0 (x - max): clamped at -87.3 (result >= FLT_MIN, no denormals), n = round(x
// log2 e), r = x - n ln2 (two-part ln2), degree-5 Taylor polynomial on |r| <= ln2/2 (relative
// error < 2.5e-6: ample, p is rounded to bf16 next), times 2^n.
inline __m512 exp_ps(__m512 x) {
  x = _mm512_max_ps(x, _mm512_set1_ps(-87.3f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145752f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.42860677e-6f), r);
  __m512 p = _mm512_set1_ps(1.f / 120);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f / 24));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f / 6));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f));
  return _mm512_scalef_ps(p, n);
}

// C tiles 0..(2MR-1) = A (MR row tiles, from a bf16 panel with row stride lda elements) · B
// (2 column tiles per step, 1 KiB each), reduced over nk chunks of 32; stored as fp32 into C
// (row stride ldc floats). b0/b1: the first tile of the two column blocks; chunk stride bstride.
template <int MR>
void tile_gemm(const uint16_t* A, int64_t lda, const uint16_t* b0, const uint16_t* b1, int64_t bstride, int64_t nk,
               float* C, int64_t ldc) {
  compiler_barrier();  // A (pack_a, P) and B (pack_b) are in memory before the tile loads read them
  _tile_zero(0);
  _tile_zero(1);
  if (MR == 2) {
    _tile_zero(2);
    _tile_zero(3);
  }
  for (int64_t kc = 0; kc < nk; ++kc) {
    _tile_loadd(4, A + kc * 32, lda * 2);
    _tile_loadd(6, b0 + kc * bstride, 64);
    _tile_loadd(7, b1 + kc * bstride, 64);
    _tile_dpbf16ps(0, 4, 6);
    _tile_dpbf16ps(1, 4, 7);
    if (MR == 2) {
      _tile_loadd(5, A + 16 * lda + kc * 32, lda * 2);
      _tile_dpbf16ps(2, 5, 6);
      _tile_dpbf16ps(3, 5, 7);
    }
  }
  compiler_barrier();  // the plain reads of C (the previous block's S / ot) come before the tile stores
  _tile_stored(0, C, ldc * 4);
  _tile_stored(1, C + 16, ldc * 4);
  if (MR == 2) {
    _tile_stored(2, C + 16 * ldc, ldc * 4);
    _tile_stored(3, C + 16 * ldc + 16, ldc * 4);
  }
  compiler_barrier();  // the C tiles are in memory before the softmax / output pass reads them
}

// Per-thread buffers, kept between calls (thread_local; they only grow), so a call does not
// fault in fresh pages.
struct Scratch {
  int64_t Dp = 0, Dvp = 0, Skp = 0;
  std::vector<uint16_t> kp, vp, qa, p;
  std::vector<float> s, inv, ot;
  void size_for(const Args& a) {
    Dp = up(a.D, 32), Dvp = up(a.Dv, 32), Skp = up(a.Sk, 32);
    auto grow = [](auto& v, int64_t n) {
      if (int64_t(v.size()) < n) v.assign(size_t(n), 0);
    };
    grow(kp, Skp * Dp + 32), grow(vp, Skp * Dvp + 32), grow(qa, 32 * Dp + 32), grow(p, 32 * Skp + 32);
    grow(s, 32 * Skp + 16), grow(inv, 32), grow(ot, 32 * Dvp + 16);
    // P rows beyond a block's last query row are read by the tiles: keep them finite (zero).
    std::fill(p.begin(), p.end(), 0);
  }
};

template <class T>
T* al64(std::vector<T>& v) {
  return reinterpret_cast<T*>((reinterpret_cast<uintptr_t>(v.data()) + 63) & ~uintptr_t(63));
}

// One block of nr (<= 16 MR) query rows starting at m0 of problem t; K and V already packed.
template <int MR>
void query_block(const Args& a, int64_t t, int64_t m0, int64_t nr, Scratch& w) {
  const int64_t Dp = w.Dp, Dvp = w.Dvp, Skp = w.Skp, ndc = Dp / 32, nkc = Skp / 32;
  uint16_t *kp = al64(w.kp), *vp = al64(w.vp), *qa = al64(w.qa), *P = al64(w.p);
  float *S = al64(w.s), *ot = al64(w.ot);
  pack_a(a.q + a.q_off[t] + m0 * a.q_rs, a.q_rs, a.q_cs, nr, a.D, Dp, 16 * MR, qa);
  // S = Q·Kᵀ: column blocks of 32 keys (key tiles 2j, 2j+1).
  for (int64_t n0 = 0; n0 < Skp; n0 += 32) {
    const uint16_t* b0 = kp + (n0 / 16) * ndc * 512;
    tile_gemm<MR>(qa, Dp, b0, b0 + ndc * 512, 512, ndc, S + n0, Skp);
  }
  // Softmax per row (fp32), P = bf16(exp(s - max)), inv = 1 / sum of the rounded P.
  const int64_t Sk = a.Sk;
  const __m512 sc = _mm512_set1_ps(a.scale);
  const float* mk0 = a.mask ? a.mask + a.m_off[t] + m0 * a.m_rs : nullptr;
  for (int64_t i = 0; i < nr; ++i) {
    float* s = S + i * Skp;
    const float* mk = mk0 ? mk0 + i * a.m_rs : nullptr;
    // x = scale·acc + mask, computed twice (max pass, exp pass) rather than stored in between.
    auto score = [&](int64_t n, __mmask16 km) {
      const __m512 x = _mm512_load_ps(s + n);
      if (!mk) return _mm512_mul_ps(x, sc);
      __m512 mv;
      if (a.m_cs == 1) mv = _mm512_maskz_loadu_ps(km, mk + n);
      else if (a.m_cs == 0) mv = _mm512_set1_ps(mk[0]);
      else {
        alignas(64) float g[16] = {};
        for (int64_t j = 0; j < std::min<int64_t>(16, Sk - n); ++j) g[j] = mk[(n + j) * a.m_cs];
        mv = _mm512_load_ps(g);
      }
      return _mm512_fmadd_ps(x, sc, mv);
    };
    __m512 mx = _mm512_set1_ps(-__builtin_inff());
    for (int64_t n = 0; n < Sk; n += 16) {
      const __mmask16 km = tail16(Sk - n);
      mx = _mm512_mask_max_ps(mx, km, mx, score(n, km));
    }
    const __m512 m = _mm512_set1_ps(_mm512_reduce_max_ps(mx));
    __m512 sum = _mm512_setzero_ps();
    uint16_t* pr = P + i * Skp;
    for (int64_t n = 0; n < Skp; n += 16) {
      const __mmask16 km = tail16(Sk - n);
      const __m512 e = km ? _mm512_maskz_mov_ps(km, exp_ps(_mm512_sub_ps(score(n, km), m))) : _mm512_setzero_ps();
      const __m256i b = (__m256i)_mm512_cvtneps_pbh(e);
      _mm256_store_si256(reinterpret_cast<__m256i*>(pr + n), b);
      sum = _mm512_add_ps(sum, _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(b), 16)));
    }
    w.inv[i] = 1.f / _mm512_reduce_add_ps(sum);
  }
  // O = P·V: column blocks of 32 (V tiles 2j, 2j+1), each row times 1/sum.
  float* O = a.o + a.o_off[t] + m0 * a.o_rs;
  // (All column blocks first, into ot [32][Dvp], then one output pass: vector loads right after
  // a tile store of the same lines stall.)
  for (int64_t e0 = 0; e0 < Dvp; e0 += 32) {
    const uint16_t* b0 = vp + (e0 / 16) * nkc * 512;
    tile_gemm<MR>(P, Skp, b0, b0 + nkc * 512, 512, nkc, ot + e0, Dvp);
  }
  const int64_t Dv = a.Dv;
  if (a.o_cs == 1) {
    for (int64_t i = 0; i < nr; ++i) {
      const __m512 iv = _mm512_set1_ps(w.inv[i]);
      float* orow = O + i * a.o_rs;
      for (int64_t e = 0; e < Dv; e += 16)
        _mm512_mask_storeu_ps(orow + e, tail16(Dv - e), _mm512_mul_ps(_mm512_load_ps(ot + i * Dvp + e), iv));
    }
  } else if (a.o_rs == 1) {  // feature-major: output columns contiguous
    for (int64_t i0 = 0; i0 < nr; i0 += 16)
      for (int64_t j0 = 0; j0 < Dv; j0 += 16) {
        __m512 r[16];
        for (int i = 0; i < 16; ++i)
          r[i] = _mm512_mul_ps(_mm512_load_ps(ot + (i0 + i) * Dvp + j0), _mm512_set1_ps(i0 + i < nr ? w.inv[i0 + i] : 0.f));
        transpose16x16(r);
        const __mmask16 km = tail16(nr - i0);
        for (int64_t j = 0; j < std::min<int64_t>(16, Dv - j0); ++j) _mm512_mask_storeu_ps(O + (j0 + j) * a.o_cs + i0, km, r[j]);
      }
  } else {
    for (int64_t i = 0; i < nr; ++i)
      for (int64_t j = 0; j < Dv; ++j) O[i * a.o_rs + j * a.o_cs] = ot[i * Dvp + j] * w.inv[i];
  }
}

}  // namespace

void attn_bf16_f32acc_16x16__amx(const Args& a) {
  const int64_t nqb = (a.Sq + 31) / 32;  // 32-row query blocks per problem
  const int nt = std::max(1, a.num_threads);
  // Split each problem's query blocks into `split` parts when there are fewer problems than threads.
  const int64_t split = a.batch >= nt ? 1 : std::min<int64_t>(nqb, (nt + a.batch - 1) / a.batch);
  const int64_t items = a.batch * split;
#pragma omp parallel num_threads(int(std::min<int64_t>(nt, items)))
  {
    TileConfig cfg;
    for (int i = 0; i < 8; ++i) cfg.colsb[i] = 64, cfg.rows[i] = 16;
    ne::amx::load_tile_config(cfg);  // not _tile_loadconfig: kernels/amx_tile.hpp
    thread_local Scratch w;
    w.size_for(a);
    int64_t packed = -1;
#pragma omp for schedule(static)
    for (int64_t it = 0; it < items; ++it) {
      const int64_t t = it / split, part = it % split;
      if (packed != t) {
        pack_b(a.k + a.k_off[t], a.k_rs, a.k_cs, a.D, a.Sk, w.Dp, w.Skp, al64(w.kp));
        if (a.v_cs == 1)
          pack_b_rows(a.v + a.v_off[t], a.v_rs, a.Sk, a.Dv, w.Skp, w.Dvp, al64(w.vp));
        else
          pack_b(a.v + a.v_off[t], a.v_rs, a.v_cs, a.Sk, a.Dv, w.Skp, w.Dvp, al64(w.vp));
        packed = t;
      }
      const int64_t b0 = nqb * part / split, b1 = nqb * (part + 1) / split;
      for (int64_t qb = b0; qb < b1; ++qb) {
        const int64_t m0 = qb * 32, nr = std::min<int64_t>(32, a.Sq - m0);
        if (nr > 16) query_block<2>(a, t, m0, nr, w);
        else query_block<1>(a, t, m0, nr, w);
      }
    }
    _tile_release();
  }
}

}  // namespace ne::attention
