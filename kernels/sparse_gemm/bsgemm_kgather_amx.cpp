// AMX K-gather block-sparse GEMM over the K-gather blocking (Blocking::amx_kgather,
// sparse_gemm.hpp): int8 (tdpbsud u8 x s8 / tdpbssd s8 x s8 -> s32) and bf16 (tdpbf16ps
// -> fp32). Built with -mamx-tile -mamx-int8 -mamx-bf16 plus the AVX-512 flags (gather and
// epilogue). Dispatched only where CPUID, XCR0 and arch_prctl(XTILEDATA) all agree.
//
// Orientation: the weight is the A operand, the activations the B operand:
//   Yt[16 ch][16 tok] += W'[16 ch][64 gathered k] . X'[16 k-quads][16 tok][4]
// A = one tile of the packed values (row = channel, 64 bytes = 64 gathered k for int8,
// 32 for bf16), loaded with tileloadd straight from the packed buffer. B = the group's
// gathered activation rows in VNNI order, built per call. Why this way round and not
// A = activations (token rows of gathered bytes) x B = weight in VNNI order: a token-row
// gather is a byte gather per token (vpgatherdd / vpermb per row: 4+ shuffle uops per 64
// bytes), while with the activations feature-major in a per-call panel P[k][64 tokens] a
// B tile row is 4 whole-row loads + in-register interleave shared by 4 token sets (below),
// and C comes out channel-major, which is what the shared epilogue takes (it does the one
// transpose for token-major output). The signed weight as A needs tdpbsud (A s8, B u8);
// s8 activations run tdpbssd, so they need no +128 / column-sum compensation at all.
//
// Per thread: a panel of 64 tokens, P[K][64] (int8, 64 bytes a row) / [K][64] bf16 (128
// bytes): a transposed copy for token-major input, the input itself for feature-major
// when a full 64-token panel (else a zero-padded copy). Per 16-channel group, per tile of
// gathered k, 4 accumulators C0..C3 (tmm0-3) = 4 token sets of 16 (hides the tdp latency;
// the weight tile tmm4 feeds all 4), B in tmm5 / tmm6 alternating.
//   int8: 4 gathered rows a, b, c, d (64 tokens each) -> vpunpck{l,h}bw, vpunpck{l,h}wd
//     -> 4 VNNI-quad vectors, v[q] lane l = tokens 16l + 4q + 0..3: one row of each of the
//     4 B tiles (token set q = {16l + 4q + i}); 6 shuffles per 4 B rows.
//   bf16: 2 gathered rows (2 x 64 tokens) -> vpunpck{l,h}wd per 32-token half: set
//     (half h, s) lane l = tokens 32h + 8l + 4s + 0..3; 4 shuffles per 4 B rows.
// The token permutation is undone on the 16x16 C tiles by 128-bit lane shuffles, then
// the shared epilogue (scale, bias, activation, residual, output dtype, both layouts).
//
// GCC 12: _tile_loadconfig declares an 8-byte read and _tile_loadd / _tile_stored no
// memory access, so ldtilecfg goes through our own asm, and compiler barriers separate the
// B-buffer stores from the tile loads and the C tile stores from the reads of them.
#include <immintrin.h>

#include "kernels/amx_tile.hpp"
#include "kernels/sparse_gemm/bsgemm_avx512_common.hpp"

