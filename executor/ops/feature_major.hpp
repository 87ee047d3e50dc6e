// Feature-major (transposed) InnerProduct support (docs/OPS.md "Feature-major mode"): the
// `layout: feature_major` attribute and the plain 2-D transpose the dense fallback uses
// (oneDNN's matmul runs token-major: src [K, M] -> [M, K], GEMM, dst [M, N] -> [N, M]).
#pragma once
#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>

#include "common/ir.hpp"

namespace ne::fm {

// Parses the InnerProduct `layout` attribute: "" / "token_major" -> false, "feature_major" ->
// true; anything else -> *bad set to the value.
inline bool parse_layout(const OpInfo& info, std::string* bad) {
  const std::string l = info.attr("layout", "token_major");
  if (l == "feature_major") return true;
  if (l != "token_major" && !l.empty()) *bad = l;
  return false;
}

// dst[c, r] = src[r, c] for src [rows, cols] row-major, elements of `esize` bytes (1, 2 or 4).
// Tiled 32x32, tiles split over the OpenMP threads.
inline void transpose2d(const void* src, void* dst, int64_t rows, int64_t cols, size_t esize) {
  constexpr int64_t T = 32;
  const int64_t tr = (rows + T - 1) / T, tc = (cols + T - 1) / T;
  auto body = [&](auto tag) {
    using E = decltype(tag);
    const E* s = static_cast<const E*>(src);
    E* d = static_cast<E*>(dst);
#pragma omp parallel for schedule(static) if (rows * cols > (1 << 15))
    for (int64_t t = 0; t < tr * tc; ++t) {
      const int64_t r0 = (t / tc) * T, c0 = (t % tc) * T;
      const int64_t r1 = std::min(rows, r0 + T), c1 = std::min(cols, c0 + T);
      for (int64_t c = c0; c < c1; ++c)
        for (int64_t r = r0; r < r1; ++r) d[c * rows + r] = s[r * cols + c];
    }
  };
  if (esize == 4) body(uint32_t{});
  else if (esize == 2) body(uint16_t{});
  else body(uint8_t{});
}

// dst[c, r] += src[r, c] (fp32): the transpose back of a token-major result with the residual
// (already in dst) added.
inline void transpose2d_add(const float* src, float* dst, int64_t rows, int64_t cols) {
  constexpr int64_t T = 32;
  const int64_t tr = (rows + T - 1) / T, tc = (cols + T - 1) / T;
#pragma omp parallel for schedule(static) if (rows * cols > (1 << 15))
  for (int64_t t = 0; t < tr * tc; ++t) {
    const int64_t r0 = (t / tc) * T, c0 = (t % tc) * T;
    const int64_t r1 = std::min(rows, r0 + T), c1 = std::min(cols, c0 + T);
    for (int64_t c = c0; c < c1; ++c)
      for (int64_t r = r0; r < r1; ++r) dst[c * rows + r] += src[r * cols + c];
  }
}

}  // namespace ne::fm
