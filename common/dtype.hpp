#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "common/error.hpp"

namespace ne {

// The IR's dtypes (ARCHITECTURE.md) plus `bool` for ONNX comparison/logical ops.
enum class DType : uint8_t { fp32, bf16, fp16, s8, u8, s32, int32, int64, boolean };

inline size_t dtype_size(DType t) {
  switch (t) {
    case DType::fp32: case DType::s32: case DType::int32: return 4;
    case DType::bf16: case DType::fp16: return 2;
    case DType::s8: case DType::u8: case DType::boolean: return 1;
    case DType::int64: return 8;
  }
  return 0;
}

inline const char* dtype_name(DType t) {
  switch (t) {
    case DType::fp32: return "fp32";
    case DType::bf16: return "bf16";
    case DType::fp16: return "fp16";
    case DType::s8: return "s8";
    case DType::u8: return "u8";
    case DType::s32: return "s32";
    case DType::int32: return "int32";
    case DType::int64: return "int64";
    case DType::boolean: return "bool";
  }
  return "?";
}

// Accepts the IR names and common aliases (float32, int8, uint8, ...). Returns false if unknown.
inline bool parse_dtype(const std::string& s, DType* out) {
  static const struct { const char* n; DType t; } names[] = {
      {"fp32", DType::fp32},   {"float32", DType::fp32}, {"float", DType::fp32},
      {"bf16", DType::bf16},   {"bfloat16", DType::bf16}, {"fp16", DType::fp16},
      {"float16", DType::fp16}, {"s8", DType::s8},        {"int8", DType::s8},
      {"u8", DType::u8},       {"uint8", DType::u8},     {"s32", DType::s32},
      {"int32", DType::int32}, {"int64", DType::int64},  {"s64", DType::int64},
      {"bool", DType::boolean}};
  for (auto& n : names)
    if (s == n.n) { *out = n.t; return true; }
  return false;
}

inline DType dtype_from_string(const std::string& s) {
  DType t;
  NE_CHECK(parse_dtype(s, &t), "unknown dtype '", s,
           "' (expected one of fp32, bf16, fp16, s8, u8, s32, int32, int64, bool)");
  return t;
}

using Shape = std::vector<int64_t>;

// Product of dims with overflow and negativity checks (for untrusted shapes).
inline int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) {
    NE_CHECK(d >= 0, "negative dimension ", d, " in a concrete shape");
    if (d != 0 && n > INT64_MAX / d) fail("shape product overflows int64");
    n *= d;
  }
  return n;
}

std::string shape_str(const Shape& s);

// bf16 helpers (round to nearest even).
inline uint16_t fp32_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffff) > 0x7f800000) return uint16_t((u >> 16) | 0x40);  // NaN
  u += 0x7fff + ((u >> 16) & 1);
  return uint16_t(u >> 16);
}
inline float bf16_to_fp32(uint16_t h) {
  uint32_t u = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
float fp16_to_fp32(uint16_t h);
uint16_t fp32_to_fp16(float f);

}  // namespace ne
