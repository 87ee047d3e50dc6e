// Micro-benchmark of the dense fp32 ops at BERT-base shapes, driven through the operator API.
// Prints GFLOP/s (GB/s for the memory-bound row ops) and the share of fp32 FMA peak, for 1 and
// 2 threads (or the thread counts given as arguments).
//
// Peak: measured at start with a register-only FMA loop (12 independent zmm chains) on CPU time,
// per thread; also shown against the nominal figure NE_PEAK_GFLOPS (default 270 GFLOP/s per core).
// Shares of peak use CPU time, so they stay meaningful on a machine shared with other jobs.
#include <immintrin.h>
#include <omp.h>

#include <chrono>
#include <ctime>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "executor/operator.hpp"

namespace {

using Clock = std::chrono::steady_clock;

// Process CPU time: on a shared machine, time the threads actually ran (wall time includes time
// spent descheduled by other users' jobs).
double cpu_seconds() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

__attribute__((target("avx512f"))) double measure_peak_1t() {
  const long it = 20000000;
  auto t0 = Clock::now();
  const double c0 = cpu_seconds();
  for (long i = 0; i < it; ++i) {
    asm volatile(
        "vfmadd231ps %%zmm12,%%zmm13,%%zmm0\n vfmadd231ps %%zmm12,%%zmm13,%%zmm1\n"
        "vfmadd231ps %%zmm12,%%zmm13,%%zmm2\n vfmadd231ps %%zmm12,%%zmm13,%%zmm3\n"
        "vfmadd231ps %%zmm12,%%zmm13,%%zmm4\n vfmadd231ps %%zmm12,%%zmm13,%%zmm5\n"
        "vfmadd231ps %%zmm12,%%zmm13,%%zmm6\n vfmadd231ps %%zmm12,%%zmm13,%%zmm7\n"
        "vfmadd231ps %%zmm12,%%zmm13,%%zmm8\n vfmadd231ps %%zmm12,%%zmm13,%%zmm9\n"
        "vfmadd231ps %%zmm12,%%zmm13,%%zmm10\n vfmadd231ps %%zmm12,%%zmm13,%%zmm11\n" ::
            : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9",
              "xmm10", "xmm11");
  }
  (void)t0;
  const double t = cpu_seconds() - c0;
  return it * 12 * 32.0 / t / 1e9;
}

struct Buf {
  ne::Shape shape;
  std::vector<float> v;
  bool is_const = false;
};

std::vector<float> rnd(size_t n, uint32_t seed) {
  std::mt19937 g(seed);
  std::uniform_real_distribution<float> d(-1.f, 1.f);
  std::vector<float> v(n);
  for (auto& x : v) x = d(g);
  return v;
}

size_t numel(const ne::Shape& s) {
  size_t n = 1;
  for (auto d : s) n *= size_t(d);
  return n;
}

// Builds the op, runs it `reps` times after warm-up; returns seconds per call (best of 5 batches).
double g_cpu_sec = 0;

double time_op(const std::string& type, std::vector<std::pair<std::string, std::string>> attrs,
               std::vector<Buf>& ins, std::string* kernel, double* cpu_sec = &g_cpu_sec) {
  ne::OpInfo info;
  info.name = "bench";
  info.type = type;
  for (size_t i = 0; i < ins.size(); ++i) info.inputs.push_back("in" + std::to_string(i));
  info.outputs = {"out"};
  info.attrs = attrs;
  auto op = ne::create_op(info);
  std::vector<ne::Tensor> t(ins.size());
  std::vector<ne::Tensor*> p;
  for (size_t i = 0; i < ins.size(); ++i) {
    t[i].name = info.inputs[i];
    t[i].is_const = ins[i].is_const;
    if (ins[i].is_const) t[i].shape = ins[i].shape, t[i].data = ins[i].v.data();
    p.push_back(&t[i]);
  }
  op->init(p);
  for (size_t i = 0; i < ins.size(); ++i) t[i].shape = ins[i].shape, t[i].data = ins[i].v.data();
  ne::Tensor out;
  std::vector<ne::Tensor*> o{&out};
  op->reshape(p, o);
  std::vector<float> ob(numel(out.shape));
  out.data = ob.data();
  for (int i = 0; i < 3; ++i) op->forward(p, o);
  double best = 1e30, best_cpu = 1e30;
  for (int b = 0; b < 5; ++b) {
    int reps = 0;
    auto t0 = Clock::now();
    const double c0 = cpu_seconds();
    double el = 0;
    do {
      op->forward(p, o);
      ++reps;
      el = std::chrono::duration<double>(Clock::now() - t0).count();
    } while (el < 0.15);
    best = std::min(best, el / reps);
    best_cpu = std::min(best_cpu, (cpu_seconds() - c0) / reps);
  }
  *kernel = op->kernel();
  *cpu_sec = best_cpu;
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<int> threads;
  for (int i = 1; i < argc; ++i) threads.push_back(std::atoi(argv[i]));
  if (threads.empty()) threads = {1, 2};
  const double peak1 = __builtin_cpu_supports("avx512f") ? measure_peak_1t() : 0;
  const double nominal = std::getenv("NE_PEAK_GFLOPS") ? std::atof(std::getenv("NE_PEAK_GFLOPS")) : 270.0;
  std::printf("measured fp32 FMA peak: %.1f GFLOP/s per core (nominal %.0f)\n", peak1, nominal);

  for (int nt : threads) {
    omp_set_num_threads(nt);
    std::printf("\n== %d thread%s: peak %.0f measured / %.0f nominal GFLOP/s ==\n", nt, nt > 1 ? "s" : "",
                peak1 * nt, nominal * nt);
    std::printf("%-44s %9s %9s %9s %7s %7s  %s\n", "op", "wall ms", "GFLOP/s", "cpuGF/s", "%meas",
                "%nom", "kernel");
    // cpuGF/s: flop per CPU-second times threads (= GFLOP/s had the threads not been descheduled);
    // the shares of peak use it.
    auto report = [&](const std::string& name, double sec, double flop, const std::string& k) {
      const double gf = flop / sec / 1e9, gc = flop / (g_cpu_sec / nt) / 1e9;
      std::printf("%-44s %9.3f %9.1f %9.1f %6.1f%% %6.1f%%  %s\n", name.c_str(), sec * 1e3, gf, gc,
                  100 * gc / (peak1 * nt), 100 * gc / (nominal * nt), k.c_str());
    };
    // Row ops: bytes read + written per second (wall, and on CPU time as above); ns per element.
    auto report_bw = [&](const std::string& name, double sec, double bytes, const std::string& k) {
      std::printf("%-44s %9.3f %6.1f GB/s %6.1f GB/s %5.2f ns/el/thread  %s\n", name.c_str(), sec * 1e3,
                  bytes / sec / 1e9, bytes / (g_cpu_sec / nt) / 1e9, g_cpu_sec / (bytes / 8) * 1e9, k.c_str());
    };
    std::string k;
    for (int64_t M : {128, 1024}) {
      struct S { int64_t K, N; const char* post; };
      for (S s : {S{768, 768, ""}, S{768, 768, "sum"}, S{768, 3072, "gelu_erf"}, S{3072, 768, "sum"}}) {
        std::vector<Buf> in{{{M, s.K}, rnd(M * s.K, 1)}, {{s.K, s.N}, rnd(s.K * s.N, 2), true},
                            {{s.N}, rnd(s.N, 3), true}};
        if (std::string(s.post) == "sum") in.push_back({{M, s.N}, rnd(M * s.N, 4)});
        std::vector<std::pair<std::string, std::string>> attrs;
        if (*s.post) attrs.push_back({"append_op", s.post});
        const double sec = time_op("InnerProduct", attrs, in, &k);
        report("InnerProduct M=" + std::to_string(M) + " " + std::to_string(s.K) + "->" + std::to_string(s.N) +
                   (*s.post ? std::string(" +") + s.post : ""),
               sec, 2.0 * M * s.K * s.N, k);
      }
    }
    {
      const int64_t S = 128, H = 12, D = 64;
      for (int64_t B : {1, 8})
      for (const char* path : {"onednn", "sgemm"}) {
      setenv("NE_DENSE_MATMUL", path, 1);
      std::vector<Buf> qk{{{B, S, H, D}, rnd(B * S * H * D, 5)}, {{B, S, H, D}, rnd(B * S * H * D, 6)},
                          {{B, 1, 1, S}, rnd(B * S, 7)}};
      const double sec0 = time_op("Matmul",
                           {{"src0_perm", "0,2,1,3"}, {"src1_perm", "0,2,3,1"}, {"output_scale", "0.125"},
                            {"append_op", "binary_add"}},
                           qk, &k);
      report("Matmul QK^T B" + std::to_string(B) + " S128 H12 D64 +scale+mask", sec0, 2.0 * B * H * S * S * D, k);
      std::vector<Buf> pv{{{B, H, S, S}, rnd(B * H * S * S, 8)}, {{B, S, H, D}, rnd(B * S * H * D, 9)}};
      const double sec = time_op("Matmul", {{"src1_perm", "0,2,1,3"}, {"dst_perm", "0,2,1,3"}}, pv, &k);
      report("Matmul PV B" + std::to_string(B) + " S128 H12 D64 (dst perm)", sec, 2.0 * B * H * S * S * D, k);
      }
      unsetenv("NE_DENSE_MATMUL");
      const int64_t B = 8;
      double sec;
      std::vector<Buf> sm{{{B, H, S, S}, rnd(B * H * S * S, 10)}};
      sec = time_op("Softmax", {{"axis", "-1"}}, sm, &k);
      report_bw("Softmax [8,12,128,128]", sec, 2.0 * 4 * B * H * S * S, k);
      std::vector<Buf> ln{{{B * S, 768}, rnd(B * S * 768, 11)}, {{768}, rnd(768, 12), true}, {{768}, rnd(768, 13), true}};
      sec = time_op("LayerNorm", {}, ln, &k);
      report_bw("LayerNorm [1024,768]", sec, 2.0 * 4 * B * S * 768, k);
      // Feature-major (transpose_mode 1,0): [768, M] normalised along columns, M = 128 and 1024.
      for (int64_t M : {int64_t(128), B * S}) {
        std::vector<Buf> lt{{{768, M}, rnd(M * 768, 11)}, {{768}, rnd(768, 12), true}, {{768}, rnd(768, 13), true}};
        sec = time_op("LayerNorm", {{"transpose_mode", "1,0"}}, lt, &k);
        report_bw("LayerNorm ba [768," + std::to_string(M) + "]", sec, 2.0 * 4 * M * 768, k);
        std::vector<Buf> lr{{{M, 768}, rnd(M * 768, 11)}, {{768}, rnd(768, 12), true}, {{768}, rnd(768, 13), true}};
        sec = time_op("LayerNorm", {}, lr, &k);
        report_bw("LayerNorm [" + std::to_string(M) + ",768]", sec, 2.0 * 4 * M * 768, k);
      }
      std::vector<Buf> ge{{{B * S, 3072}, rnd(B * S * 3072, 14)}};
      sec = time_op("Gelu", {}, ge, &k);
      report_bw("Gelu erf [1024,3072]", sec, 2.0 * 4 * B * S * 3072, k);
    }
  }
  return 0;
}
