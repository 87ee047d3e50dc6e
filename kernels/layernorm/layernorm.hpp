// ne::kernels::layernorm — fp32 LayerNorm kernels, single-threaded (the caller,
// executor/ops/dense_rowwise.cpp, splits rows or columns over threads). src may equal dst.
//   rows:  `rows` contiguous rows of n floats, y = (x - mean)·rstd·gamma[i] + beta[i],
//          rstd = 1/sqrt(var + eps), biased variance (ONNX LayerNormalization).
//   cols:  feature-major (transpose_mode 1,0, "layernorm_ba"): x is [n, cols] row-major, columns
//          [c0, c1) normalised each over its n values; gamma/beta have n entries (one per row).
//   cols_stats / cols_apply: its two halves, for splitting the rows over threads: per column of
//          [c0, c1), the mean and M2 (sum of squared deviations) over rows [r0, r1) (arrays
//          indexed from c0); then y = (x - mean)·rstd·gamma[row] + beta[row] for rows [r0, r1).
// beta may be null (0).
//
// The lists are layernorm_kernels.inc (best first, generic last), read by dispatch.cpp, the tests
// and the bench.
#pragma once
#include <cstdint>

#include "kernels/ukernel_list.hpp"

namespace ne::kernels::layernorm {

using rows_fn = void(const float* src, float* dst, int64_t rows, int64_t n, const float* gamma, const float* beta,
                     float eps);
using cols_fn = void(const float* src, float* dst, int64_t n, int64_t cols, int64_t c0, int64_t c1, const float* gamma,
                     const float* beta, float eps);
using cols_stats_fn = void(const float* src, int64_t cols, int64_t r0, int64_t r1, int64_t c0, int64_t c1, float* mean,
                           float* m2);
using cols_apply_fn = void(const float* src, float* dst, int64_t cols, int64_t r0, int64_t r1, int64_t c0, int64_t c1,
                           const float* mean, const float* rstd, const float* gamma, const float* beta);

const UkernelList<rows_fn>& rows_kernels();
const UkernelList<cols_fn>& cols_kernels();
const UkernelList<cols_stats_fn>& cols_stats_kernels();
const UkernelList<cols_apply_fn>& cols_apply_kernels();

#define LN_ROWS(name, isa, note) rows_fn name;
#define LN_COLS(name, isa, note) cols_fn name;
#define LN_COLS_STATS(name, isa, note) cols_stats_fn name;
#define LN_COLS_APPLY(name, isa, note) cols_apply_fn name;
#include "kernels/layernorm/layernorm_kernels.inc"

}  // namespace ne::kernels::layernorm
