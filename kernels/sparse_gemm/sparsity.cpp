// The sparsity measures of a weight (see sparsity.hpp). No ISA flags.
#include "kernels/sparse_gemm/sparsity.hpp"

#include <algorithm>

#include "kernels/sparse_gemm/sparse_gemm.hpp"
#include "kernels/sparse_gemm/weight_view.hpp"

namespace ne::sparse {

namespace {

// canonical_zeros for one element type: `neg` is -0.0's bit pattern.
template <class T>
const void* canonical_as(const void* W, size_t n, T neg, std::vector<uint8_t>* storage, int64_t* replaced) {
  const T* u = static_cast<const T*>(W);
  size_t i = 0;
  while (i < n && u[i] != neg) ++i;
  if (i == n) return W;
  storage->assign(static_cast<const uint8_t*>(W), static_cast<const uint8_t*>(W) + n * sizeof(T));
  T* c = reinterpret_cast<T*>(storage->data());
  int64_t r = 0;
  for (; i < n; ++i)
    if (c[i] == neg) c[i] = 0, ++r;
  if (replaced) *replaced = r;
  return storage->data();
}

}  // namespace

const void* canonical_zeros(const void* W, DType dt, size_t n, std::vector<uint8_t>* storage, int64_t* replaced) {
  if (replaced) *replaced = 0;
  if (dt == DType::f32) return canonical_as<uint32_t>(W, n, 0x80000000u, storage, replaced);
  if (dt == DType::bf16) return canonical_as<uint16_t>(W, n, 0x8000u, storage, replaced);
  return W;
}

double element_sparsity(const void* W, DType dt, size_t n) {
  int64_t zeros = 0;
  const size_t es = dtype_size(dt);
  const uint8_t* b = static_cast<const uint8_t*>(W);
  for (size_t i = 0; i < n; ++i) {
    bool z = true;
    for (size_t k = 0; k < es; ++k) z &= b[i * es + k] == 0;
    zeros += z;
  }
  return n ? double(zeros) / double(n) : 0;
}

void count_zero_blocks(const void* W, DType dt, int K, int N, Pattern p, int64_t ldw, int64_t* zero,
                       int64_t* total) {
  check_dtype(dt);
  int64_t z = 0, t = 0;
  if (K <= 0 || N <= 0) {
    *zero = *total = 0;
    return;
  }
  const WView w{static_cast<const uint8_t*>(W), dt, ldw ? ldw : N, dtype_size(dt)};
  switch (p) {
    case Pattern::p1x4:
      for (int k = 0; k < K; ++k)
        for (int n0 = 0; n0 < N; n0 += 4) {
          bool any = false;
          for (int n = n0; n < n0 + 4 && n < N && !any; ++n) any = w.nz(k, n);
          z += !any;
          ++t;
        }
      break;
    case Pattern::p4x1:
      for (int k0 = 0; k0 < K; k0 += 4)
        for (int n = 0; n < N; ++n) {
          bool any = false;
          for (int k = k0; k < k0 + 4 && k < K && !any; ++k) any = w.nz(k, n);
          z += !any;
          ++t;
        }
      break;
    case Pattern::p2of4:
      for (int k0 = 0; k0 < K; k0 += 4)
        for (int n = 0; n < N; ++n) {
          int c = 0;
          for (int k = k0; k < k0 + 4 && k < K; ++k) c += w.nz(k, n);
          z += c <= 2;
          ++t;
        }
      break;
    case Pattern::channel:
      for (int k = 0; k < K; ++k) {
        bool any = false;
        for (int n = 0; n < N && !any; ++n) any = w.nz(k, n);
        z += !any;
        ++t;
      }
      break;
  }
  *zero = z;
  *total = t;
}

double block_sparsity(const void* W, DType dt, int K, int N, Pattern p, int64_t ldw) {
  int64_t z, t;
  count_zero_blocks(W, dt, K, N, p, ldw, &z, &t);
  return t ? double(z) / double(t) : 0.0;
}
double block_sparsity(const float* W, int K, int N, Pattern p, int64_t ldw) {
  return block_sparsity(W, DType::f32, K, N, p, ldw);
}
double block_sparsity(const uint16_t* W, int K, int N, Pattern p, int64_t ldw) {
  return block_sparsity(W, DType::bf16, K, N, p, ldw);
}
double block_sparsity(const int8_t* W, int K, int N, Pattern p, int64_t ldw) {
  return block_sparsity(W, DType::s8, K, N, p, ldw);
}

int64_t zero_group_rows(const void* W, DType dt, int K, int N, int group, int64_t ldw) {
  if (K <= 0 || N <= 0 || group <= 0) return 0;
  const size_t es = dtype_size(dt), ld = size_t(ldw ? ldw : N);
  const uint8_t* b = static_cast<const uint8_t*>(W);
  int64_t zero = 0;
  for (int g = 0; g < N; g += group) {
    const size_t bytes = size_t(std::min(group, N - g)) * es;
    for (int k = 0; k < K; ++k) {
      const uint8_t* r = b + (size_t(k) * ld + size_t(g)) * es;
      bool z = true;
      for (size_t i = 0; i < bytes && z; ++i) z = r[i] == 0;
      zero += z;
    }
  }
  return zero;
}

double z16(const void* W, DType dt, int K, int N, int64_t ldw) {
  if (K <= 0 || N <= 0) return 0.0;
  const int64_t rows = int64_t((N + kZGroup - 1) / kZGroup) * K;
  return double(zero_group_rows(W, dt, K, N, kZGroup, ldw)) / double(rows);
}

}  // namespace ne::sparse
