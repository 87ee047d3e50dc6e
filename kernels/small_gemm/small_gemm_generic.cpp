// Portable (any x86-64) entries of the small-GEMM family (small_gemm_kernels.inc): the executor
// had none (without AVX-512 its Matmul runs oneDNN instead); written for this list so that the
// family has a reference entry on every CPU. Compiled without ISA flags.
#include <cstring>

#include "kernels/small_gemm/small_gemm.hpp"

namespace ne::kernels::small_gemm {
namespace {

inline float bf16_round(float f) {  // nearest even; values are finite here
  uint32_t u;
  std::memcpy(&u, &f, 4);
  u = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
  std::memcpy(&f, &u, 4);
  return f;
}

template <bool kBf16>
void gemm(int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda, const float* B, int64_t b_rs,
          int64_t b_cs, float* C, int64_t ldc, const float* mask, int64_t m_rs, int64_t m_cs) {
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n) {
      float acc = 0.f;
      for (int64_t k = 0; k < K; ++k) {
        const float a = A[m * lda + k], b = B[k * b_rs + n * b_cs];
        acc += kBf16 ? bf16_round(a) * bf16_round(b) : a * b;
      }
      float r = alpha * acc;
      if (mask) r += mask[m * m_rs + n * m_cs];
      C[m * ldc + n] = r;
    }
}

}  // namespace

void small_gemm_f32__generic(int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda, const float* B,
                             int64_t b_rs, int64_t b_cs, float* C, int64_t ldc, const float* mask, int64_t m_rs,
                             int64_t m_cs, void*) {
  gemm<false>(M, N, K, alpha, A, lda, B, b_rs, b_cs, C, ldc, mask, m_rs, m_cs);
}

void small_gemm_bf16_f32acc__generic(int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                                     const float* B, int64_t b_rs, int64_t b_cs, float* C, int64_t ldc,
                                     const float* mask, int64_t m_rs, int64_t m_cs, void*) {
  gemm<true>(M, N, K, alpha, A, lda, B, b_rs, b_cs, C, ldc, mask, m_rs, m_cs);
}

void transpose_f32__generic(const float* src, int64_t lds, int64_t rows, int64_t cols, float* dst, int64_t ldd) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) dst[c * ldd + r] = src[r * lds + c];
}

}  // namespace ne::kernels::small_gemm
