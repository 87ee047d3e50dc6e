// Internal: the packed header, and kernel entry points. Not part of the public API.
#pragma once
#include <cstdint>

#include "kernels/sparse_gemm/sparse_gemm.hpp"

namespace ne::sparse {

constexpr uint32_t kPackMagic = 0x5053454eu;  // "NESP" little-endian
// Version 2 added the AMX K-gather blocking (nb = 16, tile-major values); version-1
// buffers (nb 1 / 4 only) are still accepted by from_bytes.
constexpr uint16_t kPackVersion = 2;
constexpr int kKgNb = 16;     // K-gather blocking: channels per group (one AMX tile's rows)
constexpr int kKgTile = 16;   // steps per AMX tile (16 k-quads int8 / 16 k-pairs bf16)

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
  int64_t kg_rows;        // K-gather: real (non-padding) gathered rows over all groups, else 0
  uint8_t reserved[128 - 104];

  const uint8_t* base() const { return reinterpret_cast<const uint8_t*>(this); }
  const int64_t* group_ptr() const { return reinterpret_cast<const int64_t*>(base() + off_group_ptr); }
  const int32_t* kidx() const { return reinterpret_cast<const int32_t*>(base() + off_kidx); }
  const void* values() const { return base() + off_values; }
  const int32_t* colsum() const { return reinterpret_cast<const int32_t*>(base() + off_colsum); }
  bool kgather() const { return nb == kKgNb; }
  // Element index in values() of the weight of step s, channel i (of the group), lane j.
  //   nb 1 / 4: [step][nb][kq];  K-gather (nb 16): per tile of 16 steps [16 ch][16 steps][kq]
  //   (one AMX A tile: row = channel, 64 bytes = the tile's gathered k in order).
  int64_t value_index(int64_t s, int i, int j) const {
    if (nb != kKgNb) return (s * nb + i) * kq + j;
    return ((s / kKgTile) * kKgNb + i) * (kKgTile * kq) + (s % kKgTile) * kq + j;
  }
};
static_assert(sizeof(PackedHeader) == 128, "packed header is 128 bytes");

#define NE_BSGEMM_DECLARE(name, wdt, nb, kq, isa, amx, max_m) \
  void name(const GemmArgs& a, const void* packed_header, int nthreads);
#define BSGEMM_KERNEL NE_BSGEMM_DECLARE
#include "kernels/sparse_gemm/bsgemm_kernels.inc"
#undef BSGEMM_KERNEL
#undef NE_BSGEMM_DECLARE

}  // namespace ne::sparse
