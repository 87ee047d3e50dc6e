// Shared helpers of the dense fp32 operators (InnerProduct, Matmul, Softmax, LayerNorm, Gelu):
// the oneDNN engine, the CPU check that guards the *_avx512.cpp kernels, and the row kernels'
// declarations. Compiled without ISA flags: nothing here may use AVX-512 instructions.
#pragma once
#include <deque>
#include <cstdint>
#include <string>

#include <dnnl.hpp>

namespace ne::dense {

// One CPU engine per process (oneDNN engines are thread-safe); one stream per thread.
dnnl::engine& engine();
dnnl::stream& stream();

// True when the AVX-512 kernels (dense_kernels_avx512.cpp) may run: ne::cpu says avx512_core
// (CPUID + XCR0, under the NE_MAX_ISA / set_isa_cap ceiling) and no test forced the portable path.
bool use_avx512();
// Tests: force the portable kernels (true) or go back to detection (false).
void force_portable(bool on);
// "avx512" or "portable" (for kernel() strings).
const char* kernel_isa();

// Row kernels. `rows` independent rows of `n` contiguous floats; single-threaded (the caller
// splits rows over OpenMP threads). src may equal dst.
void softmax_rows_avx512(const float* src, float* dst, int64_t rows, int64_t n);
void layernorm_rows_avx512(const float* src, float* dst, int64_t rows, int64_t n,
                           const float* gamma, const float* beta, float eps);
// Feature-major LayerNorm: columns [c0, c1) of x [n, cols] normalised over dim 0 (single-threaded).
void layernorm_cols_avx512(const float* src, float* dst, int64_t n, int64_t cols, int64_t c0, int64_t c1,
                           const float* gamma, const float* beta, float eps);
// Its two halves, for splitting the rows over threads: per column of [c0, c1), the mean and M2
// (sum of squared deviations) over rows [r0, r1) (arrays indexed from c0); then
// y = (x - mean)·rstd·gamma[row] + beta[row] for rows [r0, r1).
void layernorm_cols_stats_avx512(const float* src, int64_t cols, int64_t r0, int64_t r1, int64_t c0, int64_t c1,
                                 float* mean, float* m2);
void layernorm_cols_apply_avx512(const float* src, float* dst, int64_t cols, int64_t r0, int64_t r1, int64_t c0,
                                 int64_t c1, const float* mean, const float* rstd, const float* gamma,
                                 const float* beta);
// Element-wise over n floats.
void gelu_erf_avx512(const float* src, float* dst, int64_t n);
void gelu_tanh_avx512(const float* src, float* dst, int64_t n);
void gelu_erf_portable(const float* src, float* dst, int64_t n);
void gelu_tanh_portable(const float* src, float* dst, int64_t n);
// Small fp32 GEMM (attention's batched products), single-threaded:
// C[m*ldc + n] = alpha * sum_k A[m*lda + k] * B[k*b_rs + n*b_cs] (+ mask[m*m_rs + n*m_cs]).
// Needs b_cs == 1 or b_rs == 1, and m_cs in {0, 1} when mask is given; scratch holds
// small_gemm_scratch_floats(N, K) floats (used when b_cs != 1).
int64_t small_gemm_scratch_floats(int64_t N, int64_t K);
// dst[c * ldd + r] = src[r * lds + c] for r < rows, c < cols (AVX-512 16x16 blocks).
void transpose_f32_avx512(const float* src, int64_t lds, int64_t rows, int64_t cols, float* dst, int64_t ldd);
void small_gemm_avx512(int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                       const float* B, int64_t b_rs, int64_t b_cs, float* C, int64_t ldc, const float* mask,
                       int64_t m_rs, int64_t m_cs, float* scratch);
// The same with bf16 products, fp32 accumulation (AVX512_BF16 CPUs only): A and B rounded to
// bf16 (nearest even) per call. scratch: small_gemm_bf16_scratch_bytes(M, N, K) bytes.
int64_t small_gemm_bf16_scratch_bytes(int64_t M, int64_t N, int64_t K);
void small_gemm_bf16_avx512bf16(int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                                const float* B, int64_t b_rs, int64_t b_cs, float* C, int64_t ldc,
                                const float* mask, int64_t m_rs, int64_t m_cs, void* scratch);
// Gelu over n floats, split over the OpenMP threads, AVX-512 when use_avx512().
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