namespace ne::sparse {
namespace {

using ne::amx::compiler_barrier;
using ne::amx::TileConfig;

constexpr int kMt = 64;  // tokens per panel: 4 token sets of 16

inline __mmask64 bmask(int n) { return n >= 64 ? ~__mmask64(0) : n <= 0 ? 0 : ((__mmask64(1) << n) - 1); }

// ---------------------------------------------------------------- panels
// int8: P[k][64] bytes, tokens m0..m0+63 (zero beyond mt).
void prep_panel_s8(const GemmArgs& a, int K, int m0, int mt, uint8_t* buf, const uint8_t** panel, int64_t* ldp) {
  const uint8_t* src = static_cast<const uint8_t*>(a.src);
  if (a.layout == Layout::feature_major) {
    if (mt == kMt && a.ld_src % 256 != 0) {  // in place (a 256-multiple ld would alias L1 sets)
      *panel = src + m0;
      *ldp = a.ld_src;
      return;
    }
    const __mmask64 km = bmask(mt);
    for (int k = 0; k < K; ++k)
      _mm512_storeu_si512(buf + int64_t(k) * kMt, _mm512_maskz_loadu_epi8(km, src + int64_t(k) * a.ld_src + m0));
  } else {
    // 16 tokens x 64 k bytes -> 16x16 dword transpose -> 4 k rows per dword column.
    src += int64_t(m0) * a.ld_src;
    for (int k0 = 0; k0 < K; k0 += 64)
      for (int mb = 0; mb < kMt; mb += 16) {
        const int rows = std::max(0, std::min(16, mt - mb));
        const __mmask64 km = bmask(K - k0);
        __m512 r[16];
        for (int i = 0; i < 16; ++i)
          r[i] = _mm512_castsi512_ps(i < rows ? _mm512_maskz_loadu_epi8(km, src + int64_t(mb + i) * a.ld_src + k0)
                                              : _mm512_setzero_si512());
        transpose16(r);
        const int cols = std::min(16, (K - k0 + 3) / 4);
        for (int c = 0; c < cols; ++c) {
          const __m512i v = _mm512_castps_si512(r[c]);
          for (int j = 0; j < 4 && k0 + 4 * c + j < K; ++j)
            _mm_storeu_si128(reinterpret_cast<__m128i*>(buf + int64_t(k0 + 4 * c + j) * kMt + mb),
                             _mm512_cvtepi32_epi8(_mm512_srli_epi32(v, 8 * j)));
        }
      }
  }
  *panel = buf;
  *ldp = kMt;
}

// bf16: P[k][64] bf16 (128 bytes a row).
void prep_panel_bf16(const GemmArgs& a, int K, int m0, int mt, uint8_t* buf, const uint8_t** panel, int64_t* ldp) {
  const uint16_t* src = static_cast<const uint16_t*>(a.src);
  uint16_t* p = reinterpret_cast<uint16_t*>(buf);
  if (a.layout == Layout::feature_major) {
    if (mt == kMt && a.ld_src % 128 != 0) {
      *panel = reinterpret_cast<const uint8_t*>(src + m0);
      *ldp = a.ld_src * 2;
      return;
    }
    const __mmask32 k0m = __mmask32(bmask(mt)), k1m = __mmask32(bmask(mt - 32));
    for (int k = 0; k < K; ++k) {
      const uint16_t* s = src + int64_t(k) * a.ld_src + m0;
      _mm512_storeu_si512(p + int64_t(k) * kMt, _mm512_maskz_loadu_epi16(k0m, s));
      _mm512_storeu_si512(p + int64_t(k) * kMt + 32, _mm512_maskz_loadu_epi16(k1m, s + 32));
    }
  } else {
    // 16 tokens x 32 k (one dword = a k pair) -> 16x16 dword transpose -> 2 k rows per column.
    src += int64_t(m0) * a.ld_src;
    for (int k0 = 0; k0 < K; k0 += 32)
      for (int mb = 0; mb < kMt; mb += 16) {
        const int rows = std::max(0, std::min(16, mt - mb));
        const __mmask32 km = __mmask32(bmask(K - k0));
        __m512 r[16];
        for (int i = 0; i < 16; ++i)
          r[i] = _mm512_castsi512_ps(i < rows ? _mm512_maskz_loadu_epi16(km, src + int64_t(mb + i) * a.ld_src + k0)
                                              : _mm512_setzero_si512());
        transpose16(r);
        const int cols = std::min(16, (K - k0 + 1) / 2);
        for (int c = 0; c < cols; ++c) {
          const __m512i v = _mm512_castps_si512(r[c]);
          _mm256_storeu_si256(reinterpret_cast<__m256i*>(p + int64_t(k0 + 2 * c) * kMt + mb), _mm512_cvtepi32_epi16(v));
          if (k0 + 2 * c + 1 < K)
            _mm256_storeu_si256(reinterpret_cast<__m256i*>(p + int64_t(k0 + 2 * c + 1) * kMt + mb),
                                _mm512_cvtepi32_epi16(_mm512_srli_epi32(v, 16)));
        }
      }
  }
  *panel = buf;
  *ldp = kMt * 2;
}

// ---------------------------------------------------------------- micro-kernel
// One 16-channel group x 64 tokens:
//   build_b: one gathered k tile's B tiles, 4 KiB (4 token sets x 1 KiB).
//   run_groups: the groups' k tiles, tdp into 4 accumulators (order: see there).
//   unpermute: C tiles -> C[16][64] fp32, natural token order.
// Measured (int8 1x4 90%, M 1024, 1 thread): building a k tile's B and tileloadd-ing it
// right away: 768x768 676 us; the whole group's B first (20 KiB, with the 48 KiB panel:
// L1 thrash): 1150 us; B two tiles ahead of the loads: 777 us; B of tile t+1 after tile
// t's loads (+ the deferred epilogue): see RESULTS.md.
enum class Op { bsud, bssd, bf16 };

// B tiles of the gathered k tile starting at step s (4 token sets x 1 KiB).
template <bool kBf16>
void build_b(const PackedHeader& h, int64_t s, const uint8_t* panel, int64_t ldp, uint8_t* bb) {
  const int32_t* kidx = h.kidx();
  {
    if constexpr (kBf16) {
      const int32_t* ki = kidx + s * 2;
      for (int q = 0; q < 16; ++q) {
        const uint8_t* ra = panel + int64_t(ki[2 * q]) * ldp;
        const uint8_t* rb = panel + int64_t(ki[2 * q + 1]) * ldp;
        const __m512i a0 = _mm512_loadu_si512(ra), a1 = _mm512_loadu_si512(ra + 64);
        const __m512i b0 = _mm512_loadu_si512(rb), b1 = _mm512_loadu_si512(rb + 64);
        _mm512_store_si512(bb + 0 * 1024 + q * 64, _mm512_unpacklo_epi16(a0, b0));
        _mm512_store_si512(bb + 1 * 1024 + q * 64, _mm512_unpackhi_epi16(a0, b0));
        _mm512_store_si512(bb + 2 * 1024 + q * 64, _mm512_unpacklo_epi16(a1, b1));
        _mm512_store_si512(bb + 3 * 1024 + q * 64, _mm512_unpackhi_epi16(a1, b1));
      }
    } else {
      const int32_t* ki = kidx + s * 4;
      for (int q = 0; q < 16; ++q) {
        const __m512i a = _mm512_loadu_si512(panel + int64_t(ki[4 * q]) * ldp);
        const __m512i b = _mm512_loadu_si512(panel + int64_t(ki[4 * q + 1]) * ldp);
        const __m512i c = _mm512_loadu_si512(panel + int64_t(ki[4 * q + 2]) * ldp);
        const __m512i d = _mm512_loadu_si512(panel + int64_t(ki[4 * q + 3]) * ldp);
        const __m512i ab_lo = _mm512_unpacklo_epi8(a, b), ab_hi = _mm512_unpackhi_epi8(a, b);
        const __m512i cd_lo = _mm512_unpacklo_epi8(c, d), cd_hi = _mm512_unpackhi_epi8(c, d);
        _mm512_store_si512(bb + 0 * 1024 + q * 64, _mm512_unpacklo_epi16(ab_lo, cd_lo));
        _mm512_store_si512(bb + 1 * 1024 + q * 64, _mm512_unpackhi_epi16(ab_lo, cd_lo));
        _mm512_store_si512(bb + 2 * 1024 + q * 64, _mm512_unpacklo_epi16(ab_hi, cd_hi));
        _mm512_store_si512(bb + 3 * 1024 + q * 64, _mm512_unpackhi_epi16(ab_hi, cd_hi));
      }
    }
  }
}

template <bool kBf16>
void unpermute(const uint8_t* cbuf, float* C) {
  for (int i = 0; i < 16; ++i) {
    __m512i x0 = _mm512_load_si512(cbuf + 0 * 1024 + i * 64), x1 = _mm512_load_si512(cbuf + 1 * 1024 + i * 64);
    __m512i x2 = _mm512_load_si512(cbuf + 2 * 1024 + i * 64), x3 = _mm512_load_si512(cbuf + 3 * 1024 + i * 64);
    __m512i o[4];
    if constexpr (kBf16) {
      // set (h, s) = tile 2h + s, lane l = tokens 32h + 8l + 4s + 0..3
      const __m512i t0 = _mm512_shuffle_i32x4(x0, x1, 0x44), t1 = _mm512_shuffle_i32x4(x0, x1, 0xee);
      const __m512i t2 = _mm512_shuffle_i32x4(x2, x3, 0x44), t3 = _mm512_shuffle_i32x4(x2, x3, 0xee);
      o[0] = _mm512_shuffle_i32x4(t0, t0, 0xd8);
      o[1] = _mm512_shuffle_i32x4(t1, t1, 0xd8);
      o[2] = _mm512_shuffle_i32x4(t2, t2, 0xd8);
      o[3] = _mm512_shuffle_i32x4(t3, t3, 0xd8);
      for (int l = 0; l < 4; ++l) _mm512_storeu_si512(C + i * kMt + 16 * l, o[l]);
    } else {
      // tile q, lane l = tokens 16l + 4q + 0..3: a 4x4 transpose of 128-bit lanes
      const __m512i t0 = _mm512_shuffle_i32x4(x0, x1, 0x44), t1 = _mm512_shuffle_i32x4(x2, x3, 0x44);
      const __m512i t2 = _mm512_shuffle_i32x4(x0, x1, 0xee), t3 = _mm512_shuffle_i32x4(x2, x3, 0xee);
      o[0] = _mm512_shuffle_i32x4(t0, t1, 0x88);
      o[1] = _mm512_shuffle_i32x4(t0, t1, 0xdd);
      o[2] = _mm512_shuffle_i32x4(t2, t3, 0x88);
      o[3] = _mm512_shuffle_i32x4(t2, t3, 0xdd);
      for (int l = 0; l < 4; ++l) _mm512_storeu_ps(C + i * kMt + 16 * l, _mm512_cvtepi32_ps(o[l]));
    }
  }
}

// Tile loads wait for older stores to drain (measured: a tileloadd after the B-row stores
// of the next tile, or after the epilogue's output stores, ran 2-3x slower than tdp), so
// the program order is: tile t's loads + tdp, then tile t+1's B rows; and group g's
// epilogue (unpermute + the output stores) after group g+1's first tile is issued, so it
// runs in the shadow of those tdp. Ring of 3 B buffers (4 KiB each), C tiles via cbuf.
template <Op kOp>
void run_groups(const GemmArgs& a, const PackedHeader& h, int g0, int g1, const uint8_t* panel, int64_t ldp,
                uint8_t* ring, uint8_t* cbuf, float* C, int m0, int mt, bool stream) {
  constexpr bool kBf16 = kOp == Op::bf16;
  const int64_t* gp = h.group_ptr();
  const uint8_t* vals = static_cast<const uint8_t*>(h.values());
  auto tiles_of = [&](int g) { return int((gp[g + 1] - gp[g]) / kKgTile); };
  auto flush = [&](int g) {  // cbuf holds group g's C tiles
    unpermute<kBf16>(cbuf, C);
    epilogue(a, C, kMt, g * kKgNb, std::min(kKgNb, h.N - g * kKgNb), m0, mt, stream);
  };
#define NE_TDP(c, x, y)                                        \
  do {                                                         \
    if constexpr (kOp == Op::bf16) _tile_dpbf16ps(c, x, y);    \
    else if constexpr (kOp == Op::bsud) _tile_dpbsud(c, x, y); \
    else _tile_dpbssd(c, x, y);                                \
  } while (0)
  int pend = -1;   // group whose C tiles wait in cbuf for their epilogue
  int ctr = 0;     // ring slot of the next tile to run
  bool built = false;  // the next tile's B is already in ring[ctr % 3]
  for (int g = g0; g < g1; ++g) {
    const int nt = tiles_of(g);
    const int64_t s0 = gp[g];
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    if (nt > 0 && !built) build_b<kBf16>(h, s0, panel, ldp, ring + (ctr % 3) * 4096);
    built = false;
    const uint8_t* A = vals + (s0 / kKgTile) * 1024;
    for (int t = 0; t < nt; ++t, A += 1024, ++ctr) {
      compiler_barrier();  // the B rows are in memory before the tile loads read them
      const uint8_t* bb = ring + (ctr % 3) * 4096;
      _tile_loadd(4, A, 64);
      _tile_loadd(5, bb, 64);
      _tile_loadd(6, bb + 1024, 64);
      _tile_loadd(7, bb + 2048, 64);
      NE_TDP(0, 4, 5);
      NE_TDP(1, 4, 6);
      _tile_loadd(5, bb + 3072, 64);
      NE_TDP(2, 4, 7);
      NE_TDP(3, 4, 5);
      compiler_barrier();
      if (t == 0 && pend >= 0) flush(pend), pend = -1;
      uint8_t* nb = ring + ((ctr + 1) % 3) * 4096;
      if (t + 1 < nt) build_b<kBf16>(h, s0 + int64_t(t + 1) * kKgTile, panel, ldp, nb);
      else if (g + 1 < g1 && tiles_of(g + 1) > 0) build_b<kBf16>(h, gp[g + 1], panel, ldp, nb), built = true;
    }
    if (pend >= 0) flush(pend), pend = -1;  // (g had no tiles)
    compiler_barrier();  // the reads of cbuf above come before the tile stores below
    _tile_stored(0, cbuf, 64);
    _tile_stored(1, cbuf + 1024, 64);
    _tile_stored(2, cbuf + 2048, 64);
    _tile_stored(3, cbuf + 3072, 64);
    compiler_barrier();  // the C tiles are in memory before flush() reads them
    pend = g;
  }
  if (pend >= 0) flush(pend);
#undef NE_TDP
}

// ---------------------------------------------------------------- driver
template <bool kBf16>
void run_kgather(const GemmArgs& a, const PackedHeader& h, int nthreads) {
  const int M = a.M, N = h.N, K = h.K;
  const int npan = (M + kMt - 1) / kMt;
  const int G = h.groups;
  // Items = (panel, chunk of groups); enough chunks that every thread has work.
  int nchunks = 1;
  if (npan < 4 * nthreads) nchunks = std::min(G, (4 * nthreads + npan - 1) / npan);
  const int gpc = (G + nchunks - 1) / nchunks;
  nchunks = (G + gpc - 1) / gpc;
  const int items = npan * nchunks;
  nthreads = std::max(1, std::min(nthreads, items));
  const bool stream = stream_output(a, N);
  const Op op = kBf16 ? Op::bf16 : a.src_dtype == DType::s8 ? Op::bssd : Op::bsud;
  const size_t pbytes = (size_t(K) * kMt * (kBf16 ? 2 : 1) + 63) & ~size_t(63);

#pragma omp parallel num_threads(nthreads)
  {
    static thread_local Scratch scratch;
    const int T = omp_get_num_threads(), t = omp_get_thread_num();
    const int it0 = int(int64_t(items) * t / T), it1 = int(int64_t(items) * (t + 1) / T);
    uint8_t* mem = scratch.get(pbytes + 3 * 4096 + 4096 + sizeof(float) * 16 * kMt);
    uint8_t* pbuf = mem;
    uint8_t* bbuf = mem + pbytes;
    uint8_t* cbuf = bbuf + 3 * 4096;
    float* C = reinterpret_cast<float*>(cbuf + 4096);
    TileConfig cfg;
    for (int i = 0; i < 8; ++i) {
      cfg.colsb[i] = 64;
      cfg.rows[i] = 16;
    }
    ne::amx::load_tile_config(cfg);
    int cur = -1, m0 = 0, mt = 0;
    const uint8_t* panel = nullptr;
    int64_t ldp = 0;
    for (int it = it0; it < it1; ++it) {
      const int pi = it / nchunks, ci = it % nchunks;
      if (pi != cur) {
        cur = pi;
        m0 = pi * kMt;
        mt = std::min(kMt, M - m0);
        if constexpr (kBf16) prep_panel_bf16(a, K, m0, mt, pbuf, &panel, &ldp);
        else prep_panel_s8(a, K, m0, mt, pbuf, &panel, &ldp);
      }
      const int g0 = ci * gpc, g1 = std::min(G, g0 + gpc);
      if constexpr (kBf16) run_groups<Op::bf16>(a, h, g0, g1, panel, ldp, bbuf, cbuf, C, m0, mt, stream);
      else if (op == Op::bssd) run_groups<Op::bssd>(a, h, g0, g1, panel, ldp, bbuf, cbuf, C, m0, mt, stream);
      else run_groups<Op::bsud>(a, h, g0, g1, panel, ldp, bbuf, cbuf, C, m0, mt, stream);
    }
    _tile_release();
    if (stream) _mm_sfence();
  }
}

}  // namespace

void bsgemm_u8s8s32_kgather_16x64__amx(const GemmArgs& a, const void* ph, int nt) {
  run_kgather<false>(a, *static_cast<const PackedHeader*>(ph), nt);
}
void bsgemm_bf16_kgather_16x64__amx(const GemmArgs& a, const void* ph, int nt) {
  run_kgather<true>(a, *static_cast<const PackedHeader*>(ph), nt);
}

}  // namespace ne::sparse
