// int8 block-sparse GEMM, AVX-512 VNNI: X u8 (or s8 + 128 with a column-sum
// compensation) x W s8 -> s32 (vpdpbusd). Built with -mavx512f -mavx512bw -mavx512vl
// -mavx512dq -mavx512vnni.
//   bsgemm_u8s8s32_1x4_4x64__avx512vnni : 1x4 blocks; a step = 4 (arbitrary) non-zero
//       k rows of a 4-channel group. The 4 activation rows (64 tokens each) are
//       interleaved in registers (vpunpck{l,h}bw, vpunpck{l,h}wd) into 4 VNNI-quad
//       vectors; each feeds 4 vpdpbusd (one per output channel). The in-lane token
//       permutation is undone by a 4x4 128-bit-lane transpose when the tile is stored.
//   bsgemm_u8s8s32_4x1_1x64__avx512vnni: 4x1 blocks = one vpdpbusd quad; activation
//       panel in VNNI order [K/4][m][4], one load + one vpdpbusd per token vector.
#include "kernels/sparse_gemm/bsgemm_avx512_common.hpp"

namespace ne::sparse {
namespace {

// acc += dot4(u8 a, s8 b). Inline asm: GCC 12 copies the accumulator around the
// _mm512_dpbusd_epi32 builtin (a register move per instruction); this keeps it in place.
inline void dpbusd(__m512i& acc, __m512i a, __m512i b) {
  __asm__("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(a), "v"(b));
}

// Token-major X[m0.., K] 8-bit -> 16x16 dword (k quad) transposes; emit(kq0, mb, cols, r).
template <class Emit>
void transpose_quads(const GemmArgs& a, const PackedHeader& h, int m0, int mt, int mt_pad, Emit emit) {
  const int K = h.K, Kq = (K + 3) / 4;
  const bool flip = a.src_dtype == DType::s8;
  const uint8_t* src = static_cast<const uint8_t*>(a.src) + int64_t(m0) * a.ld_src;
  for (int kq = 0; kq < Kq; kq += 16)
    for (int mb = 0; mb < mt_pad; mb += 16) {
      const int rows = std::max(0, std::min(16, mt - mb));
      const int bytes = std::max(0, std::min(64, K - 4 * kq));
      const __mmask64 bm = bytes >= 64 ? ~__mmask64(0) : ((__mmask64(1) << bytes) - 1);
      __m512 r[16];
      for (int i = 0; i < 16; ++i) {
        __m512i v = i < rows ? _mm512_maskz_loadu_epi8(bm, src + int64_t(mb + i) * a.ld_src + 4 * kq) : _mm512_setzero_si512();
        if (flip) v = _mm512_mask_xor_epi32(v, 0xffff, v, _mm512_maskz_mov_epi8(bm, _mm512_set1_epi8(char(0x80))));
        r[i] = _mm512_castsi512_ps(v);
      }
      transpose16(r);
      emit(kq, mb, std::min(16, Kq - kq), r);
    }
}

// 1x4: plain panel [Kpad][mt_pad] u8.
void prep_plain(const GemmArgs& a, const PackedHeader& h, int m0, int mt, int mt_pad, uint8_t* buf,
                const void** panel, int64_t* ldp) {
  const int K = h.K;
  const uint8_t* src = static_cast<const uint8_t*>(a.src);
  const bool flip = a.src_dtype == DType::s8;
  uint8_t* p = buf;
  if (a.layout == Layout::feature_major) {
    const bool aliasing_ld = a.ld_src % 256 == 0;  // rows would share few L1 sets: copy
    if (mt == mt_pad && !flip && !aliasing_ld) {
      *panel = src + m0;
      *ldp = a.ld_src;
      return;
    }
    const __m512i x80 = _mm512_set1_epi8(flip ? char(0x80) : 0);
    for (int k = 0; k < K; ++k)
      for (int m = 0; m < mt_pad; m += 64) {
        const int n = std::max(0, std::min(64, mt - m)), ns = std::min(64, mt_pad - m);
        const __mmask64 km = n >= 64 ? ~__mmask64(0) : ((__mmask64(1) << n) - 1);
        const __mmask64 ks = ns >= 64 ? ~__mmask64(0) : ((__mmask64(1) << ns) - 1);
        __m512i v = _mm512_maskz_loadu_epi8(km, src + int64_t(k) * a.ld_src + m0 + m);
        _mm512_mask_storeu_epi8(p + int64_t(k) * mt_pad + m, ks, _mm512_xor_si512(v, x80));
      }
  } else {
    transpose_quads(a, h, m0, mt, mt_pad, [&](int kq, int mb, int cols, __m512* r) {
      for (int c = 0; c < cols; ++c) {
        const __m512i v = _mm512_castps_si512(r[c]);
        const int k = 4 * (kq + c);
        for (int j = 0; j < 4; ++j)
          _mm_storeu_si128(reinterpret_cast<__m128i*>(p + int64_t(k + j) * mt_pad + mb),
                           _mm512_cvtepi32_epi8(_mm512_srli_epi32(v, 8 * j)));
      }
    });
  }
  *panel = p;
  *ldp = mt_pad;
}

// 4x1: VNNI panel [Kpad/4][mt_pad] dwords.
void prep_vnni(const GemmArgs& a, const PackedHeader& h, int m0, int mt, int mt_pad, uint8_t* buf,
               const void** panel, int64_t* ldp) {
  const int K = h.K, Kq = (K + 3) / 4;
  uint32_t* p = reinterpret_cast<uint32_t*>(buf);
  if (a.layout == Layout::feature_major) {
    const uint8_t* src = static_cast<const uint8_t*>(a.src);
    const __m128i x80 = _mm_set1_epi8(a.src_dtype == DType::s8 ? char(0x80) : 0);
    for (int q = 0; q < Kq; ++q)
      for (int m = 0; m < mt_pad; m += 16) {
        const __mmask16 km = tail_mask(std::max(0, mt - m));
        __m512i acc = _mm512_setzero_si512();
        for (int j = 0; j < 4 && 4 * q + j < K; ++j) {
          __m128i b = _mm_xor_si128(_mm_maskz_loadu_epi8(km, src + int64_t(4 * q + j) * a.ld_src + m0 + m), x80);
          acc = _mm512_or_si512(acc, _mm512_slli_epi32(_mm512_cvtepu8_epi32(b), 8 * j));
        }
        _mm512_storeu_si512(p + int64_t(q) * mt_pad + m, acc);
      }
  } else {
    transpose_quads(a, h, m0, mt, mt_pad, [&](int kq, int mb, int cols, __m512* r) {
      for (int c = 0; c < cols; ++c) _mm512_storeu_ps(p + int64_t(kq + c) * mt_pad + mb, r[c]);
    });
  }
  *panel = p;
  *ldp = mt_pad;
}

constexpr int kPrefetch = 6;  // steps ahead: the rows a step gathers come from L2

inline __m512i comp_vec(const PackedHeader& h, bool s8src, int n) {
  return _mm512_set1_epi32(s8src ? 128 * h.colsum()[n] : 0);
}

void mk_s8_n4(const PackedHeader& h, int g, const uint8_t* panel, int64_t ldp, float* C, int ldc, bool s8src) {
  __m512i acc[4][4];
  #pragma GCC unroll 8
  for (int i = 0; i < 4; ++i)
    #pragma GCC unroll 8
    for (int q = 0; q < 4; ++q) acc[i][q] = _mm512_setzero_si512();
  const int64_t s0 = h.group_ptr()[g], s1 = h.group_ptr()[g + 1];
  const int32_t* ki = h.kidx();
  const int32_t* wd = static_cast<const int32_t*>(h.values()) + s0 * 4;
  for (int64_t s = s0; s < s1; ++s, wd += 4) {
    const int32_t* k = ki + 4 * s;
    {
      const int32_t* kp = ki + 4 * (s + kPrefetch < s1 ? s + kPrefetch : s);
#pragma GCC unroll 4
      for (int j = 0; j < 4; ++j) _mm_prefetch(reinterpret_cast<const char*>(panel + kp[j] * ldp), _MM_HINT_T0);
    }
    const __m512i a = _mm512_loadu_si512(panel + k[0] * ldp), b = _mm512_loadu_si512(panel + k[1] * ldp);
    const __m512i c = _mm512_loadu_si512(panel + k[2] * ldp), d = _mm512_loadu_si512(panel + k[3] * ldp);
    const __m512i ab_lo = _mm512_unpacklo_epi8(a, b), ab_hi = _mm512_unpackhi_epi8(a, b);
    const __m512i cd_lo = _mm512_unpacklo_epi8(c, d), cd_hi = _mm512_unpackhi_epi8(c, d);
    __m512i v[4];
    v[0] = _mm512_unpacklo_epi16(ab_lo, cd_lo);  // tokens 16l + 0..3
    v[1] = _mm512_unpackhi_epi16(ab_lo, cd_lo);  // 16l + 4..7
    v[2] = _mm512_unpacklo_epi16(ab_hi, cd_hi);  // 16l + 8..11
    v[3] = _mm512_unpackhi_epi16(ab_hi, cd_hi);  // 16l + 12..15
    #pragma GCC unroll 8
    for (int i = 0; i < 4; ++i) {
      const __m512i w = _mm512_set1_epi32(wd[i]);
      #pragma GCC unroll 8
      for (int q = 0; q < 4; ++q) dpbusd(acc[i][q], v[q], w);
    }
  }
  #pragma GCC unroll 8
  for (int i = 0; i < 4; ++i) {
    const int n = std::min(g * 4 + i, h.groups * 4 - 1);
    const __m512i comp = comp_vec(h, s8src, n);
    const __m512i t0 = _mm512_shuffle_i32x4(acc[i][0], acc[i][1], 0x44);
    const __m512i t1 = _mm512_shuffle_i32x4(acc[i][2], acc[i][3], 0x44);
    const __m512i t2 = _mm512_shuffle_i32x4(acc[i][0], acc[i][1], 0xee);
    const __m512i t3 = _mm512_shuffle_i32x4(acc[i][2], acc[i][3], 0xee);
    const __m512i o[4] = {_mm512_shuffle_i32x4(t0, t1, 0x88), _mm512_shuffle_i32x4(t0, t1, 0xdd),
                          _mm512_shuffle_i32x4(t2, t3, 0x88), _mm512_shuffle_i32x4(t2, t3, 0xdd)};
    #pragma GCC unroll 8
    for (int l = 0; l < 4; ++l) _mm512_storeu_ps(C + i * ldc + 16 * l, _mm512_cvtepi32_ps(_mm512_sub_epi32(o[l], comp)));
  }
}

// 4x1: one vpdpbusd per token vector per step; two accumulator sets (even / odd steps)
// so the dependency chain (latency ~5) does not limit small token tiles.
// 1x4, 16 tokens (small M): the 4 gathered rows (16 bytes each) land in the four
// 128-bit lanes by masked broadcast loads (no shuffle), then one vpermw + one vpshufb
// turn them into a VNNI-quad vector of the 16 tokens in natural order. Two steps per
// iteration into two accumulator sets (latency).
void mk_s8_n4_m16(const PackedHeader& h, int g, const uint8_t* panel, int64_t ldp, float* C, int ldc, bool s8src) {
  __m512i acc0[4], acc1[4];
#pragma GCC unroll 4
  for (int i = 0; i < 4; ++i) acc0[i] = acc1[i] = _mm512_setzero_si512();
  // word index: lane L takes words 2L, 2L+1 of rows a, b, c, d (rows sit in lanes 0..3)
  const __m512i widx = _mm512_set_epi16(31, 30, 23, 22, 15, 14, 7, 6, 29, 28, 21, 20, 13, 12, 5, 4,
                                        27, 26, 19, 18, 11, 10, 3, 2, 25, 24, 17, 16, 9, 8, 1, 0);
  // per lane: bytes [a0..a3 b0..b3 c0..c3 d0..d3] -> [a0 b0 c0 d0, a1 b1 c1 d1, ...]
  const __m512i bctl = _mm512_broadcast_i32x4(_mm_setr_epi8(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15));
  const int64_t s0 = h.group_ptr()[g], s1 = h.group_ptr()[g + 1];
  const int32_t* ki = h.kidx();
  const int32_t* wd = static_cast<const int32_t*>(h.values());
  auto quad = [&](int64_t s) {
    const int32_t* k = ki + 4 * s;
    __m512i r = _mm512_maskz_broadcast_i32x4(0x000f, _mm_loadu_si128(reinterpret_cast<const __m128i*>(panel + k[0] * ldp)));
    r = _mm512_mask_broadcast_i32x4(r, 0x00f0, _mm_loadu_si128(reinterpret_cast<const __m128i*>(panel + k[1] * ldp)));
    r = _mm512_mask_broadcast_i32x4(r, 0x0f00, _mm_loadu_si128(reinterpret_cast<const __m128i*>(panel + k[2] * ldp)));
    r = _mm512_mask_broadcast_i32x4(r, 0xf000, _mm_loadu_si128(reinterpret_cast<const __m128i*>(panel + k[3] * ldp)));
    return _mm512_shuffle_epi8(_mm512_permutexvar_epi16(widx, r), bctl);
  };
  int64_t s = s0;
  for (; s + 1 < s1; s += 2) {
    const __m512i z0 = quad(s), z1 = quad(s + 1);
#pragma GCC unroll 4
    for (int i = 0; i < 4; ++i) {
      dpbusd(acc0[i], z0, _mm512_set1_epi32(wd[4 * s + i]));
      dpbusd(acc1[i], z1, _mm512_set1_epi32(wd[4 * s + 4 + i]));
    }
  }
  if (s < s1) {
    const __m512i z0 = quad(s);
#pragma GCC unroll 4
    for (int i = 0; i < 4; ++i) dpbusd(acc0[i], z0, _mm512_set1_epi32(wd[4 * s + i]));
  }
#pragma GCC unroll 4
  for (int i = 0; i < 4; ++i) {
    const __m512i comp = comp_vec(h, s8src, g * 4 + i);
    _mm512_storeu_ps(C + i * ldc, _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_add_epi32(acc0[i], acc1[i]), comp)));
  }
}

template <int MV>
void mk_s8_k4(const PackedHeader& h, int g, const uint32_t* panel, int64_t ldp, float* C, bool s8src) {
  __m512i acc0[MV], acc1[MV];
#pragma GCC unroll 8
  for (int v = 0; v < MV; ++v) acc0[v] = acc1[v] = _mm512_setzero_si512();
  const int64_t s0 = h.group_ptr()[g], s1 = h.group_ptr()[g + 1];
  const int32_t* ki = h.kidx();
  const int32_t* wd = static_cast<const int32_t*>(h.values());
  int64_t s = s0;
  for (; s + 1 < s1; s += 2) {
    const uint32_t* x0 = panel + (ki[4 * s] >> 2) * ldp;
    const uint32_t* x1 = panel + (ki[4 * s + 4] >> 2) * ldp;
    const __m512i w0 = _mm512_set1_epi32(wd[s]), w1 = _mm512_set1_epi32(wd[s + 1]);
#pragma GCC unroll 8
    for (int v = 0; v < MV; ++v) {
      dpbusd(acc0[v], _mm512_loadu_si512(x0 + 16 * v), w0);
      dpbusd(acc1[v], _mm512_loadu_si512(x1 + 16 * v), w1);
    }
  }
  if (s < s1) {
    const uint32_t* x0 = panel + (ki[4 * s] >> 2) * ldp;
    const __m512i w0 = _mm512_set1_epi32(wd[s]);
#pragma GCC unroll 8
    for (int v = 0; v < MV; ++v) dpbusd(acc0[v], _mm512_loadu_si512(x0 + 16 * v), w0);
  }
  const __m512i comp = comp_vec(h, s8src, g);
#pragma GCC unroll 8
  for (int v = 0; v < MV; ++v)
    _mm512_storeu_ps(C + 16 * v, _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_add_epi32(acc0[v], acc1[v]), comp)));
}

