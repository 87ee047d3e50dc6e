// Internal to the family's files without ISA flags (pack.cpp, sparsity.cpp): bitwise access to
// a weight W[K, N] of the three weight dtypes. Internal linkage (unnamed namespace), so no copy
// built with ISA flags can ever stand in for these.
#pragma once
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>

#include "kernels/sparse_gemm/sparse_gemm.hpp"

namespace ne::sparse {
namespace {

// Bitwise "is non-zero" element accessor over the three weight dtypes (row stride ld elements).
struct WView {
  const uint8_t* p;
  DType dt;
  int64_t ld;  // elements
  size_t es;
  bool nz(int k, int n) const {
    const uint8_t* e = p + (size_t(k) * ld + n) * es;
    switch (es) {
      case 4: { uint32_t v; std::memcpy(&v, e, 4); return v != 0; }
      case 2: { uint16_t v; std::memcpy(&v, e, 2); return v != 0; }
      default: return *e != 0;
    }
  }
};

inline void check_dtype(DType dt) {
  if (dt != DType::f32 && dt != DType::bf16 && dt != DType::s8)
    throw std::invalid_argument(std::string("sparse weight dtype must be f32, bf16 or s8, got ") +
                                dtype_name(dt));
}

}  // namespace
}  // namespace ne::sparse
