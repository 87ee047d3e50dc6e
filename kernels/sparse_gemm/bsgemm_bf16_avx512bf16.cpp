// bf16 block-sparse GEMM, AVX-512 BF16 (vdpbf16ps, fp32 accumulation).
// Built with -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512bf16 -mfma.
//   bsgemm_bf16_1x4_4x96__avx512bf16 : 1x4 blocks; a step = 2 (arbitrary) non-zero k
//       rows of a 4-channel group. The two activation rows are interleaved in registers
//       (vpunpck{l,h}wd) into bf16 pairs; each pair vector feeds 4 vdpbf16ps. The
//       unpack permutes tokens inside 128-bit lanes; undone once when the tile is stored.
//   bsgemm_bf16_4x1_1x128__avx512bf16: 4x1 blocks; activation panel in pair (VNNI-2)
//       order [K/2][m][2], a step = 2 vdpbf16ps per token vector.
#include "kernels/sparse_gemm/bsgemm_avx512_common.hpp"

namespace ne::sparse {
namespace {

inline __m512bh as_bh(__m512i v) { return (__m512bh)v; }

// acc += a.even * b.even + a.odd * b.odd (bf16 pairs, fp32 acc). Inline asm: GCC 12
// adds a register move around the _mm512_dpbf16_ps builtin; this keeps acc in place.
inline void dpbf16(__m512& acc, __m512bh a, __m512bh b) {
  __asm__("vdpbf16ps %2, %1, %0" : "+v"(acc) : "v"(a), "v"(b));
}

// Token-major X[m0.., K] bf16 -> 16x16 dword transposes. For each 16(tokens) x 16
// (dword = k pair) block calls emit(kd, mb, r[]) with r[c] = k pair (kd+c) for 16 tokens.
template <class Emit>
void transpose_pairs(const GemmArgs& a, const PackedHeader& h, int m0, int mt, int mt_pad, Emit emit) {
  const int K = h.K, Kpad = (K + 3) & ~3, Kd = Kpad / 2;
  const uint16_t* src = static_cast<const uint16_t*>(a.src) + int64_t(m0) * a.ld_src;
  for (int kd = 0; kd < Kd; kd += 16)
    for (int mb = 0; mb < mt_pad; mb += 16) {
      const int rows = std::max(0, std::min(16, mt - mb));
      const int words = std::max(0, std::min(32, K - 2 * kd));
      const __mmask32 wm = words >= 32 ? __mmask32(0xffffffffu) : __mmask32((1u << words) - 1);
      __m512 r[16];
      for (int i = 0; i < 16; ++i)
        r[i] = i < rows ? _mm512_castsi512_ps(_mm512_maskz_loadu_epi16(wm, src + int64_t(mb + i) * a.ld_src + 2 * kd))
                        : _mm512_setzero_ps();
      transpose16(r);
      emit(kd, mb, std::min(16, Kd - kd), r);
    }
}

// 1x4: plain panel [Kpad][mt_pad] bf16, mt_pad multiple of 32.
void prep_plain(const GemmArgs& a, const PackedHeader& h, int m0, int mt, int mt_pad, uint8_t* buf,
                const void** panel, int64_t* ldp) {
  const int K = h.K;
  const uint16_t* src = static_cast<const uint16_t*>(a.src);
  uint16_t* p = reinterpret_cast<uint16_t*>(buf);
  if (a.layout == Layout::feature_major) {
    const bool aliasing_ld = (a.ld_src * 2) % 256 == 0;  // rows would share few L1 sets: copy
    if (mt == mt_pad && !aliasing_ld) {
      *panel = src + m0;
      *ldp = a.ld_src;
      return;
    }
    for (int k = 0; k < K; ++k)
      for (int m = 0; m < mt_pad; m += 32) {
        const int n = std::max(0, std::min(32, mt - m)), ns = std::min(32, mt_pad - m);
        const __mmask32 km = n >= 32 ? __mmask32(0xffffffffu) : __mmask32((1u << n) - 1);
        const __mmask32 ks = ns >= 32 ? __mmask32(0xffffffffu) : __mmask32((1u << ns) - 1);
        _mm512_mask_storeu_epi16(p + int64_t(k) * mt_pad + m, ks,
                                 _mm512_maskz_loadu_epi16(km, src + int64_t(k) * a.ld_src + m0 + m));
      }
  } else {
    transpose_pairs(a, h, m0, mt, mt_pad, [&](int kd, int mb, int cols, __m512* r) {
      for (int c = 0; c < cols; ++c) {
        const __m512i v = _mm512_castps_si512(r[c]);
        const int k = 2 * (kd + c);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(p + int64_t(k) * mt_pad + mb), _mm512_cvtepi32_epi16(v));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(p + int64_t(k + 1) * mt_pad + mb),
                            _mm512_cvtepi32_epi16(_mm512_srli_epi32(v, 16)));
      }
    });
  }
  *panel = p;
  *ldp = mt_pad;
}

