// Shared helpers of the dense fp32 operators (InnerProduct, Matmul, Softmax, LayerNorm, Gelu):
// the oneDNN engine, the CPU check that guards the AVX-512 kernels, the choice of the row kernels
// (kernels/eltwise, kernels/layernorm) and the small GEMMs (kernels/small_gemm) under their old names. Compiled without ISA flags: nothing here may use AVX-512 instructions.
#pragma once
#include <deque>
#include <cstdint>
#include <string>

#include <dnnl.hpp>

#include "executor/ops/portable.hpp"
#include "kernels/eltwise/eltwise.hpp"
#include "kernels/layernorm/layernorm.hpp"
#include "kernels/small_gemm/small_gemm.hpp"

namespace ne::dense {

// One CPU engine per process (oneDNN engines are thread-safe); one stream per thread.
dnnl::engine& engine();
dnnl::stream& stream();

// True when the AVX-512 kernels (kernels/eltwise, kernels/layernorm, the small GEMMs) may run: ne::cpu says avx512_core
// (CPUID + XCR0, under the NE_MAX_ISA / set_isa_cap ceiling) and no test forced the portable path
// (force_portable(), executor/ops/portable.hpp: one switch for these and the quantization kernels).
bool use_avx512();
// "avx512" or "portable" (for kernel() strings).
const char* kernel_isa();

// The row kernels (kernels/eltwise, kernels/layernorm): the entry of a kernels/ list the operators
// run now: the first one the CPU can run (ne::cpu, under the NE_MAX_ISA cap), or the generic
// (last) one when a test forced the portable path.
template <class Fn>
const ne::kernels::Ukernel<Fn>& pick(const ne::kernels::UkernelList<Fn>& list) {
  return list.choose(portable_forced());
}
// Softmax over rows, the AVX-512 entry itself (for callers that checked use_avx512() already).
inline void softmax_rows_avx512(const float* src, float* dst, int64_t rows, int64_t n) {
  ne::kernels::eltwise::softmax_f32_rows__avx512(src, dst, rows, n);
}
// Small fp32 GEMM (attention's batched products), single-threaded: the AVX-512 entries of
// kernels/small_gemm (small_gemm.hpp has the contract), called by dense_matmul.cpp after it checked
// use_avx512() (bf16: the CPU has AVX512_BF16):
// C[m*ldc + n] = alpha * sum_k A[m*lda + k] * B[k*b_rs + n*b_cs] (+ mask[m*m_rs + n*m_cs]).
// Needs b_cs == 1 or b_rs == 1, and m_cs in {0, 1} when mask is given; scratch holds
// small_gemm_scratch_floats(N, K) floats (used when b_cs != 1).
inline int64_t small_gemm_scratch_floats(int64_t N, int64_t K) {
  return ne::kernels::small_gemm::f32_scratch_bytes(0, N, K) / int64_t(sizeof(float));
}
// dst[c * ldd + r] = src[r * lds + c] for r < rows, c < cols (AVX-512 16x16 blocks).
inline void transpose_f32_avx512(const float* src, int64_t lds, int64_t rows, int64_t cols, float* dst, int64_t ldd) {
  ne::kernels::small_gemm::transpose_f32_16x16__avx512(src, lds, rows, cols, dst, ldd);
}
inline void small_gemm_avx512(int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                              const float* B, int64_t b_rs, int64_t b_cs, float* C, int64_t ldc, const float* mask,
                              int64_t m_rs, int64_t m_cs, float* scratch) {
  ne::kernels::small_gemm::small_gemm_f32_6x64__avx512(M, N, K, alpha, A, lda, B, b_rs, b_cs, C, ldc, mask, m_rs, m_cs,
                                                       scratch);
}
// The same with bf16 products, fp32 accumulation (AVX512_BF16 CPUs only): A and B rounded to
// bf16 (nearest even) per call. scratch: small_gemm_bf16_scratch_bytes(M, N, K) bytes.
inline int64_t small_gemm_bf16_scratch_bytes(int64_t M, int64_t N, int64_t K) {
  return ne::kernels::small_gemm::bf16_scratch_bytes(M, N, K);
}
inline void small_gemm_bf16_avx512bf16(int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                                       const float* B, int64_t b_rs, int64_t b_cs, float* C, int64_t ldc,
                                       const float* mask, int64_t m_rs, int64_t m_cs, void* scratch) {
  ne::kernels::small_gemm::small_gemm_bf16_f32acc_6x64__avx512bf16(M, N, K, alpha, A, lda, B, b_rs, b_cs, C, ldc, mask,
                                                                   m_rs, m_cs, scratch);
}
// Gelu over n floats, split over the OpenMP threads, with the entry pick() chooses.
void gelu_parallel(bool tanh_form, const float* src, float* dst, int64_t n);

// oneDNN picks the implementation (AMX brgemm, VNNI brgemm, ...) from the whole problem, M
// included, and with it the weight layout: on an AMX CPU a small M (1..3 rows, small K) can go to
// the VNNI brgemm, whose s8-src layout carries a compensation that no reorder from the AMX layout
// produces. So the dense InnerProducts pack the weight at init, from the plain weight, in the
// layout of each of these M classes (duplicates collapse), and later M reuse one of them.
inline constexpr int64_t kWeightLayoutProbeM[] = {1, 16};  // plus 128 x threads, the typical M

// The packed weight in layout `want` if `packed` holds one, else nullptr.
dnnl::memory* find_packed_weights(std::deque<dnnl::memory>& packed, const dnnl::memory::desc& want);
// The packed weight in layout `want`: one already in `packed` (front = the first packing), or a
// reorder of the front one, made once and appended (deque: addresses stay stable). Throws
// dnnl::error when oneDNN cannot reorder between the two layouts.
dnnl::memory* packed_weights_for(std::deque<dnnl::memory>& packed, const dnnl::memory::desc& want);

}  // namespace ne::dense
