// AMX tile configuration shared by the AMX kernels (sparse_gemm, attention) and the peak loops.
// Include only from files built with the AMX flags.
//
// GCC 12: _tile_loadconfig declares an 8-byte read of the config and _tile_loadd / _tile_stored
// declare no memory access, so the compiler may dead-store the config (ldtilecfg then faults)
// or reorder plain stores/loads of tile buffers around the tile instructions. Hence
// load_tile_config() issues ldtilecfg through asm with a memory clobber, and compiler_barrier()
// separates plain writes of a buffer from the tile loads that read it (and tile stores from the
// plain reads after them).
#pragma once
#include <cstdint>

namespace ne::amx {

// The 64-byte palette-1 tile configuration (Intel SDM, LDTILECFG).
struct alignas(64) TileConfig {
  uint8_t palette_id = 1;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

inline void load_tile_config(const TileConfig& cfg) { __asm__ volatile("ldtilecfg %0" : : "m"(cfg) : "memory"); }
inline void compiler_barrier() { __asm__ volatile("" ::: "memory"); }

}  // namespace ne::amx
