// Register-only throughput loops for AMX tdpbusd / tdpbf16ps. Built with
// -mamx-tile -mamx-int8 -mamx-bf16 only (kernels/CMakeLists.txt); called only where
// ne::cpu::mayiuse(avx512_core_amx) holds (CPUID + XCR0 tile state + arch_prctl
// XTILEDATA permission, requested by ne::cpu at detection).
// Tiles: tmm0-3 accumulators (16 rows x 64 bytes = 16x16 s32/fp32), tmm4-5 A
// (16 x 64 bytes), tmm6-7 B (16 x 64 bytes, VNNI order). Four independent accumulators
// per iteration, each op reads tiles already in registers: no memory traffic in the loop.
//
// GCC 12's <amxtileintrin.h> tells the compiler that _tile_loadconfig reads only 8 bytes
// of the config and that _tile_loadd / _tile_stored touch no memory at all, so it
// dead-stores the config (ldtilecfg then faults) and the tile buffers. Hence ldtilecfg
// through our own asm with the whole struct as its operand, and compiler barriers
// around the tile loads and stores.
#include <immintrin.h>

#include <cstring>

#include "kernels/amx_tile.hpp"
#include "kernels/bench/peak.hpp"

namespace ne::bench {
namespace {

using ne::amx::TileConfig;

// Configure tmm0-7 as 16 x 64 bytes and load A/B with small non-zero values.
void setup_tiles(bool bf16) {
  TileConfig cfg;
  for (int t = 0; t < 8; ++t) {
    cfg.colsb[t] = 64;
    cfg.rows[t] = 16;
  }
  ne::amx::load_tile_config(cfg);
  alignas(64) uint8_t buf[16 * 64];
  if (bf16) {
    for (int i = 0; i < 16 * 32; ++i) {
      const uint16_t h = uint16_t(0x3c00 + (i % 7));  // ~0.0078: bf16 normal, sums stay finite
      std::memcpy(buf + 2 * i, &h, 2);
    }
  } else {
    for (int i = 0; i < 16 * 64; ++i) buf[i] = uint8_t(1 + i % 5);
  }
  __asm__ volatile("" : : : "memory");  // buf is written before the tile loads read it
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
  _tile_loadd(4, buf, 64);
  _tile_loadd(5, buf, 64);
  _tile_loadd(6, buf, 64);
  _tile_loadd(7, buf, 64);
}

}  // namespace

uint64_t loop_tdpbusd_amx(uint64_t iters) {
  setup_tiles(false);
  for (uint64_t i = 0; i < iters; ++i) {
    _tile_dpbusd(0, 4, 6);
    _tile_dpbusd(1, 4, 7);
    _tile_dpbusd(2, 5, 6);
    _tile_dpbusd(3, 5, 7);
  }
  alignas(64) int32_t c[16 * 16];
  _tile_stored(0, c, 64);  // keep the result observable
  __asm__ volatile("" : : "r"(c) : "memory");
  _tile_release();
  return iters * 4 * (2ull * 16 * 16 * 64);
}

uint64_t loop_tdpbf16_amx(uint64_t iters) {
  setup_tiles(true);
  for (uint64_t i = 0; i < iters; ++i) {
    _tile_dpbf16ps(0, 4, 6);
    _tile_dpbf16ps(1, 4, 7);
    _tile_dpbf16ps(2, 5, 6);
    _tile_dpbf16ps(3, 5, 7);
  }
  alignas(64) float c[16 * 16];
  _tile_stored(0, c, 64);
  __asm__ volatile("" : : "r"(c) : "memory");
  _tile_release();
  return iters * 4 * (2ull * 16 * 16 * 32);
}

}  // namespace ne::bench
