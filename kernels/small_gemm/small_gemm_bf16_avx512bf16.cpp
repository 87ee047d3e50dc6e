// Small GEMM with bf16 products and fp32 accumulation (vdpbf16ps), for Matmuls marked
// `compute_dtype: bf16` (attention of int8 / bf16 models). Same contract as the f32 entries
// (small_gemm.hpp): fp32 in, fp32 out, C = alpha * A * B (+ mask), single-threaded.
// Built with -mavx512f/bw/vl/dq -mavx512bf16; dispatched only when the CPU has AVX512_BF16.
//
// vdpbf16ps takes pairs along k: acc[n] += a[k]·b[k][n] + a[k+1]·b[k+1][n]. So per call:
//  - A (fp32 rows, any row stride) is rounded to bf16 rows in scratch: [M][Kp] bf16, Kp = K
//    rounded up to even (a dword of a row is the pair (k, k+1));
//  - B becomes a panel of pair dwords [Kp/2][Np]: from rows (V: B[k][n] contiguous in n) by
//    packing rows 2j and 2j+1 lane-wise; from columns (Kᵀ: B[k][n] = Bt[n][k]) by rounding each
//    Bt row to bf16 (pairs already adjacent) and 16x16 dword transposes.
// Rounding is to nearest even, as everywhere in this engine (values are finite here).
// Micro-kernel: 6 rows x 64 columns, 24 zmm accumulators; per pair: 4 panel loads, 6 dword
// broadcasts, 24 vdpbf16ps (twice the multiply-adds of an FMA per instruction).
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "kernels/small_gemm/small_gemm.hpp"
#include "kernels/small_gemm/small_gemm_tiles.hpp"
#include "kernels/avx512_transpose.hpp"

namespace ne::kernels::small_gemm {
namespace {

// fp32 -> bf16 bits (round to nearest even) in the low 16 bits of each dword.
inline __m512i rne16(__m512 x) {
  const __m512i u = _mm512_castps_si512(x);
  const __m512i r = _mm512_add_epi32(_mm512_set1_epi32(0x7fff), _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1)));
  return _mm512_srli_epi32(_mm512_add_epi32(u, r), 16);
}
// Pair dwords (lo = even k, hi = odd k).
inline __m512i pair(__m512 even, __m512 odd) { return _mm512_or_si512(rne16(even), _mm512_slli_epi32(rne16(odd), 16)); }

// Row of n fp32 -> n bf16 (n even after padding with a zero).
void row_to_bf16(const float* src, int64_t n, uint16_t* dst, int64_t n_pad) {
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m512i lo = rne16(_mm512_loadu_ps(src + i)), hi = rne16(_mm512_loadu_ps(src + i + 16));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i), _mm512_cvtepi32_epi16(lo));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i + 16), _mm512_cvtepi32_epi16(hi));
  }
  for (; i < n; i += 16) {
    const __m512i v = rne16(_mm512_maskz_loadu_ps(tail16(n - i), src + i));
    _mm256_mask_storeu_epi16(dst + i, tail16(n - i), _mm512_cvtepi32_epi16(v));
  }
  for (i = n; i < n_pad; ++i) dst[i] = 0;
}

using ne::simd::transpose16x16;

// Per pair of k: NV panel loads, MR dword broadcasts of A, MR x NV vdpbf16ps (the panel is
// padded to whole vectors, so no column mask on the loads).
struct Bf16Step {
  template <int MR, int NV>
  static void run(__m512 (&acc)[MR][NV], int64_t KP, const uint32_t* A, int64_t lda_d, const uint32_t* P, int64_t ldp,
                  __mmask16) {
    for (int64_t kp = 0; kp < KP; ++kp) {
      __m512bh b[NV];
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) b[v] = (__m512bh)_mm512_loadu_si512(P + kp * ldp + 16 * v);
#pragma GCC unroll 8
      for (int i = 0; i < MR; ++i) {
        const __m512bh av = (__m512bh)_mm512_set1_epi32(int(A[i * lda_d + kp]));
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_dpbf16_ps(acc[i][v], av, b[v]);
      }
    }
  }
};

}  // namespace

void small_gemm_bf16_f32acc_6x64__avx512bf16(int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                                             int64_t lda, const float* B, int64_t b_rs, int64_t b_cs, float* C,
                                             int64_t ldc, const float* mask, int64_t m_rs, int64_t m_cs,
                                             void* scratch) {
  const int64_t KP = (K + 1) / 2, Np = (N + 15) / 16 * 16;
  uint32_t* Ab = reinterpret_cast<uint32_t*>((reinterpret_cast<uintptr_t>(scratch) + 63) & ~uintptr_t(63));
  uint32_t* Pb = Ab + (M * KP + 15) / 16 * 16;
  // A rows -> bf16 rows (pairs = dwords).
  for (int64_t m = 0; m < M; ++m) row_to_bf16(A + m * lda, K, reinterpret_cast<uint16_t*>(Ab + m * KP), 2 * KP);
  if (b_cs == 1) {
    // Rows k of B: pair rows 2j, 2j+1 lane-wise.
    for (int64_t j = 0; j < KP; ++j) {
      const float* r0 = B + 2 * j * b_rs;
      const float* r1 = 2 * j + 1 < K ? B + (2 * j + 1) * b_rs : nullptr;
      for (int64_t n = 0; n < N; n += 16) {
        const __mmask16 km = tail16(N - n);
        const __m512 e = _mm512_maskz_loadu_ps(km, r0 + n);
        const __m512 o = r1 ? _mm512_maskz_loadu_ps(km, r1 + n) : _mm512_setzero_ps();
        _mm512_storeu_si512(Pb + j * Np + n, pair(e, o));
      }
    }
  } else {
    // Columns: Bt[n][k] = B[n * b_cs + k]; bf16 rows of Bt are pair dwords along k, then transposed.
    alignas(64) uint32_t rows[16][64];
    for (int64_t n0 = 0; n0 < N; n0 += 16) {
      const int64_t nn = std::min<int64_t>(16, N - n0);
      for (int64_t j0 = 0; j0 < KP; j0 += 64) {
        const int64_t jj = std::min<int64_t>(64, KP - j0);
        for (int64_t i = 0; i < 16; ++i) {
          if (i < nn) {
            const int64_t k0 = 2 * j0, kk = std::min<int64_t>(2 * jj, K - k0);
            row_to_bf16(B + (n0 + i) * b_cs + k0, kk, reinterpret_cast<uint16_t*>(rows[i]), 2 * jj);
          } else {
            std::memset(rows[i], 0, sizeof(rows[i]));
          }
        }
        for (int64_t q = 0; q < jj; q += 16) {
          __m512 r[16];
          for (int i = 0; i < 16; ++i) r[i] = _mm512_load_ps(reinterpret_cast<const float*>(rows[i] + q));
          transpose16x16(r);
          for (int64_t c = 0; c < std::min<int64_t>(16, jj - q); ++c)
            _mm512_storeu_ps(reinterpret_cast<float*>(Pb + (j0 + q + c) * Np + n0), r[c]);
        }
      }
    }
  }
  all_rows<Bf16Step>(M, N, KP, alpha, static_cast<const uint32_t*>(Ab), KP, static_cast<const uint32_t*>(Pb), Np, C, ldc, mask, m_rs, m_cs);
}

}  // namespace ne::kernels::small_gemm
