// Portable (any x86-64) entries of the LayerNorm family (layernorm_kernels.inc): rows and cols
// moved from executor/ops/dense_rowwise.cpp; cols_stats / cols_apply (the halves of the cols
// kernel used when the rows are split over threads) written for this list. Compiled without ISA
// flags.
#include <algorithm>
#include <cmath>

#include "kernels/layernorm/layernorm.hpp"

namespace ne::kernels::layernorm {

void layernorm_f32_rows__generic(const float* src, float* dst, int64_t rows, int64_t n,
                                 const float* gamma, const float* beta, float eps) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* x = src + r * n;
    float* y = dst + r * n;
    float s = 0.f;
    for (int64_t i = 0; i < n; ++i) s += x[i];
    const float mean = s / float(n);
    float v = 0.f;
    for (int64_t i = 0; i < n; ++i) v += (x[i] - mean) * (x[i] - mean);
    const float rstd = 1.f / std::sqrt(v / float(n) + eps);
    for (int64_t i = 0; i < n; ++i)
      y[i] = (x[i] - mean) * rstd * gamma[i] + (beta ? beta[i] : 0.f);
  }
}

// Feature-major LayerNorm (`transpose_mode: 1,0`): x is [n, cols] (dims 1.. flattened), each
// column normalised over its n values. Columns [c0, c1) of the whole tensor; blocks of kColBlock
// columns so the inner loops run over contiguous columns (vectorised by the compiler).
void layernorm_f32_cols__generic(const float* src, float* dst, int64_t n, int64_t cols, int64_t c0, int64_t c1,
                                 const float* gamma, const float* beta, float eps) {
  constexpr int64_t kColBlock = 64;
  alignas(64) float mean[kColBlock], acc[kColBlock];
  for (int64_t cb = c0; cb < c1; cb += kColBlock) {
    const int64_t w = std::min(kColBlock, c1 - cb);
    for (int64_t j = 0; j < w; ++j) acc[j] = 0.f;
    for (int64_t i = 0; i < n; ++i) {
      const float* x = src + i * cols + cb;
      for (int64_t j = 0; j < w; ++j) acc[j] += x[j];
    }
    const float inv_n = 1.f / float(n);
    for (int64_t j = 0; j < w; ++j) mean[j] = acc[j] * inv_n, acc[j] = 0.f;
    for (int64_t i = 0; i < n; ++i) {
      const float* x = src + i * cols + cb;
      for (int64_t j = 0; j < w; ++j) {
        const float d = x[j] - mean[j];
        acc[j] += d * d;
      }
    }
    for (int64_t j = 0; j < w; ++j) acc[j] = 1.f / std::sqrt(acc[j] * inv_n + eps);  // rstd
    for (int64_t i = 0; i < n; ++i) {
      const float* x = src + i * cols + cb;
      float* y = dst + i * cols + cb;
      const float g = gamma[i], b = beta ? beta[i] : 0.f;
      for (int64_t j = 0; j < w; ++j) y[j] = (x[j] - mean[j]) * acc[j] * g + b;
    }
  }
}

// Welford's update per column (as the AVX-512 entry, one column at a time).
void layernorm_f32_cols_stats__generic(const float* src, int64_t cols, int64_t r0, int64_t r1, int64_t c0, int64_t c1,
                                       float* mean, float* m2) {
  for (int64_t c = c0; c < c1; ++c) mean[c - c0] = 0.f, m2[c - c0] = 0.f;
  for (int64_t i = r0; i < r1; ++i) {
    const float* x = src + i * cols;
    const float r = 1.f / float(i - r0 + 1);
    for (int64_t c = c0; c < c1; ++c) {
      float& mu = mean[c - c0];
      const float d = x[c] - mu;
      mu += d * r;
      m2[c - c0] += d * (x[c] - mu);
    }
  }
}

void layernorm_f32_cols_apply__generic(const float* src, float* dst, int64_t cols, int64_t r0, int64_t r1, int64_t c0,
                                       int64_t c1, const float* mean, const float* rstd, const float* gamma,
                                       const float* beta) {
  for (int64_t i = r0; i < r1; ++i) {
    const float* x = src + i * cols;
    float* y = dst + i * cols;
    const float g = gamma[i], b = beta ? beta[i] : 0.f;
    for (int64_t c = c0; c < c1; ++c) y[c] = (x[c] - mean[c - c0]) * rstd[c - c0] * g + b;
  }
}

}  // namespace ne::kernels::layernorm
