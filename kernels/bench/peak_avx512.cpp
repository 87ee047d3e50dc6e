// Register-only throughput loops for the AVX-512 instructions the sparse kernels use.
// Built with the AVX-512 F/BW/VL + VNNI + BF16 flags (kernels/CMakeLists.txt); each
// function is called only where ne::cpu::mayiuse() allows its ISA (peak.cpp).
// 12 independent zmm accumulators per loop: enough to cover a 4-cycle latency on two
// FMA ports (8 needed) with margin. The empty asm statements keep every accumulator
// live in a register and stop the compiler from folding or hoisting the operations.
#include <immintrin.h>

#include "kernels/bench/peak.hpp"

namespace ne::bench {
namespace {

#define NE_PEAK_KEEP(v) __asm__ volatile("" : "+v"(v))
#define NE_PEAK_12(OP)                                                                              \
  OP(c0); OP(c1); OP(c2); OP(c3); OP(c4); OP(c5); OP(c6); OP(c7); OP(c8); OP(c9); OP(c10); OP(c11)

}  // namespace

uint64_t loop_fma_f32_avx512(uint64_t iters) {
  __m512 a = _mm512_set1_ps(1.0f), b = _mm512_set1_ps(1e-7f);
  NE_PEAK_KEEP(a);
  NE_PEAK_KEEP(b);
  __m512 c0 = _mm512_setzero_ps(), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0, c6 = c0, c7 = c0, c8 = c0,
         c9 = c0, c10 = c0, c11 = c0;
  for (uint64_t i = 0; i < iters; ++i) {
#define OP(c) c = _mm512_fmadd_ps(a, b, c)
    NE_PEAK_12(OP);
#undef OP
    NE_PEAK_12(NE_PEAK_KEEP);
  }
  NE_PEAK_12(NE_PEAK_KEEP);
  return iters * 12 * 16 * 2;
}

uint64_t loop_dpbf16_avx512bf16(uint64_t iters) {
  __m512bh a = (__m512bh)_mm512_set1_epi16(0x3f80), b = (__m512bh)_mm512_set1_epi16(0x3380);  // 1.0, ~6e-8
  NE_PEAK_KEEP(a);
  NE_PEAK_KEEP(b);
  __m512 c0 = _mm512_setzero_ps(), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0, c6 = c0, c7 = c0, c8 = c0,
         c9 = c0, c10 = c0, c11 = c0;
  for (uint64_t i = 0; i < iters; ++i) {
#define OP(c) c = _mm512_dpbf16_ps(c, a, b)
    NE_PEAK_12(OP);
#undef OP
    NE_PEAK_12(NE_PEAK_KEEP);
  }
  NE_PEAK_12(NE_PEAK_KEEP);
  return iters * 12 * 32 * 2;  // 16 fp32 lanes x 2 bf16 pairs
}

uint64_t loop_dpbusd_avx512vnni(uint64_t iters) {
  __m512i a = _mm512_set1_epi8(3), b = _mm512_set1_epi8(-2);
  NE_PEAK_KEEP(a);
  NE_PEAK_KEEP(b);
  __m512i c0 = _mm512_setzero_si512(), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0, c6 = c0, c7 = c0, c8 = c0,
          c9 = c0, c10 = c0, c11 = c0;
  for (uint64_t i = 0; i < iters; ++i) {
#define OP(c) c = _mm512_dpbusd_epi32(c, a, b)
    NE_PEAK_12(OP);
#undef OP
    NE_PEAK_12(NE_PEAK_KEEP);
  }
  NE_PEAK_12(NE_PEAK_KEEP);
  return iters * 12 * 64 * 2;  // 16 s32 lanes x 4 u8*s8 products
}

}  // namespace ne::bench