thread_local bool tl_s8src = false;  // set per call by the entry point (same thread runs the region)

struct S8N4 {
  static constexpr int kMaxMt = 64, kMGran = 64;
  static size_t panel_bytes(const PackedHeader& h, int mt_pad) { return size_t((h.K + 3) & ~3) * mt_pad; }
  static void prep_panel(const GemmArgs& a, const PackedHeader& h, int m0, int mt, int mt_pad, uint8_t* buf,
                         const void** panel, int64_t* ldp) {
    tl_s8src = a.src_dtype == DType::s8;
    prep_plain(a, h, m0, mt, mt_pad, buf, panel, ldp);
  }
  static void compute_group(const PackedHeader& h, int g, const void* pv, int64_t ldp, int, float* C, int ldc) {
    mk_s8_n4(h, g, static_cast<const uint8_t*>(pv), ldp, C, ldc, tl_s8src);
  }
};

struct S8N4M16 {
  static constexpr int kMaxMt = 16, kMGran = 16;
  static size_t panel_bytes(const PackedHeader& h, int mt_pad) { return size_t((h.K + 3) & ~3) * mt_pad; }
  static void prep_panel(const GemmArgs& a, const PackedHeader& h, int m0, int mt, int mt_pad, uint8_t* buf,
                         const void** panel, int64_t* ldp) {
    tl_s8src = a.src_dtype == DType::s8;
    prep_plain(a, h, m0, mt, mt_pad, buf, panel, ldp);
  }
  static void compute_group(const PackedHeader& h, int g, const void* pv, int64_t ldp, int, float* C, int ldc) {
    mk_s8_n4_m16(h, g, static_cast<const uint8_t*>(pv), ldp, C, ldc, tl_s8src);
  }
};

