// The tile driver shared by the small GEMMs (small_gemm_f32_avx512.cpp: fp32 FMA;
// small_gemm_bf16_avx512bf16.cpp: vdpbf16ps). Include only from files compiled with AVX-512.
//
// Step::run<MR, NV>(acc, K, A, lda, B, ldb, last) accumulates an MR x (16 NV) tile of C into
// acc (zeroed here); `last` masks the columns of the last vector. The store multiplies by alpha,
// adds the mask (m_cs 0: broadcast along n, or 1) and writes the columns that exist.
// C is covered by 6-row blocks (tail rows 1..5) x 64-column tiles (tail 16/32/48 + mask).
#pragma once
#include <immintrin.h>

#include <cstdint>

namespace ne::kernels::small_gemm {
namespace {

inline __mmask16 tail16(int64_t n) { return n >= 16 ? __mmask16(0xffff) : __mmask16((1u << n) - 1); }

template <class Step, int MR, int NV, class TA, class TB>
void tile(int64_t K, float alpha, const TA* A, int64_t lda, const TB* B, int64_t ldb, float* C, int64_t ldc, int64_t n,
          const float* mask, int64_t m_rs, int64_t m_cs) {
  __m512 acc[MR][NV];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_setzero_ps();
  const __mmask16 last = tail16(n - 16 * (NV - 1));
  Step::template run<MR, NV>(acc, K, A, lda, B, ldb, last);
  const __m512 al = _mm512_set1_ps(alpha);
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
      const __mmask16 km = v == NV - 1 ? last : __mmask16(0xffff);
      __m512 r = _mm512_mul_ps(acc[i][v], al);
      if (mask) {
        const float* mp = mask + i * m_rs + 16 * v * m_cs;
        r = _mm512_add_ps(r, m_cs ? _mm512_maskz_loadu_ps(km, mp) : _mm512_set1_ps(*mp));
      }
      _mm512_mask_storeu_ps(C + i * ldc + 16 * v, km, r);
    }
}

template <class Step, int MR, class TA, class TB>
void row_block(int64_t N, int64_t K, float alpha, const TA* A, int64_t lda, const TB* B, int64_t ldb, float* C,
               int64_t ldc, const float* mask, int64_t m_rs, int64_t m_cs) {
  int64_t n0 = 0;
  for (; n0 + 64 <= N; n0 += 64)
    tile<Step, MR, 4>(K, alpha, A, lda, B + n0, ldb, C + n0, ldc, 64, mask ? mask + n0 * m_cs : nullptr, m_rs, m_cs);
  const int64_t rest = N - n0;
  if (rest <= 0) return;
  const float* mk = mask ? mask + n0 * m_cs : nullptr;
  switch ((rest + 15) / 16) {
    case 1: tile<Step, MR, 1>(K, alpha, A, lda, B + n0, ldb, C + n0, ldc, rest, mk, m_rs, m_cs); break;
    case 2: tile<Step, MR, 2>(K, alpha, A, lda, B + n0, ldb, C + n0, ldc, rest, mk, m_rs, m_cs); break;
    case 3: tile<Step, MR, 3>(K, alpha, A, lda, B + n0, ldb, C + n0, ldc, rest, mk, m_rs, m_cs); break;
    default: tile<Step, MR, 4>(K, alpha, A, lda, B + n0, ldb, C + n0, ldc, rest, mk, m_rs, m_cs); break;
  }
}

template <class Step, class TA, class TB>
void all_rows(int64_t M, int64_t N, int64_t K, float alpha, const TA* A, int64_t lda, const TB* B, int64_t ldb, float* C,
              int64_t ldc, const float* mask, int64_t m_rs, int64_t m_cs) {
  int64_t m = 0;
  for (; m + 6 <= M; m += 6)
    row_block<Step, 6>(N, K, alpha, A + m * lda, lda, B, ldb, C + m * ldc, ldc, mask ? mask + m * m_rs : nullptr, m_rs, m_cs);
  const float* mk = mask ? mask + m * m_rs : nullptr;
  const TA* a = A + m * lda;
  float* c = C + m * ldc;
  switch (M - m) {
    case 1: row_block<Step, 1>(N, K, alpha, a, lda, B, ldb, c, ldc, mk, m_rs, m_cs); break;
    case 2: row_block<Step, 2>(N, K, alpha, a, lda, B, ldb, c, ldc, mk, m_rs, m_cs); break;
    case 3: row_block<Step, 3>(N, K, alpha, a, lda, B, ldb, c, ldc, mk, m_rs, m_cs); break;
    case 4: row_block<Step, 4>(N, K, alpha, a, lda, B, ldb, c, ldc, mk, m_rs, m_cs); break;
    case 5: row_block<Step, 5>(N, K, alpha, a, lda, B, ldb, c, ldc, mk, m_rs, m_cs); break;
    default: break;
  }
}

}  // namespace
}  // namespace ne::kernels::small_gemm
