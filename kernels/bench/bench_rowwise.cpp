// bench_rowwise: every runnable entry of the row-wise kernel lists (kernels/quant, kernels/eltwise,
// kernels/layernorm, kernels/small_gemm) on BERT-base shapes, single-threaded (the
// kernels are; the operators split rows over threads): tokens M = 1024 (batch 8 x seq 128) x
// hidden 768 / intermediate 3072, softmax rows of 128 (attention scores), the attention GEMMs
// Q·Kᵀ 128x128x64 and P·V 128x64x128 of one (batch, head).
//
// Per entry: the best of --rounds rounds (default 7) of the thread CPU time per call, and GB/s (bytes read +
// written once per call; the operands of 1024 x 3072 fp32, 12.6 MB, come from L3 / memory) or
// GFLOP/s (2 M N K per call). Usage: bench_rowwise [--rounds N] [--filter SUBSTRING]
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <time.h>

#include "kernels/cpu_features.hpp"
#include "kernels/eltwise/eltwise.hpp"
#include "kernels/layernorm/layernorm.hpp"
#include "kernels/quant/quant.hpp"
#include "kernels/small_gemm/small_gemm.hpp"

namespace {

int g_rounds = 7;
std::string g_filter;

std::vector<float> randv(size_t n, float lo, float hi, uint32_t seed) {
  std::mt19937 g(seed);
  std::uniform_real_distribution<float> u(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = u(g);
  return v;
}

// This thread's CPU time in seconds: on a shared 2-vCPU machine wall time also counts the time
// the thread waited for a core; CPU time does not.
double thread_seconds() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

// Best CPU time per call (seconds) of f over the rounds; each round repeats f until >= 20 ms.
template <class F>
double best_time(F&& f) {
  f();  // warm up (page faults, caches)
  int reps = 1;
  for (;;) {
    const double t0 = thread_seconds();
    for (int i = 0; i < reps; ++i) f();
    if (thread_seconds() - t0 >= 0.02 || reps >= (1 << 20)) break;
    reps *= 2;
  }
  double best = 1e30;
  for (int r = 0; r < g_rounds; ++r) {
    const double t0 = thread_seconds();
    for (int i = 0; i < reps; ++i) f();
    best = std::min(best, (thread_seconds() - t0) / reps);
  }
  return best;
}

void row(const char* op, const char* entry, const std::string& shape, double s, double amount, bool flops) {
  std::printf("%-22s %-42s %-16s %10.2f us %9.2f %s\n", op, entry, shape.c_str(), s * 1e6, amount / s * 1e-9,
              flops ? "GFLOP/s" : "GB/s");
}

template <class Fn, class Run>
void bench_list(const ne::kernels::UkernelList<Fn>& list, const std::string& shape, double amount, bool flops,
                Run&& run) {
  for (const auto& k : list.entries) {
    if (!g_filter.empty() && std::string(k.name).find(g_filter) == std::string::npos &&
        std::string(list.op).find(g_filter) == std::string::npos)
      continue;
    if (!k.runnable()) {
      std::printf("%-22s %-42s %-16s  not run: %s\n", list.op, k.name, shape.c_str(), k.why_not().c_str());
      continue;
    }
    row(list.op, k.name, shape, best_time([&] { run(k.fn); }), amount, flops);
  }
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--rounds") && i + 1 < argc) g_rounds = std::max(1, std::atoi(argv[++i]));
    else if (!std::strcmp(argv[i], "--filter") && i + 1 < argc) g_filter = argv[++i];
    else {
      std::fprintf(stderr, "usage: %s [--rounds N] [--filter SUBSTRING]\n", argv[0]);
      return 2;
    }
  }
  std::printf("# %s\n# bench_rowwise: single-threaded, best of %d rounds of thread CPU time; GB/s = (bytes read + "
              "written) / time\n",
              ne::cpu::describe().c_str(), g_rounds);
  std::printf("%-22s %-42s %-16s %13s %17s\n", "op", "entry", "shape", "time", "rate");
  namespace kq = ne::kernels::quant;
  namespace ke = ne::kernels::eltwise;
  namespace kln = ne::kernels::layernorm;
  const int64_t M = 1024;
  for (int64_t H : {int64_t(768), int64_t(3072)}) {
    const int64_t n = M * H;
    const std::string sh = std::to_string(M) + "x" + std::to_string(H);
    std::vector<float> x = randv(size_t(n), -4.f, 4.f, 1), y(static_cast<size_t>(n));
    std::vector<uint8_t> q(static_cast<size_t>(n));
    std::vector<uint16_t> b(static_cast<size_t>(n));
    float mn, mx;
    bench_list(kq::minmax_kernels(), sh, 4.0 * n, false, [&](kq::minmax_fn* f) { f(x.data(), n, &mn, &mx); });
    bench_list(kq::quantize_kernels(), sh, 5.0 * n, false,
               [&](kq::quantize_fn* f) { f(x.data(), q.data(), n, 0.0314f, 128, false); });
    bench_list(kq::to_bf16_kernels(), sh, 6.0 * n, false, [&](kq::to_bf16_fn* f) { f(x.data(), b.data(), n); });
    bench_list(ke::gelu_erf_kernels(), sh, 8.0 * n, false, [&](ke::unary_fn* f) { f(x.data(), y.data(), n); });
    bench_list(ke::gelu_tanh_kernels(), sh, 8.0 * n, false, [&](ke::unary_fn* f) { f(x.data(), y.data(), n); });
    const std::vector<float> g = randv(size_t(H), 0.5f, 1.5f, 2), be = randv(size_t(H), -0.5f, 0.5f, 3);
    bench_list(kln::rows_kernels(), sh, 8.0 * n, false,
               [&](kln::rows_fn* f) { f(x.data(), y.data(), M, H, g.data(), be.data(), 1e-12f); });
    // Feature-major: x [H, M] (H normalised, M = 1024 token columns), gamma / beta per row.
    const std::string shf = std::to_string(H) + "x" + std::to_string(M) + " fm";
    bench_list(kln::cols_kernels(), shf, 8.0 * n, false,
               [&](kln::cols_fn* f) { f(x.data(), y.data(), H, M, 0, M, g.data(), be.data(), 1e-12f); });
  }
  for (int64_t rows : {int64_t(1024), int64_t(12288)}) {  // 12288 = 8 x 12 heads x 128 query rows
    const int64_t L = 128, n = rows * L;
    std::vector<float> x = randv(size_t(n), -8.f, 8.f, 4), y(static_cast<size_t>(n));
    bench_list(ke::softmax_kernels(), std::to_string(rows) + "x" + std::to_string(L), 8.0 * n, false,
               [&](ke::softmax_fn* f) { f(x.data(), y.data(), rows, L); });
  }
  namespace ks = ne::kernels::small_gemm;
  {
    const int64_t S = 128, D = 64;
    std::vector<float> q = randv(size_t(S * D), -1.f, 1.f, 5), kt = randv(size_t(S * D), -1.f, 1.f, 6);
    std::vector<float> p = randv(size_t(S * S), 0.f, 1.f, 7), v = randv(size_t(S * D), -1.f, 1.f, 8);
    std::vector<float> mask = randv(size_t(S), -1.f, 0.f, 9), c(static_cast<size_t>(S * S));
    std::vector<uint8_t> scratch(size_t(std::max({ks::f32_scratch_bytes(S, S, D), ks::bf16_scratch_bytes(S, S, D),
                                                  ks::f32_scratch_bytes(S, D, S), ks::bf16_scratch_bytes(S, D, S)})));
    const double qk = 2.0 * S * S * D, pv = 2.0 * S * D * S;
    // Q·Kᵀ: B[k][n] = K[n][k] (b_rs 1, b_cs D), broadcast mask per column; P·V: B = V rows.
    for (const auto* list : {&ks::f32_kernels(), &ks::bf16_kernels()}) {
      bench_list(*list, "QK 128x128x64", qk, true, [&](ks::gemm_fn* f) {
        f(S, S, D, 0.125f, q.data(), D, kt.data(), 1, D, c.data(), S, mask.data(), 0, 1, scratch.data());
      });
      bench_list(*list, "PV 128x64x128", pv, true, [&](ks::gemm_fn* f) {
        f(S, D, S, 1.f, p.data(), S, v.data(), D, 1, c.data(), D, nullptr, 0, 0, scratch.data());
      });
    }
  }
  return 0;
}
