// fp32 block-sparse GEMM, AVX-512F (FMA). Built with -mavx512f -mavx512bw -mavx512vl -mavx512dq -mfma.
//   bsgemm_f32_1x4_4x96__avx512f : 1x4 blocks, one step = 1 k x 4 output channels:
//       one activation row segment (up to 6 zmm = 96 tokens) feeds 4 FMAs each.
//   bsgemm_f32_4x1_1x64__avx512f: 4x1 blocks, one step = 4 consecutive k x 1 channel.
#include "kernels/sparse_gemm/bsgemm_avx512_common.hpp"

namespace ne::sparse {
namespace {

// Activation panel [Kpad][mt_pad] fp32 (feature-major), zero padded.
void prep_panel_f32(const GemmArgs& a, const PackedHeader& h, int m0, int mt, int mt_pad, uint8_t* buf,
                    const void** panel, int64_t* ldp) {
  const int K = h.K, Kpad = (K + 3) & ~3;
  const float* src = static_cast<const float*>(a.src);
  if (a.layout == Layout::feature_major) {
    const bool tail_rows_ok = h.nb == 4 || K == Kpad;  // 4x1 quads may touch rows K..Kpad-1
    const bool aliasing_ld = (a.ld_src * 4) % 256 == 0;  // rows would share few L1 sets: copy
    if (mt == mt_pad && tail_rows_ok && !aliasing_ld) {
      *panel = src + m0;
      *ldp = a.ld_src;
      return;
    }
    float* p = reinterpret_cast<float*>(buf);
    for (int k = 0; k < K; ++k) {
      const float* s = src + int64_t(k) * a.ld_src + m0;
      for (int m = 0; m < mt_pad; m += 16)
        _mm512_storeu_ps(p + int64_t(k) * mt_pad + m, _mm512_maskz_loadu_ps(tail_mask(mt - m), s + m));
    }
    for (int k = K; k < Kpad; ++k)
      for (int m = 0; m < mt_pad; m += 16) _mm512_storeu_ps(p + int64_t(k) * mt_pad + m, _mm512_setzero_ps());
    *panel = p;
    *ldp = mt_pad;
    return;
  }
  // token-major: transpose X[m0 .. m0+mt][0 .. K] into [Kpad][mt_pad]
  uint32_t* p = reinterpret_cast<uint32_t*>(buf);
  const uint32_t* s = reinterpret_cast<const uint32_t*>(src) + int64_t(m0) * a.ld_src;
  for (int kb = 0; kb < Kpad; kb += 16)
    for (int mb = 0; mb < mt_pad; mb += 16) {
      const int rows = std::max(0, std::min(16, mt - mb));
      const int cols = std::min(16, Kpad - kb);
      const int valid_cols = std::max(0, std::min(16, K - kb));
      __m512 r[16];
      const __mmask16 cm = tail_mask(valid_cols);
      for (int i = 0; i < 16; ++i)
        r[i] = i < rows ? _mm512_castsi512_ps(_mm512_maskz_loadu_epi32(cm, s + int64_t(mb + i) * a.ld_src + kb))
                        : _mm512_setzero_ps();
      transpose16(r);
      for (int c = 0; c < cols; ++c) _mm512_storeu_ps(p + int64_t(kb + c) * mt_pad + mb, r[c]);
    }
  *panel = p;
  *ldp = mt_pad;
}

constexpr int kPrefetch = 6;  // steps ahead: the rows a step gathers come from L2

template <int MV>
void mk_f32_n4(const PackedHeader& h, int g, const float* panel, int64_t ldp, float* C, int ldc) {
  __m512 acc[4][MV];
  #pragma GCC unroll 8
  for (int i = 0; i < 4; ++i)
    #pragma GCC unroll 8
    for (int v = 0; v < MV; ++v) acc[i][v] = _mm512_setzero_ps();
  const int64_t s0 = h.group_ptr()[g], s1 = h.group_ptr()[g + 1];
  const int32_t* ki = h.kidx();
  const float* w = static_cast<const float*>(h.values()) + s0 * 4;
  for (int64_t s = s0; s < s1; ++s, w += 4) {
    const float* x = panel + ki[s] * ldp;
    const float* xp = panel + ki[s + kPrefetch < s1 ? s + kPrefetch : s] * ldp;
    #pragma GCC unroll 8
    for (int v = 0; v < MV; ++v) _mm_prefetch(reinterpret_cast<const char*>(xp + 16 * v), _MM_HINT_T0);
    const __m512 w0 = _mm512_set1_ps(w[0]), w1 = _mm512_set1_ps(w[1]);
    const __m512 w2 = _mm512_set1_ps(w[2]), w3 = _mm512_set1_ps(w[3]);
    #pragma GCC unroll 8
    for (int v = 0; v < MV; ++v) {
      const __m512 xv = _mm512_loadu_ps(x + 16 * v);
      acc[0][v] = _mm512_fmadd_ps(w0, xv, acc[0][v]);
      acc[1][v] = _mm512_fmadd_ps(w1, xv, acc[1][v]);
      acc[2][v] = _mm512_fmadd_ps(w2, xv, acc[2][v]);
      acc[3][v] = _mm512_fmadd_ps(w3, xv, acc[3][v]);
    }
  }
  #pragma GCC unroll 8
  for (int i = 0; i < 4; ++i)
    #pragma GCC unroll 8
    for (int v = 0; v < MV; ++v) _mm512_storeu_ps(C + i * ldc + 16 * v, acc[i][v]);
}

template <int MV>
void mk_f32_k4(const PackedHeader& h, int g, const float* panel, int64_t ldp, float* C) {
  __m512 acc0[MV], acc1[MV];
  #pragma GCC unroll 8
  for (int v = 0; v < MV; ++v) acc0[v] = acc1[v] = _mm512_setzero_ps();
  const int64_t s0 = h.group_ptr()[g], s1 = h.group_ptr()[g + 1];
  const int32_t* ki = h.kidx();
  const float* w = static_cast<const float*>(h.values()) + s0 * 4;
  for (int64_t s = s0; s < s1; ++s, w += 4) {
    const float* x = panel + ki[4 * s] * ldp;
    const __m512 w0 = _mm512_set1_ps(w[0]), w1 = _mm512_set1_ps(w[1]);
    const __m512 w2 = _mm512_set1_ps(w[2]), w3 = _mm512_set1_ps(w[3]);
    #pragma GCC unroll 8
    for (int v = 0; v < MV; ++v) {
      acc0[v] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(x + 16 * v), acc0[v]);
      acc1[v] = _mm512_fmadd_ps(w1, _mm512_loadu_ps(x + ldp + 16 * v), acc1[v]);
      acc0[v] = _mm512_fmadd_ps(w2, _mm512_loadu_ps(x + 2 * ldp + 16 * v), acc0[v]);
      acc1[v] = _mm512_fmadd_ps(w3, _mm512_loadu_ps(x + 3 * ldp + 16 * v), acc1[v]);
    }
  }
  #pragma GCC unroll 8
  for (int v = 0; v < MV; ++v) _mm512_storeu_ps(C + 16 * v, _mm512_add_ps(acc0[v], acc1[v]));
}

struct F32N4 {
  static constexpr int kMaxMt = 96, kMGran = 16;
  static size_t panel_bytes(const PackedHeader& h, int mt_pad) { return size_t((h.K + 3) & ~3) * mt_pad * 4; }
  static void prep_panel(const GemmArgs& a, const PackedHeader& h, int m0, int mt, int mt_pad, uint8_t* buf,
                         const void** panel, int64_t* ldp) {
    prep_panel_f32(a, h, m0, mt, mt_pad, buf, panel, ldp);
  }
  static void compute_group(const PackedHeader& h, int g, const void* pv, int64_t ldp, int mt_pad, float* C, int ldc) {
    const float* p = static_cast<const float*>(pv);
    switch (mt_pad / 16) {
      case 1: mk_f32_n4<1>(h, g, p, ldp, C, ldc); break;
      case 2: mk_f32_n4<2>(h, g, p, ldp, C, ldc); break;
      case 3: mk_f32_n4<3>(h, g, p, ldp, C, ldc); break;
      case 4: mk_f32_n4<4>(h, g, p, ldp, C, ldc); break;
      case 5: mk_f32_n4<5>(h, g, p, ldp, C, ldc); break;
      default: mk_f32_n4<6>(h, g, p, ldp, C, ldc); break;
    }
  }
};

struct F32K4 {
  static constexpr int kMaxMt = 64, kMGran = 16;
  static size_t panel_bytes(const PackedHeader& h, int mt_pad) { return size_t((h.K + 3) & ~3) * mt_pad * 4; }
  static void prep_panel(const GemmArgs& a, const PackedHeader& h, int m0, int mt, int mt_pad, uint8_t* buf,
                         const void** panel, int64_t* ldp) {
    prep_panel_f32(a, h, m0, mt, mt_pad, buf, panel, ldp);
  }
  static void compute_group(const PackedHeader& h, int g, const void* pv, int64_t ldp, int mt_pad, float* C, int) {
    const float* p = static_cast<const float*>(pv);
    switch (mt_pad / 16) {
      case 1: mk_f32_k4<1>(h, g, p, ldp, C); break;
      case 2: mk_f32_k4<2>(h, g, p, ldp, C); break;
      case 3: mk_f32_k4<3>(h, g, p, ldp, C); break;
      case 4: mk_f32_k4<4>(h, g, p, ldp, C); break;
      case 5: mk_f32_k4<5>(h, g, p, ldp, C); break;
      case 6: mk_f32_k4<6>(h, g, p, ldp, C); break;
      case 7: mk_f32_k4<7>(h, g, p, ldp, C); break;
      default: mk_f32_k4<8>(h, g, p, ldp, C); break;
    }
  }
};

}  // namespace

void bsgemm_f32_1x4_4x96__avx512f(const GemmArgs& a, const void* ph, int nt) {
  run_driver<F32N4>(a, *static_cast<const PackedHeader*>(ph), nt);
}
void bsgemm_f32_4x1_1x64__avx512f(const GemmArgs& a, const void* ph, int nt) {
  run_driver<F32K4>(a, *static_cast<const PackedHeader*>(ph), nt);
}

}  // namespace ne::sparse