// 4x1: pair panel [Kpad/2][mt_pad] dwords (k even in the low half).
void prep_pairs(const GemmArgs& a, const PackedHeader& h, int m0, int mt, int mt_pad, uint8_t* buf,
                const void** panel, int64_t* ldp) {
  const int K = h.K, Kd = ((K + 3) & ~3) / 2;
  uint32_t* p = reinterpret_cast<uint32_t*>(buf);
  if (a.layout == Layout::feature_major) {
    const uint16_t* src = static_cast<const uint16_t*>(a.src);
    for (int kd = 0; kd < Kd; ++kd)
      for (int m = 0; m < mt_pad; m += 16) {
        const __mmask16 km = tail_mask(std::max(0, mt - m));
        const int k = 2 * kd;
        __m512i lo = k < K ? _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(km, src + int64_t(k) * a.ld_src + m0 + m))
                           : _mm512_setzero_si512();
        __m512i hi = k + 1 < K
                         ? _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(km, src + int64_t(k + 1) * a.ld_src + m0 + m))
                         : _mm512_setzero_si512();
        _mm512_storeu_si512(p + int64_t(kd) * mt_pad + m, _mm512_or_si512(lo, _mm512_slli_epi32(hi, 16)));
      }
  } else {
    transpose_pairs(a, h, m0, mt, mt_pad, [&](int kd, int mb, int cols, __m512* r) {
      for (int c = 0; c < cols; ++c) _mm512_storeu_ps(p + int64_t(kd + c) * mt_pad + mb, r[c]);
    });
  }
  *panel = p;
  *ldp = mt_pad;
}

constexpr int kPrefetch = 6;  // steps ahead: the rows a step gathers come from L2

template <int R>
void mk_bf16_n4(const PackedHeader& h, int g, const uint16_t* panel, int64_t ldp, float* C, int ldc) {
  __m512 acc[4][2 * R];
  #pragma GCC unroll 8
  for (int i = 0; i < 4; ++i)
    #pragma GCC unroll 8
    for (int v = 0; v < 2 * R; ++v) acc[i][v] = _mm512_setzero_ps();
  const int64_t s0 = h.group_ptr()[g], s1 = h.group_ptr()[g + 1];
  const int32_t* ki = h.kidx();
  const int32_t* wd = static_cast<const int32_t*>(h.values()) + s0 * 4;
  for (int64_t s = s0; s < s1; ++s, wd += 4) {
    const uint16_t* x0 = panel + ki[2 * s] * ldp;
    const uint16_t* x1 = panel + ki[2 * s + 1] * ldp;
    {
      const int64_t sp = s + kPrefetch < s1 ? s + kPrefetch : s;
      const uint16_t* p0 = panel + ki[2 * sp] * ldp;
      const uint16_t* p1 = panel + ki[2 * sp + 1] * ldp;
#pragma GCC unroll 4
      for (int r = 0; r < R; ++r) {
        _mm_prefetch(reinterpret_cast<const char*>(p0 + 32 * r), _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(p1 + 32 * r), _MM_HINT_T0);
      }
    }
    const __m512bh w0 = as_bh(_mm512_set1_epi32(wd[0])), w1 = as_bh(_mm512_set1_epi32(wd[1]));
    const __m512bh w2 = as_bh(_mm512_set1_epi32(wd[2])), w3 = as_bh(_mm512_set1_epi32(wd[3]));
    #pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const __m512i va = _mm512_loadu_si512(x0 + 32 * r), vb = _mm512_loadu_si512(x1 + 32 * r);
      const __m512bh lo = as_bh(_mm512_unpacklo_epi16(va, vb)), hi = as_bh(_mm512_unpackhi_epi16(va, vb));
      dpbf16(acc[0][2 * r], lo, w0);
      dpbf16(acc[1][2 * r], lo, w1);
      dpbf16(acc[2][2 * r], lo, w2);
      dpbf16(acc[3][2 * r], lo, w3);
      dpbf16(acc[0][2 * r + 1], hi, w0);
      dpbf16(acc[1][2 * r + 1], hi, w1);
      dpbf16(acc[2][2 * r + 1], hi, w2);
      dpbf16(acc[3][2 * r + 1], hi, w3);
    }
  }
  // lo lane (l, j) holds token 8l + j, hi holds 8l + 4 + j: restore token order.
  const __m512i i0 = _mm512_setr_epi32(0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23);
  const __m512i i1 = _mm512_setr_epi32(8, 9, 10, 11, 24, 25, 26, 27, 12, 13, 14, 15, 28, 29, 30, 31);
  #pragma GCC unroll 8
  for (int i = 0; i < 4; ++i)
    #pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      _mm512_storeu_ps(C + i * ldc + 32 * r, _mm512_permutex2var_ps(acc[i][2 * r], i0, acc[i][2 * r + 1]));
      _mm512_storeu_ps(C + i * ldc + 32 * r + 16, _mm512_permutex2var_ps(acc[i][2 * r], i1, acc[i][2 * r + 1]));
    }
}

