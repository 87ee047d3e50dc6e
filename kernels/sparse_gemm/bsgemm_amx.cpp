// AMX block-sparse GEMM (int8 tdpbusd, bf16 tdpbf16ps) over the 4x1 packed format.
// Built with -mamx-tile -mamx-int8 -mamx-bf16 plus the AVX-512 flags (epilogue).
// Dispatched only where CPUID, XCR0 and arch_prctl(XTILEDATA) all agree
// (ne::cpu::Isa::avx512_core_amx). NOT exercised on the development machine (Zen 5, no
// AMX): tests skip it there.
//
// Scheme ("tile-skip"): per 16-channel tile the sparse steps are expanded into dense
// VNNI B tiles (16 k-quads/pairs x 16 channels), one per 64-byte k chunk, remembering
// which chunks are all zero; A tiles are 16 tokens x 64 bytes of a token-major
// activation panel; C = 16 x 16 s32/fp32. All-zero chunks cost nothing; others run at
// the dense AMX rate, so this pays at the coarse (chunk-level) sparsity that 4x1
// pruning leaves, and mainly when AMX's dense rate dwarfs AVX-512.
#include <immintrin.h>

#include <vector>

#include "kernels/sparse_gemm/bsgemm_avx512_common.hpp"

namespace ne::sparse {
namespace {

struct alignas(64) TileConfig {
  uint8_t palette_id = 1;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

template <bool kBf16>
void run_amx(const GemmArgs& a, const PackedHeader& h, int nthreads) {
  const int M = a.M, K = h.K, N = h.N;
  const int es = kBf16 ? 2 : 1;
  const int kc = 64 / es;                       // k per 64-byte chunk
  const int Kpad = (K + kc - 1) / kc * kc, nchunk = Kpad / kc;
  const int Mpad = (M + 15) / 16 * 16;
  const int64_t lda = int64_t(Kpad) * es;       // bytes per panel row
  const bool flip = a.src_dtype == DType::s8;
  // Token-major activation panel [Mpad][Kpad], zero padded (shared by all threads).
  std::vector<uint8_t> A(size_t(Mpad) * lda);
  const uint8_t* src = static_cast<const uint8_t*>(a.src);
#pragma omp parallel for num_threads(nthreads)
  for (int m = 0; m < Mpad; ++m) {
    uint8_t* row = A.data() + m * lda;
    std::memset(row, 0, size_t(lda));
    if (m >= M) continue;
    for (int k = 0; k < K; ++k) {
      const int64_t off = a.layout == Layout::token_major ? int64_t(m) * a.ld_src + k : int64_t(k) * a.ld_src + m;
      std::memcpy(row + int64_t(k) * es, src + off * es, es);
      if (flip) row[k] ^= 0x80;
    }
  }
  const int ntiles = (N + 15) / 16;
#pragma omp parallel num_threads(nthreads)
  {
    TileConfig cfg;
    for (int t = 0; t < 3; ++t) {
      cfg.colsb[t] = 64;
      cfg.rows[t] = 16;
    }
    _tile_loadconfig(&cfg);
    std::vector<uint8_t> B(size_t(nchunk) * 1024);
    std::vector<uint8_t> nz(nchunk);
    alignas(64) int32_t Ct[16 * 16];
    alignas(64) float C[16 * 16];
#pragma omp for schedule(dynamic, 1)
    for (int tile = 0; tile < ntiles; ++tile) {
      const int n0 = tile * 16, nn = std::min(16, N - n0);
      std::fill(B.begin(), B.end(), 0);
      std::fill(nz.begin(), nz.end(), 0);
      for (int i = 0; i < nn; ++i) {
        const int g = n0 + i;  // nb == 1
        for (int64_t s = h.group_ptr()[g]; s < h.group_ptr()[g + 1]; ++s) {
          const int q = h.kidx()[4 * s] / 4;
          const int32_t* wd = static_cast<const int32_t*>(h.values()) + s * (kBf16 ? 2 : 1);
          for (int j = 0; j < (kBf16 ? 2 : 1); ++j) {
            const int row = kBf16 ? 2 * q + j : q;   // k-pair or k-quad index
            const int ch = row / 16;
            std::memcpy(&B[size_t(ch) * 1024 + (row % 16) * 64 + i * 4], &wd[j], 4);
            nz[ch] = 1;
          }
        }
      }
      for (int mb = 0; mb < Mpad; mb += 16) {
        _tile_zero(0);
        for (int ch = 0; ch < nchunk; ++ch) {
          if (!nz[ch]) continue;
          _tile_loadd(1, A.data() + mb * lda + int64_t(ch) * 64, lda);
          _tile_loadd(2, B.data() + size_t(ch) * 1024, 64);
          if constexpr (kBf16) _tile_dpbf16ps(0, 1, 2);
          else _tile_dpbusd(0, 1, 2);
        }
        _tile_stored(0, Ct, 64);
        // C[n][m] = Ct[m][n] (s32 -> f32 with the s8 compensation, or fp32 bits)
        for (int i = 0; i < 16; ++i)
          for (int m = 0; m < 16; ++m) {
            if constexpr (kBf16) {
              std::memcpy(&C[i * 16 + m], &Ct[m * 16 + i], 4);
            } else {
              const int32_t comp = flip && i < nn ? 128 * h.colsum()[n0 + i] : 0;
              C[i * 16 + m] = float(Ct[m * 16 + i] - comp);
            }
          }
        epilogue(a, C, 16, n0, nn, mb, std::min(16, M - mb));
      }
    }
    _tile_release();
  }
}

}  // namespace

void bsgemm_u8s8s32_4x1_16x16__amx(const GemmArgs& a, const void* ph, int nt) {
  run_amx<false>(a, *static_cast<const PackedHeader*>(ph), nt);
}
void bsgemm_bf16_4x1_16x16__amx(const GemmArgs& a, const void* ph, int nt) {
  run_amx<true>(a, *static_cast<const PackedHeader*>(ph), nt);
}

}  // namespace ne::sparse
