// Portable (any x86-64) entries of the element-wise family (eltwise_kernels.inc), moved from
// executor/ops/dense_rowwise.cpp. Compiled without ISA flags.
#include <algorithm>
#include <cmath>

#include "kernels/eltwise/eltwise.hpp"

namespace ne::kernels::eltwise {

// 0.5x(1+erf(x/sqrt2)) = 0.5x*erfc(-x/sqrt2): erfcf keeps the negative tail accurate.
void gelu_erf_f32__generic(const float* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = 0.5f * src[i] * std::erfc(-src[i] * 0.70710678118654752f);
}

void gelu_tanh_f32__generic(const float* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float x = src[i];
    const float y = 0.7978845608028654f * (x + 0.044715f * x * x * x);
    dst[i] = x / (1.f + std::exp(-2.f * y));
  }
}

void softmax_f32_rows__generic(const float* src, float* dst, int64_t rows, int64_t n) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* x = src + r * n;
    float* y = dst + r * n;
    float mx = -INFINITY;
    for (int64_t i = 0; i < n; ++i) mx = std::max(mx, x[i]);
    float sum = 0.f;
    for (int64_t i = 0; i < n; ++i) {
      y[i] = std::exp(x[i] - mx);
      sum += y[i];
    }
    const float inv = 1.f / sum;
    for (int64_t i = 0; i < n; ++i) y[i] *= inv;
  }
}

}  // namespace ne::kernels::eltwise
