// Small fp32 GEMM for the batched products of attention (Matmul): C = alpha * A * B (+ mask),
// one batch element per call, single-threaded (the Matmul op splits batches over threads); and
// the 16x16-block fp32 transpose. Entries of small_gemm_kernels.inc (contract in small_gemm.hpp).
// Built with -mavx512f/bw/vl/dq; dispatched only when ne::cpu::mayiuse(avx512_core).
//
// Why not dnnl_sgemm: at BERT's shapes (Q·Kᵀ 128x128x64, P·V 128x64x128, 96 of them per layer
// at batch 8) the per-call packing and dispatch of sgemm is a large share of the work. Here A is
// read in place (rows with any stride, unit column stride: Q and P as they lie), B is used in
// place when its rows are contiguous (V), or transposed once per call into a [K][N] panel (Kᵀ:
// 16x16 in-register transposes), and the micro-kernel keeps a 6 x 64 tile of C in 24 zmm
// accumulators: per k, 4 loads of B, 6 broadcasts of A, 24 FMAs. The additive mask (attention's
// [B,1,1,S] padding mask) is fused into the store.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>

#include "kernels/small_gemm/small_gemm.hpp"
#include "kernels/small_gemm/small_gemm_tiles.hpp"
#include "kernels/avx512_transpose.hpp"

namespace ne::kernels::small_gemm {
namespace {

// One 6x64 (or smaller) tile: per k, NV loads of B, MR broadcasts of A, MR x NV FMAs.
struct FmaStep {
  template <int MR, int NV>
  static void run(__m512 (&acc)[MR][NV], int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb, __mmask16 last) {
    for (int64_t k = 0; k < K; ++k) {
      __m512 b[NV];
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v)
        b[v] = v == NV - 1 ? _mm512_maskz_loadu_ps(last, B + k * ldb + 16 * v) : _mm512_loadu_ps(B + k * ldb + 16 * v);
#pragma GCC unroll 8
      for (int i = 0; i < MR; ++i) {
        const __m512 av = _mm512_set1_ps(A[i * lda + k]);
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_fmadd_ps(av, b[v], acc[i][v]);
      }
    }
  }
};

// dst[k][n] = src[n * lds + k] for n < N, k < K (dst row stride ldd >= N).
void transpose_panel(const float* src, int64_t lds, int64_t N, int64_t K, float* dst, int64_t ldd) {
  for (int64_t n0 = 0; n0 < N; n0 += 16)
    for (int64_t k0 = 0; k0 < K; k0 += 16) {
      const int64_t nn = std::min<int64_t>(16, N - n0), kk = std::min<int64_t>(16, K - k0);
      __m512 r[16];
      for (int i = 0; i < 16; ++i)
        r[i] = i < nn ? _mm512_maskz_loadu_ps(tail16(kk), src + (n0 + i) * lds + k0) : _mm512_setzero_ps();
      ne::simd::transpose16x16(r);
      for (int64_t k = 0; k < kk; ++k) _mm512_mask_storeu_ps(dst + (k0 + k) * ldd + n0, tail16(nn), r[k]);
    }
}

}  // namespace

void transpose_f32_16x16__avx512(const float* src, int64_t lds, int64_t rows, int64_t cols, float* dst, int64_t ldd) {
  transpose_panel(src, lds, rows, cols, dst, ldd);
}

void small_gemm_f32_6x64__avx512(int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                                 const float* B, int64_t b_rs, int64_t b_cs, float* C, int64_t ldc, const float* mask,
                                 int64_t m_rs, int64_t m_cs, void* scratch_bytes) {
  float* scratch = static_cast<float*>(scratch_bytes);  // f32_scratch_bytes(M, N, K), float-aligned
  int64_t ldb = b_rs;
  if (b_cs != 1) {  // B[k][n] = B[n * b_cs] (b_rs == 1): transpose into the panel
    ldb = (N + 15) / 16 * 16;
    transpose_panel(B, b_cs, N, K, scratch, ldb);
    B = scratch;
  }
  all_rows<FmaStep>(M, N, K, alpha, A, lda, B, ldb, C, ldc, mask, m_rs, m_cs);
}

}  // namespace ne::kernels::small_gemm