// 1x4, 16 tokens (small M): the two gathered rows (16 bf16 each) land in the two
// 256-bit halves by masked broadcast loads, one vpermw interleaves them into bf16 pairs
// in natural token order; each pair vector feeds 4 vdpbf16ps. Two steps per iteration.
void mk_bf16_n4_m16(const PackedHeader& h, int g, const uint16_t* panel, int64_t ldp, float* C, int ldc) {
  __m512 acc0[4], acc1[4];
#pragma GCC unroll 4
  for (int i = 0; i < 4; ++i) acc0[i] = acc1[i] = _mm512_setzero_ps();
  const __m512i widx = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8,
                                        23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  const int64_t s0 = h.group_ptr()[g], s1 = h.group_ptr()[g + 1];
  const int32_t* ki = h.kidx();
  const int32_t* wd = static_cast<const int32_t*>(h.values());
  auto pairs = [&](int64_t s) {
    const __m256i r0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(panel + ki[2 * s] * ldp));
    const __m256i r1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(panel + ki[2 * s + 1] * ldp));
    __m512i r = _mm512_maskz_broadcast_i64x4(0x0f, r0);
    r = _mm512_mask_broadcast_i64x4(r, 0xf0, r1);
    return as_bh(_mm512_permutexvar_epi16(widx, r));
  };
  int64_t s = s0;
  for (; s + 1 < s1; s += 2) {
    const __m512bh z0 = pairs(s), z1 = pairs(s + 1);
#pragma GCC unroll 4
    for (int i = 0; i < 4; ++i) {
      dpbf16(acc0[i], z0, as_bh(_mm512_set1_epi32(wd[4 * s + i])));
      dpbf16(acc1[i], z1, as_bh(_mm512_set1_epi32(wd[4 * s + 4 + i])));
    }
  }
  if (s < s1) {
    const __m512bh z0 = pairs(s);
#pragma GCC unroll 4
    for (int i = 0; i < 4; ++i) dpbf16(acc0[i], z0, as_bh(_mm512_set1_epi32(wd[4 * s + i])));
  }
#pragma GCC unroll 4
  for (int i = 0; i < 4; ++i) _mm512_storeu_ps(C + i * ldc, _mm512_add_ps(acc0[i], acc1[i]));
}

template <int MV>
void mk_bf16_k4(const PackedHeader& h, int g, const uint32_t* panel, int64_t ldp, float* C) {
  __m512 acc0[MV], acc1[MV];
  #pragma GCC unroll 8
  for (int v = 0; v < MV; ++v) acc0[v] = acc1[v] = _mm512_setzero_ps();
  const int64_t s0 = h.group_ptr()[g], s1 = h.group_ptr()[g + 1];
  const int32_t* ki = h.kidx();
  const int32_t* wd = static_cast<const int32_t*>(h.values()) + s0 * 2;
  for (int64_t s = s0; s < s1; ++s, wd += 2) {
    const uint32_t* x = panel + (ki[4 * s] / 2) * ldp;
    const __m512bh w0 = as_bh(_mm512_set1_epi32(wd[0])), w1 = as_bh(_mm512_set1_epi32(wd[1]));
    #pragma GCC unroll 8
    for (int v = 0; v < MV; ++v) {
      dpbf16(acc0[v], as_bh(_mm512_loadu_si512(x + 16 * v)), w0);
      dpbf16(acc1[v], as_bh(_mm512_loadu_si512(x + ldp + 16 * v)), w1);
    }
  }
  #pragma GCC unroll 8
  for (int v = 0; v < MV; ++v) _mm512_storeu_ps(C + 16 * v, _mm512_add_ps(acc0[v], acc1[v]));
}

