// Scalar epilogue shared by the generic kernels (and AVX-512 tails). Header-only,
// everything static so each translation unit keeps its own copy (ISA flags differ).
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

#include "kernels/sparse_gemm/sparse_gemm.hpp"

namespace ne::sparse {
namespace {

inline float scalar_act(float v, Act act) {
  switch (act) {
    case Act::none: return v;
    case Act::relu: return v > 0.f ? v : 0.f;
    case Act::gelu_erf: return 0.5f * v * (1.f + std::erf(v * 0.70710678118654752f));
    case Act::gelu_tanh: {
      // 0.5v(1 + tanh(u)) = v / (1 + exp(-2u)): as the vector entries compute it, and expf is
      // cheaper than tanhf (the int8 reference kernels run this per element below AVX-512).
      const float u = 0.7978845608028654f * (v + 0.044715f * v * v * v);
      return v / (1.f + std::exp(-2.f * u));
    }
    case Act::tanh: return std::tanh(v);
  }
  return v;
}

inline uint16_t scalar_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}

// y = acc (already scaled by the caller if needed) -> bias -> act -> residual -> store
inline void scalar_post_store(float acc, int n, const PostOps& p, const float* res, void* dst) {
  float v = acc;
  if (p.scale) v *= p.scale[n];
  if (p.bias) v += p.bias[n];
  v = scalar_act(v, p.act);
  if (res) v += *res;
  switch (p.dst_dtype) {
    case DType::f32: *static_cast<float*>(dst) = v; break;
    case DType::bf16: *static_cast<uint16_t*>(dst) = scalar_bf16(v); break;
    case DType::u8: {
      float q = std::nearbyint(v / p.dst_scale) + float(p.dst_zero_point);
      q = q < 0.f ? 0.f : q > 255.f ? 255.f : q;
      *static_cast<uint8_t*>(dst) = uint8_t(q);
      break;
    }
    case DType::s8: {
      float q = std::nearbyint(v / p.dst_scale) + float(p.dst_zero_point);
      q = q < -128.f ? -128.f : q > 127.f ? 127.f : q;
      *static_cast<int8_t*>(dst) = int8_t(q);
      break;
    }
    default: break;
  }
}

}  // namespace
}  // namespace ne::sparse
