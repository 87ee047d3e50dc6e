// OpenMP wrappers of the quantization helpers (quant_common.hpp) over the kernels/quant entries.
#include "executor/ops/quant_common.hpp"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "kernels/cpu_features.hpp"

namespace ne::quant {
namespace {

// Split [0, n) into per-thread chunks of at least `grain` elements (a multiple of 64).
template <class F>
void parallel_chunks(int64_t n, F&& f) {
  const int64_t grain = 1 << 15;
  const int nt = int(std::min<int64_t>(omp_get_max_threads(), std::max<int64_t>(1, n / grain)));
  if (nt <= 1) {
    f(int64_t(0), n);
    return;
  }
#pragma omp parallel num_threads(nt)
  {
    const int t = omp_get_thread_num(), T = omp_get_num_threads();
    int64_t per = (n + T - 1) / T;
    per = (per + 63) / 64 * 64;
    const int64_t b = std::min<int64_t>(n, int64_t(t) * per), e = std::min<int64_t>(n, b + per);
    if (e > b) f(b, e);
  }
}

}  // namespace

bool use_avx512() { return !portable_forced() && ne::cpu::mayiuse(ne::cpu::Isa::avx512_core); }

namespace kq = ne::kernels::quant;
const ne::kernels::Ukernel<kq::minmax_fn>& minmax_kernel() { return kq::minmax_kernels().choose(portable_forced()); }
const ne::kernels::Ukernel<kq::quantize_fn>& quantize_kernel() {
  return kq::quantize_kernels().choose(portable_forced());
}
const ne::kernels::Ukernel<kq::to_bf16_fn>& to_bf16_kernel() { return kq::to_bf16_kernels().choose(portable_forced()); }

void dynamic_qparams(float mn, float mx, bool is_signed, float* scale, int* zero_point) {
  mn = std::min(mn, 0.f);
  mx = std::max(mx, 0.f);
  if (is_signed) {
    const float a = std::max(std::fabs(mn), std::fabs(mx));
    *scale = a > 0 && std::isfinite(a) ? a / 127.f : 1.f;
    *zero_point = 0;
    return;
  }
  const float s = (mx - mn) / 255.f;
  if (!(s > 0) || !std::isfinite(s)) {
    *scale = 1.f;
    *zero_point = 0;
    return;
  }
  *scale = s;
  *zero_point = int(std::max(0.f, std::min(255.f, std::nearbyint(-mn / s))));
}

void minmax(const float* x, int64_t n, float* mn, float* mx) {
  float a = std::numeric_limits<float>::infinity(), b = -a;
  kq::minmax_fn* const k = minmax_kernel().fn;
  const int nt = omp_get_max_threads();
  std::vector<float> lo(size_t(nt), a), hi(size_t(nt), b);
  parallel_chunks(n, [&](int64_t s, int64_t e) {
    float l, h;
    k(x + s, e - s, &l, &h);
    lo[size_t(omp_get_thread_num())] = l;
    hi[size_t(omp_get_thread_num())] = h;
  });
  for (int t = 0; t < nt; ++t) a = std::min(a, lo[size_t(t)]), b = std::max(b, hi[size_t(t)]);
  *mn = a, *mx = b;
}

void quantize(const float* x, void* q, int64_t n, float scale, int zp, bool is_signed) {
  kq::quantize_fn* const k = quantize_kernel().fn;
  parallel_chunks(n, [&](int64_t s, int64_t e) { k(x + s, static_cast<uint8_t*>(q) + s, e - s, scale, zp, is_signed); });
}

void quantize_serial(const float* x, void* q, int64_t n, float scale, int zp, bool is_signed) {
  if (n > 0) quantize_kernel().fn(x, q, n, scale, zp, is_signed);
}

void to_bf16(const float* x, uint16_t* y, int64_t n) {
  kq::to_bf16_fn* const k = to_bf16_kernel().fn;
  parallel_chunks(n, [&](int64_t s, int64_t e) { k(x + s, y + s, e - s); });
}

void from_bf16(const uint16_t* x, float* y, int64_t n) {
  parallel_chunks(n, [&](int64_t s, int64_t e) {
    for (int64_t i = s; i < e; ++i) {
      uint32_t u = uint32_t(x[i]) << 16;
      std::memcpy(&y[i], &u, 4);
    }
  });
}

}  // namespace ne::quant