struct Bf16N4 {
  static constexpr int kMaxMt = 96, kMGran = 32;
  static size_t panel_bytes(const PackedHeader& h, int mt_pad) { return size_t((h.K + 3) & ~3) * mt_pad * 2; }
  static void prep_panel(const GemmArgs& a, const PackedHeader& h, int m0, int mt, int mt_pad, uint8_t* buf,
                         const void** panel, int64_t* ldp) {
    prep_plain(a, h, m0, mt, mt_pad, buf, panel, ldp);
  }
  static void compute_group(const PackedHeader& h, int g, const void* pv, int64_t ldp, int mt_pad, float* C, int ldc) {
    const uint16_t* p = static_cast<const uint16_t*>(pv);
    switch (mt_pad / 32) {
      case 1: mk_bf16_n4<1>(h, g, p, ldp, C, ldc); break;
      case 2: mk_bf16_n4<2>(h, g, p, ldp, C, ldc); break;
      default: mk_bf16_n4<3>(h, g, p, ldp, C, ldc); break;
    }
  }
};

struct Bf16N4M16 {
  static constexpr int kMaxMt = 16, kMGran = 16;
  static size_t panel_bytes(const PackedHeader& h, int mt_pad) { return size_t((h.K + 3) & ~3) * mt_pad * 2; }
  static void prep_panel(const GemmArgs& a, const PackedHeader& h, int m0, int mt, int mt_pad, uint8_t* buf,
                         const void** panel, int64_t* ldp) {
    prep_plain(a, h, m0, mt, mt_pad, buf, panel, ldp);
  }
  static void compute_group(const PackedHeader& h, int g, const void* pv, int64_t ldp, int, float* C, int ldc) {
    mk_bf16_n4_m16(h, g, static_cast<const uint16_t*>(pv), ldp, C, ldc);
  }
};

struct Bf16K4 {
  static constexpr int kMaxMt = 128, kMGran = 16;
  static size_t panel_bytes(const PackedHeader& h, int mt_pad) { return size_t((h.K + 3) & ~3) * mt_pad * 2; }
  static void prep_panel(const GemmArgs& a, const PackedHeader& h, int m0, int mt, int mt_pad, uint8_t* buf,
                         const void** panel, int64_t* ldp) {
    prep_pairs(a, h, m0, mt, mt_pad, buf, panel, ldp);
  }
  static void compute_group(const PackedHeader& h, int g, const void* pv, int64_t ldp, int mt_pad, float* C, int) {
    const uint32_t* p = static_cast<const uint32_t*>(pv);
    switch (mt_pad / 16) {
      case 1: mk_bf16_k4<1>(h, g, p, ldp, C); break;
      case 2: mk_bf16_k4<2>(h, g, p, ldp, C); break;
      case 3: mk_bf16_k4<3>(h, g, p, ldp, C); break;
      case 4: mk_bf16_k4<4>(h, g, p, ldp, C); break;
      case 5: mk_bf16_k4<5>(h, g, p, ldp, C); break;
      case 6: mk_bf16_k4<6>(h, g, p, ldp, C); break;
      case 7: mk_bf16_k4<7>(h, g, p, ldp, C); break;
      default: mk_bf16_k4<8>(h, g, p, ldp, C); break;
    }
  }
};

}  // namespace

void bsgemm_bf16_1x4_4x96__avx512bf16(const GemmArgs& a, const void* ph, int nt) {
  run_driver<Bf16N4>(a, *static_cast<const PackedHeader*>(ph), nt);
}
void bsgemm_bf16_1x4_4x16__avx512bf16(const GemmArgs& a, const void* ph, int nt) {
  run_driver<Bf16N4M16>(a, *static_cast<const PackedHeader*>(ph), nt);
}
void bsgemm_bf16_4x1_1x128__avx512bf16(const GemmArgs& a, const void* ph, int nt) {
  run_driver<Bf16K4>(a, *static_cast<const PackedHeader*>(ph), nt);
}

}  // namespace ne::sparse
