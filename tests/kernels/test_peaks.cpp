// The benchmark's peak loops (kernels/bench/peak*.cpp): each returns a positive, finite
// rate where its ISA is usable, and is not run (0) where it is not. Short timings
// (~5 ms per loop, one round): this checks the loops run, not the figures.
#include <cmath>

#include <gtest/gtest.h>

#include "kernels/bench/peak.hpp"
#include "kernels/cpu_features.hpp"

namespace {

using ne::cpu::Isa;

void expect_rate(double r, bool usable, const char* what) {
  if (usable) {
    EXPECT_TRUE(std::isfinite(r) && r > 1e9) << what << ": " << r << " ops/s";
  } else {
    EXPECT_EQ(r, 0.0) << what << " ran though its ISA is not usable (" << ne::cpu::describe() << ")";
  }
}

TEST(CpuPeaks, PositiveFiniteWhereUsableZeroElsewhere) {
  const ne::bench::Peaks p = ne::bench::measure_peaks(0.005, 1);
  expect_rate(p.f32_fma, ne::cpu::mayiuse(Isa::avx512_core), "vfmadd231ps");
  expect_rate(p.bf16_dp, ne::cpu::mayiuse(Isa::avx512_core_bf16), "vdpbf16ps");
  expect_rate(p.int8_dp, ne::cpu::mayiuse(Isa::avx512_core_vnni), "vpdpbusd");
  expect_rate(p.amx_int8, ne::cpu::mayiuse(Isa::avx512_core_amx), "tdpbusd");
  expect_rate(p.amx_bf16, ne::cpu::mayiuse(Isa::avx512_core_amx), "tdpbf16ps");
  if (!ne::cpu::mayiuse(Isa::avx512_core)) GTEST_SKIP() << "no AVX-512 here: " << ne::cpu::why_not(Isa::avx512_core);
}

// Capped below AVX-512 (as NE_MAX_ISA=avx2 does), nothing runs.
TEST(CpuPeaks, CapStopsTheLoops) {
  ne::cpu::set_isa_cap(Isa::avx2);
  const ne::bench::Peaks p = ne::bench::measure_peaks(0.002, 1);
  ne::cpu::clear_isa_cap();
  EXPECT_EQ(p.f32_fma + p.bf16_dp + p.int8_dp + p.amx_int8 + p.amx_bf16, 0.0);
}

}  // namespace
