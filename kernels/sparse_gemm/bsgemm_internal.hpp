// Internal: the packed header, and kernel entry points. Not part of the public API.
#pragma once
#include <cstdint>

#include "kernels/sparse_gemm/sparse_gemm.hpp"

namespace ne::sparse {

constexpr uint32_t kPackMagic = 0x5053454eu;  // "NESP" little-endian
constexpr uint16_t kPackVersion = 1;

// 128 bytes, little-endian, position independent: all sections are byte offsets from
// the start of the header.
struct PackedHeader {
  uint32_t magic;
  uint16_t version;
  uint8_t pattern;       // Pattern
  uint8_t dtype;         // DType of the weights (f32, bf16, s8)
  int32_t K, N;
  int32_t nb, kq;        // group width (output channels), k per step
  int32_t groups;        // ceil(N / nb)
  int32_t reserved0;
  int64_t steps;         // total steps
  int64_t nonzero_blocks, total_blocks;  // of the pattern (for reporting)
  int64_t off_group_ptr;  // int64_t[groups + 1], step index
  int64_t off_kidx;       // int32_t[steps * kq]
  int64_t off_values;     // dtype[steps * nb * kq]
  int64_t off_colsum;     // int32_t[groups * nb] (s8 only, else 0)
  int64_t total_size;
  uint8_t reserved[128 - 96];

  const uint8_t* base() const { return reinterpret_cast<const uint8_t*>(this); }
  const int64_t* group_ptr() const { return reinterpret_cast<const int64_t*>(base() + off_group_ptr); }
  const int32_t* kidx() const { return reinterpret_cast<const int32_t*>(base() + off_kidx); }
  const void* values() const { return base() + off_values; }
  const int32_t* colsum() const { return reinterpret_cast<const int32_t*>(base() + off_colsum); }
};
static_assert(sizeof(PackedHeader) == 128, "packed header is 128 bytes");

#define NE_BSGEMM_DECLARE(name, wdt, nb, kq, isa, amx, max_m) \
  void name(const GemmArgs& a, const void* packed_header, int nthreads);
#define BSGEMM_KERNEL NE_BSGEMM_DECLARE
#include "kernels/sparse_gemm/bsgemm_kernels.inc"
#undef BSGEMM_KERNEL
#undef NE_BSGEMM_DECLARE

}  // namespace ne::sparse
