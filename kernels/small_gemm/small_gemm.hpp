// ne::kernels::small_gemm — small fp32 GEMMs for the batched products of attention (Matmul,
// AttentionOp in executor/ops/dense_matmul.cpp), one batch element per call, single-threaded:
//   C[m*ldc + n] = alpha * sum_k A[m*lda + k] * B[k*b_rs + n*b_cs]  (+ mask[m*m_rs + n*m_cs])
// for m < M, n < N. Needs b_cs == 1 or b_rs == 1, and m_cs in {0, 1} when mask is given.
// scratch: at least f32_scratch_bytes(M, N, K) bytes for the f32 list, bf16_scratch_bytes(M, N, K)
// for the bf16 list (any alignment); the generic entries use none.
// The bf16 list rounds A and B to bf16 (nearest even) and accumulates their products in fp32.
// transpose: dst[c * ldd + r] = src[r * lds + c] for r < rows, c < cols.
//
// The lists are small_gemm_kernels.inc (best first, generic last), read by dispatch.cpp, the tests
// and the bench.
#pragma once
#include <cstdint>

#include "kernels/ukernel_list.hpp"

namespace ne::kernels::small_gemm {

using gemm_fn = void(int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda, const float* B,
                     int64_t b_rs, int64_t b_cs, float* C, int64_t ldc, const float* mask, int64_t m_rs, int64_t m_cs,
                     void* scratch);
using transpose_fn = void(const float* src, int64_t lds, int64_t rows, int64_t cols, float* dst, int64_t ldd);

int64_t f32_scratch_bytes(int64_t M, int64_t N, int64_t K);
int64_t bf16_scratch_bytes(int64_t M, int64_t N, int64_t K);

const UkernelList<gemm_fn>& f32_kernels();
const UkernelList<gemm_fn>& bf16_kernels();
const UkernelList<transpose_fn>& transpose_kernels();

#define SGEMM_F32(name, isa, note) gemm_fn name;
#define SGEMM_BF16(name, isa, note) gemm_fn name;
#define SGEMM_TRANSPOSE(name, isa, note) transpose_fn name;
#include "kernels/small_gemm/small_gemm_kernels.inc"

}  // namespace ne::kernels::small_gemm
