// bench_attention: the fused Attention op (executor/ops/dense_matmul.cpp) at BERT shapes,
// compute_dtype bf16, with each runnable kernel of the attention family (kernels/attention,
// AMX first) against the op's AVX-512 bf16 path (the same op with NE_ATTENTION_AMX=0), driven
// through ne::create_op like tests/ops_dense. One forward = one layer's attention
// (softmax(Q·Kᵀ/8 + mask)·V over B x 12 heads), BERT layout [B,S,H,D], mask [B,1,1,S].
//
// Method: the machine may be shared, so the contenders alternate (A, B, A, B, ...) and each
// reports its best of N rounds (default 5) of `iters` forwards, in wall time and in process
// CPU time summed over the threads (on a loaded machine wall time includes time spent
// descheduled; CPU time ~ wall x threads means the threads really ran); 1 and 2 threads.
// GFLOP/s from wall time.
// GFLOP/s counts the two products: 2·Sq·Sk·(D + Dv) per (batch, head).
// Usage: bench_attention [rounds] [threads...]
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
#include "kernels/attention/attention.hpp"
#include "kernels/cpu_features.hpp"

namespace {

using Clock = std::chrono::steady_clock;

double cpu_seconds() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

struct Case {
  const char* name;
  int64_t B, S, H, D;
};

struct Contender {
  std::string label, kernel;
  std::unique_ptr<ne::Operator> op;
  double best = 1e30, best_cpu = 1e30;
};

ne::OpInfo attention_info() {
  ne::OpInfo i;
  i.name = "attention";
  i.type = "Attention";
  i.inputs = {"q", "k", "v", "mask"};
  i.outputs = {"out"};
  i.attrs = {{"qk_src0_perm", "0,2,1,3"}, {"qk_src1_perm", "0,2,3,1"}, {"output_scale", "0.125"},
             {"pv_src1_perm", "0,2,1,3"}, {"dst_perm", "0,2,1,3"}, {"compute_dtype", "bf16"}};
  return i;
}

}  // namespace

int main(int argc, char** argv) {
  const int rounds = argc > 1 ? std::atoi(argv[1]) : 5;
  std::vector<int> threads;
  for (int i = 2; i < argc; ++i) threads.push_back(std::atoi(argv[i]));
  if (threads.empty()) threads = {1, 2};
  std::printf("%s\n", ne::cpu::describe().c_str());
  std::printf("attention family list:");
  for (const auto& k : ne::attention::kernel_list())
    std::printf(" %s%s", k.name, k.fn ? "" : " (op's own)");
  std::printf("\nmethod: contenders alternate, best of %d rounds (wall), BERT layout, mask [B,1,1,S], bf16\n", rounds);
  const std::vector<Case> cases = {{"b8 s128 h12 d64", 8, 128, 12, 64}, {"b8 s384 h12 d64", 8, 384, 12, 64}};
  for (const Case& c : cases) {
    const int64_t n = c.B * c.S * c.H * c.D;
    std::mt19937 g(7);
    std::uniform_real_distribution<float> d(-1.f, 1.f);
    std::vector<float> q(n), k(n), v(n), mask(c.B * c.S, 0.f), out(n);
    for (auto* x : {&q, &k, &v})
      for (auto& y : *x) y = d(g);
    for (int64_t b = 0; b < c.B; ++b)
      for (int64_t s = c.S - 3 * b; s < c.S; ++s) mask[b * c.S + s] = -10000.f;  // some padding
    std::vector<ne::Tensor> in(4);
    const char* names[4] = {"q", "k", "v", "mask"};
    for (int i = 0; i < 4; ++i) {
      in[i].name = names[i];
      in[i].dtype = ne::DType::fp32;
      in[i].shape = i < 3 ? ne::Shape{c.B, c.S, c.H, c.D} : ne::Shape{c.B, 1, 1, c.S};
    }
    in[0].data = q.data(), in[1].data = k.data(), in[2].data = v.data(), in[3].data = mask.data();
    ne::Tensor o;
    o.name = "out";
    std::vector<ne::Tensor*> ip{&in[0], &in[1], &in[2], &in[3]}, op{&o};
    // Contenders: the op as dispatched (AMX where usable), and with NE_ATTENTION_AMX=0.
    std::vector<Contender> cs;
    for (int off = 0; off < 2; ++off) {
      if (off) setenv("NE_ATTENTION_AMX", "0", 1);
      Contender x;
      x.op = ne::create_op(attention_info());
      x.op->init(ip);
      x.op->reshape(ip, op);
      o.data = out.data();
      x.op->forward(ip, op);
      x.kernel = x.op->kernel();
      x.label = off ? "NE_ATTENTION_AMX=0" : "default";
      if (off) unsetenv("NE_ATTENTION_AMX");
      if (off && x.kernel == cs[0].kernel) break;  // no AMX here: one contender
      cs.push_back(std::move(x));
    }
    const double flop = 2.0 * c.B * c.H * c.S * c.S * (2 * c.D);
    for (int nt : threads) {
      omp_set_num_threads(nt);
      for (auto& x : cs) x.best = x.best_cpu = 1e30;
      const int iters = c.S > 200 ? 3 : 10;
      for (int r = 0; r < rounds; ++r)
        for (auto& x : cs) {
          x.op->forward(ip, op);  // warm
          const auto t0 = Clock::now();
          const double c0 = cpu_seconds();
          for (int i = 0; i < iters; ++i) x.op->forward(ip, op);
          const double t = std::chrono::duration<double>(Clock::now() - t0).count() / iters;
          x.best = std::min(x.best, t);
          x.best_cpu = std::min(x.best_cpu, (cpu_seconds() - c0) / iters);
        }
      for (auto& x : cs)
        std::printf("%-16s threads %d  %-34s %-19s wall %8.3f ms/layer  cpu %8.3f ms %7.1f GFLOP/s%s\n", c.name,
                    nt, x.kernel.c_str(), x.label.c_str(), x.best * 1e3, x.best_cpu * 1e3, flop / x.best * 1e-9,
                    &x == &cs.back() && cs.size() > 1
                        ? ("  (x" + std::to_string(cs.back().best_cpu / cs[0].best_cpu).substr(0, 4) + " cpu, x" +
                           std::to_string(cs.back().best / cs[0].best).substr(0, 4) + " wall)").c_str()
                        : "");
    }
  }
  return 0;
}