struct S8K4 {
  static constexpr int kMaxMt = 64, kMGran = 16;
  static size_t panel_bytes(const PackedHeader& h, int mt_pad) { return size_t((h.K + 3) & ~3) * mt_pad; }
  static void prep_panel(const GemmArgs& a, const PackedHeader& h, int m0, int mt, int mt_pad, uint8_t* buf,
                         const void** panel, int64_t* ldp) {
    tl_s8src = a.src_dtype == DType::s8;
    prep_vnni(a, h, m0, mt, mt_pad, buf, panel, ldp);
  }
  static void compute_group(const PackedHeader& h, int g, const void* pv, int64_t ldp, int mt_pad, float* C, int) {
    const uint32_t* p = static_cast<const uint32_t*>(pv);
    const bool s8 = tl_s8src;
    switch (mt_pad / 16) {
      case 1: mk_s8_k4<1>(h, g, p, ldp, C, s8); break;
      case 2: mk_s8_k4<2>(h, g, p, ldp, C, s8); break;
      case 3: mk_s8_k4<3>(h, g, p, ldp, C, s8); break;
      case 4: mk_s8_k4<4>(h, g, p, ldp, C, s8); break;
      case 5: mk_s8_k4<5>(h, g, p, ldp, C, s8); break;
      case 6: mk_s8_k4<6>(h, g, p, ldp, C, s8); break;
      case 7: mk_s8_k4<7>(h, g, p, ldp, C, s8); break;
      default: mk_s8_k4<8>(h, g, p, ldp, C, s8); break;
    }
  }
};

}  // namespace

void bsgemm_u8s8s32_1x4_4x64__avx512vnni(const GemmArgs& a, const void* ph, int nt) {
  run_driver<S8N4>(a, *static_cast<const PackedHeader*>(ph), nt);
}
void bsgemm_u8s8s32_1x4_4x16__avx512vnni(const GemmArgs& a, const void* ph, int nt) {
  run_driver<S8N4M16>(a, *static_cast<const PackedHeader*>(ph), nt);
}
void bsgemm_u8s8s32_4x1_1x64__avx512vnni(const GemmArgs& a, const void* ph, int nt) {
  run_driver<S8K4>(a, *static_cast<const PackedHeader*>(ph), nt);
}

}  // namespace ne::sparse
