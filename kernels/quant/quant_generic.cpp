// Portable (any x86-64) entries of the quantization family (quant_kernels.inc), moved from
// executor/ops/quant_common.cpp. Compiled without ISA flags.
#include <cmath>
#include <cstring>
#include <limits>

#include "kernels/quant/quant.hpp"

namespace ne::kernels::quant {
namespace {

template <class T>
void quantize_t(const float* x, T* q, int64_t n, float scale, int zp) {
  const float lo = float(std::numeric_limits<T>::min()), hi = float(std::numeric_limits<T>::max());
  const float fzp = float(zp);
  for (int64_t i = 0; i < n; ++i) {
    float v = std::nearbyint(x[i] / scale) + fzp;
    if (!(v >= lo)) v = lo;  // also NaN -> lo, as the AVX-512 body (max_ps takes the 2nd operand)
    if (v > hi) v = hi;
    q[i] = T(v);
  }
}

inline uint16_t bf16_rne(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40);
  return uint16_t((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

}  // namespace

void minmax_f32__generic(const float* x, int64_t n, float* mn, float* mx) {
  float a = std::numeric_limits<float>::infinity(), b = -a;
  for (int64_t i = 0; i < n; ++i) {
    a = x[i] < a ? x[i] : a;
    b = x[i] > b ? x[i] : b;
  }
  *mn = a, *mx = b;
}

void quantize_f32_u8s8__generic(const float* x, void* q, int64_t n, float scale, int zp, bool is_signed) {
  if (is_signed) quantize_t(x, static_cast<int8_t*>(q), n, scale, zp);
  else quantize_t(x, static_cast<uint8_t*>(q), n, scale, zp);
}

void cvt_f32_bf16__generic(const float* x, uint16_t* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = bf16_rne(x[i]);
}

}  // namespace ne::kernels::quant
