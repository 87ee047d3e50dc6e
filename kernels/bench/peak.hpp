// Measured per-core instruction peaks of the CPU the benchmark runs on: short
// register-only loops, one thread, no memory traffic, enough independent accumulators
// to cover each instruction's latency. "ops" count a multiply-add as 2.
//
// The loops live in files built with their ISA's flags only (peak_avx512.cpp,
// peak_amx.cpp); peak.cpp (no ISA flags) times them and calls each only when
// ne::cpu::mayiuse() says its ISA is usable (so NE_MAX_ISA caps them as well).
#pragma once
#include <cstdint>

namespace ne::bench {

struct Peaks {            // ops/s on one core; 0 = not measured (ISA not usable here)
  double f32_fma = 0;     // zmm vfmadd231ps        (AVX512F): 32 ops
  double bf16_dp = 0;     // zmm vdpbf16ps          (AVX512_BF16): 64 ops
  double int8_dp = 0;     // zmm vpdpbusd           (AVX512_VNNI): 128 ops
  double amx_int8 = 0;    // tdpbusd  16x16x64      (AMX_INT8): 32768 ops
  double amx_bf16 = 0;    // tdpbf16ps 16x16x32     (AMX_BF16): 16384 ops
};

// Best of `rounds` timings of each loop, each loop run for about `seconds` of this
// thread's CPU time (CLOCK_THREAD_CPUTIME_ID: robust when the core is shared).
Peaks measure_peaks(double seconds = 0.07, int rounds = 3);

// The loops themselves: run `iters` iterations, return the ops done. Call only where the
// ISA is usable (measure_peaks does the checks). amx_*: configures, uses and releases
// the tiles itself (AMX permission is requested by ne::cpu at detection).
uint64_t loop_fma_f32_avx512(uint64_t iters);
uint64_t loop_dpbf16_avx512bf16(uint64_t iters);
uint64_t loop_dpbusd_avx512vnni(uint64_t iters);
uint64_t loop_tdpbusd_amx(uint64_t iters);
uint64_t loop_tdpbf16_amx(uint64_t iters);

}  // namespace ne::bench
