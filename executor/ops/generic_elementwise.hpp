// Internal to executor/ops/generic_{binary,unary,where_cast}.cpp: the element-wise helpers they
// share (wrapping integer arithmetic, saturating casts, the chunked parallel loop).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>

#include "executor/ops/generic_util.hpp"

namespace ne {
namespace generic {

// Wrapping integer arithmetic without signed-overflow UB.
template <class T>
T wrap_add(T a, T b) {
  if constexpr (std::is_integral_v<T>) {
    using U = std::make_unsigned_t<T>;
    return T(U(U(a) + U(b)));
  } else {
    return a + b;
  }
}
template <class T>
T wrap_sub(T a, T b) {
  if constexpr (std::is_integral_v<T>) {
    using U = std::make_unsigned_t<T>;
    return T(U(U(a) - U(b)));
  } else {
    return a - b;
  }
}
template <class T>
T wrap_mul(T a, T b) {
  if constexpr (std::is_integral_v<T>) {
    using U = std::conditional_t<(sizeof(T) < sizeof(unsigned)), unsigned, std::make_unsigned_t<T>>;
    return T(U(U(a) * U(b)));
  } else {
    return a * b;
  }
}

template <class T>
T clamp_cast(double v) {
  if constexpr (std::is_integral_v<T>) {
    if (std::isnan(v)) return 0;
    if (v <= double(std::numeric_limits<T>::min())) return std::numeric_limits<T>::min();
    if (v >= double(std::numeric_limits<T>::max())) return std::numeric_limits<T>::max();
    return T(v);
  } else {
    return T(v);
  }
}

template <class F>
void flat_loop(int64_t n, F&& f) {
  const int64_t nch = (n + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
  for (int64_t c = 0; c < nch; ++c) {
    const int64_t s = c * kChunk, e = std::min(n, s + kChunk);
    f(s, e);
  }
}

}  // namespace generic
}  // namespace ne
