// Times the peak loops (peak_avx512.cpp, peak_amx.cpp). Built WITHOUT ISA flags: each
// loop is called only where ne::cpu::mayiuse() says its ISA is usable.
#include "kernels/bench/peak.hpp"

#include <ctime>

#include <algorithm>

#include "kernels/cpu_features.hpp"

namespace ne::bench {
namespace {

double thread_cpu_seconds() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

// ops/s: calibrate an iteration count that takes ~seconds, then best of `rounds`.
double rate(uint64_t (*loop)(uint64_t), double seconds, int rounds) {
  uint64_t iters = 1000;
  for (;;) {  // grow until one run takes >= seconds / 8
    const double t0 = thread_cpu_seconds();
    loop(iters);
    const double t = thread_cpu_seconds() - t0;
    if (t >= seconds / 8 || iters > (1ull << 40)) {
      iters = uint64_t(double(iters) * seconds / std::max(t, 1e-6)) + 1;
      break;
    }
    iters *= 4;
  }
  double best = 0;
  for (int r = 0; r < rounds; ++r) {
    const double t0 = thread_cpu_seconds();
    const uint64_t ops = loop(iters);
    const double t = thread_cpu_seconds() - t0;
    if (t > 0) best = std::max(best, double(ops) / t);
  }
  return best;
}

}  // namespace

Peaks measure_peaks(double seconds, int rounds) {
  using ne::cpu::Isa;
  Peaks p;
  if (ne::cpu::mayiuse(Isa::avx512_core)) p.f32_fma = rate(loop_fma_f32_avx512, seconds, rounds);
  if (ne::cpu::mayiuse(Isa::avx512_core_bf16)) p.bf16_dp = rate(loop_dpbf16_avx512bf16, seconds, rounds);
  if (ne::cpu::mayiuse(Isa::avx512_core_vnni)) p.int8_dp = rate(loop_dpbusd_avx512vnni, seconds, rounds);
  if (ne::cpu::mayiuse(Isa::avx512_core_amx)) {
    p.amx_int8 = rate(loop_tdpbusd_amx, seconds, rounds);
    p.amx_bf16 = rate(loop_tdpbf16_amx, seconds, rounds);
  }
  return p;
}

}  // namespace ne::bench
