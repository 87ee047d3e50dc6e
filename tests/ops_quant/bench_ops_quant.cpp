// Micro-benchmark of InnerProduct.s8 / .bf16 (and the fp32 InnerProduct for comparison) at
// BERT-base shapes, M = 1024 tokens (batch 8 x seq 128), driven through the operator API.
// Prints ms per call (process CPU time, so a shared machine's load does not count), the
// effective GOP/s on the non-zero weights, and the time of the src quantization alone.
// Threads: OMP_NUM_THREADS.  Not a test.
#include <omp.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <memory>
#include <new>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/dtype.hpp"
#include "executor/operator.hpp"
#include "executor/ops/quant_common.hpp"
#include "kernels/cpu_features.hpp"

#include <chrono>
#include <dnnl.hpp>

namespace {

double cpu_seconds() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + double(ts.tv_nsec) * 1e-9;
}

// 64-byte aligned buffers, as the executor's arena gives every tensor (a 16-byte aligned src
// splits AMX tile rows across cache lines and costs oneDNN ~25%: not what a model sees).
template <class V>
struct Aligned64 {
  using value_type = V;
  Aligned64() = default;
  template <class U> Aligned64(const Aligned64<U>&) {}
  V* allocate(size_t n) { return static_cast<V*>(::operator new(n * sizeof(V), std::align_val_t(64))); }
  void deallocate(V* p, size_t) { ::operator delete(p, std::align_val_t(64)); }
  template <class U> bool operator==(const Aligned64<U>&) const { return true; }
  template <class U> bool operator!=(const Aligned64<U>&) const { return false; }
};
using Bytes = std::vector<uint8_t, Aligned64<uint8_t>>;

struct T {
  ne::Tensor t;
  Bytes b;
};
T mk(ne::DType dt, ne::Shape s, bool c) {
  T x;
  x.t.dtype = dt;
  x.t.shape = s;
  x.t.is_const = c;
  x.b.resize(size_t(ne::shape_numel(s)) * ne::dtype_size(dt) + 64);
  x.t.data = x.b.data();
  return x;
}

// W [K, N] with 90% of 1x4 blocks zero (sparse) or none.
template <class F>
void fill_w(int64_t K, int64_t N, double sparsity, std::mt19937& g, F set) {
  std::uniform_real_distribution<float> u(0, 1);
  for (int64_t k = 0; k < K; ++k)
    for (int64_t n = 0; n < N; n += 4) {
      bool z = u(g) < sparsity;
      for (int64_t j = n; j < std::min(N, n + 4); ++j) set(k * N + j, z ? 0.f : u(g) - 0.5f);
    }
}

// force: 0 = the op's own choice, 1 = sparse kernel, 2 = dense (oneDNN).
double bench(const std::string& type, int64_t M, int64_t K, int64_t N, double sparsity, const std::string& post,
             std::string* kernel, int force = 0) {
  std::mt19937 g(1);
  ne::OpInfo info;
  info.name = "ip";
  info.type = type;
  const bool s8 = type == "InnerProduct.s8", bf = type == "InnerProduct.bf16";
  const bool sum = post.find("sum") != std::string::npos;
  std::vector<T> in;
  in.push_back(mk(ne::DType::fp32, {M, K}, false));
  in.push_back(mk(s8 ? ne::DType::s8 : bf ? ne::DType::bf16 : ne::DType::fp32, {K, N}, true));
  fill_w(K, N, sparsity, g, [&](int64_t i, float v) {
    if (s8) reinterpret_cast<int8_t*>(in[1].b.data())[i] = int8_t(v * 254);
    else if (bf) reinterpret_cast<uint16_t*>(in[1].b.data())[i] = ne::fp32_to_bf16(v);
    else reinterpret_cast<float*>(in[1].b.data())[i] = v;
  });
  if (s8) {
    in.push_back(mk(ne::DType::fp32, {N}, true));
    for (int64_t n = 0; n < N; ++n) in.back().t.ptr<float>()[n] = 0.001f;  // y ~ O(1), as in BERT
    info.attrs = {{"src_scale", "0.02"}, {"src_zero_point", "100"}};
  }
  in.push_back(mk(ne::DType::fp32, {N}, true));  // bias
  std::memset(in.back().b.data(), 0, in.back().b.size());
  if (sum) in.push_back(mk(ne::DType::fp32, {M, N}, false));
  if (!post.empty()) info.attrs.push_back({"append_op", post});
  std::uniform_real_distribution<float> u(-1.5f, 2.5f);
  for (int64_t i = 0; i < M * K; ++i) in[0].t.ptr<float>()[i] = u(g);
  for (size_t k = 0; k < in.size(); ++k) info.inputs.push_back("in" + std::to_string(k));
  info.outputs = {"out"};
  auto op = ne::create_op(info);
  ne::OpConfig cfg;
  if (force == 1) cfg.sparse_threshold = 0.f;
  if (force == 2) cfg.allow_sparse = false;
  op->set_config(cfg);
  std::vector<ne::Tensor*> p;
  for (auto& x : in) p.push_back(&x.t);
  op->init(p);
  ne::Tensor out;
  std::vector<ne::Tensor*> o{&out};
  op->reshape(p, o);
  std::vector<uint8_t> ob(out.nbytes() + 64);
  out.data = ob.data();
  *kernel = op->kernel();
  for (int i = 0; i < 2; ++i) op->forward(p, o);
  const int reps = 10;
  const double c0 = cpu_seconds();
  for (int i = 0; i < reps; ++i) op->forward(p, o);
  return (cpu_seconds() - c0) / reps;
}

// ---- --vs-onednn: the dense op through the operator API against dnnl::matmul alone ----
double wall() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// A prepared op call: init + reshape done, forward() runs it.
struct OpCall {
  std::unique_ptr<ne::Operator> op;
  std::vector<T> in;
  ne::Tensor out;
  Bytes ob;
  std::vector<ne::Tensor*> p, o;
  void run() { op->forward(p, o); }
};

// InnerProduct.s8 (src fp32 or u8, static scale) / .bf16 (src fp32 or bf16), dense weight,
// bias, output fp32 or u8 (s8 only); forced dense.
std::unique_ptr<OpCall> make_dense_op(bool s8, const std::string& src, const std::string& out, int64_t M, int64_t K,
                                      int64_t N) {
  auto c = std::make_unique<OpCall>();
  std::mt19937 g(3);
  std::uniform_real_distribution<float> u(-0.5f, 0.5f);
  ne::OpInfo info;
  info.name = "ip";
  info.type = s8 ? "InnerProduct.s8" : "InnerProduct.bf16";
  const ne::DType sdt = src == "fp32" ? ne::DType::fp32 : src == "u8" ? ne::DType::u8 : ne::DType::bf16;
  c->in.push_back(mk(sdt, {M, K}, false));
  for (size_t i = 0; i < c->in[0].b.size(); ++i) c->in[0].b[i] = uint8_t(sdt == ne::DType::fp32 ? 0 : (i * 37) & 0x7f);
  if (sdt == ne::DType::fp32)
    for (int64_t i = 0; i < M * K; ++i) c->in[0].t.ptr<float>()[i] = u(g);
  if (sdt == ne::DType::bf16)
    for (int64_t i = 0; i < M * K; ++i) c->in[0].t.ptr<uint16_t>()[i] = ne::fp32_to_bf16(u(g));
  c->in.push_back(mk(s8 ? ne::DType::s8 : ne::DType::bf16, {K, N}, true));
  for (int64_t i = 0; i < K * N; ++i) {
    if (s8) reinterpret_cast<int8_t*>(c->in[1].b.data())[i] = int8_t(u(g) * 254);
    else reinterpret_cast<uint16_t*>(c->in[1].b.data())[i] = ne::fp32_to_bf16(u(g));
  }
  if (s8) {
    c->in.push_back(mk(ne::DType::fp32, {N}, true));
    for (int64_t n = 0; n < N; ++n) c->in.back().t.ptr<float>()[n] = 0.001f;
    info.attrs = {{"src_scale", "0.02"}, {"src_zero_point", "100"}};
    if (src == "u8") info.attrs.push_back({"src_dtype", "u8"});
    if (out == "u8") info.attrs.insert(info.attrs.end(), {{"output_dtype", "u8"}, {"dst_scale", "0.05"}, {"dst_zero_point", "10"}});
  }
  c->in.push_back(mk(ne::DType::fp32, {N}, true));
  std::memset(c->in.back().b.data(), 0, c->in.back().b.size());
  for (size_t k = 0; k < c->in.size(); ++k) info.inputs.push_back("in" + std::to_string(k));
  info.outputs = {"out"};
  c->op = ne::create_op(info);
  ne::OpConfig cfg;
  cfg.allow_sparse = false;
  c->op->set_config(cfg);
  for (auto& x : c->in) c->p.push_back(&x.t);
  c->op->init(c->p);
  c->o = {&c->out};
  c->op->reshape(c->p, c->o);
  c->ob.resize(c->out.nbytes() + 64);
  c->out.data = c->ob.data();
  return c;
}

// dnnl::matmul alone, as a user of oneDNN would write it: src u8 (s8 op) / bf16, weights
// reordered once (format any), per-N output scales (s8), bias, dst f32 or u8.
struct DnnlCall {
  dnnl::engine eng{dnnl::engine::kind::cpu, 0};
  dnnl::stream st{eng};
  dnnl::matmul prim;
  std::unordered_map<int, dnnl::memory> args;
  std::string impl;
  DnnlCall(bool s8, const std::string& out, int64_t M, int64_t K, int64_t N) {
    using md = dnnl::memory::desc;
    using dt = dnnl::memory::data_type;
    using tg = dnnl::memory::format_tag;
    const dt sdt = s8 ? dt::u8 : dt::bf16, wdt = s8 ? dt::s8 : dt::bf16, ddt = out == "u8" ? dt::u8 : dt::f32;
    md src({M, K}, sdt, tg::ab), w({K, N}, wdt, tg::any), b({1, N}, dt::f32, tg::ab), d({M, N}, ddt, tg::ab);
    dnnl::primitive_attr a;
    if (s8) a.set_output_scales(2, std::vector<float>(size_t(N), 0.001f));
    dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(src, w, b, d), a, eng);
    impl = pd.impl_info_str();
    dnnl::memory ms(src, eng), mw(pd.weights_desc(), eng), mb(b, eng), mdst(d, eng);
    dnnl::memory wu(md({K, N}, wdt, tg::ab), eng);
    std::memset(wu.get_data_handle(), 1, size_t(K * N) * (s8 ? 1 : 2));
    std::memset(ms.get_data_handle(), 1, size_t(M * K) * (s8 ? 1 : 2));
    std::memset(mb.get_data_handle(), 0, size_t(N) * 4);
    dnnl::reorder(wu, mw).execute(st, wu, mw);
    st.wait();
    prim = dnnl::matmul(pd);
    args = {{DNNL_ARG_SRC, ms}, {DNNL_ARG_WEIGHTS, mw}, {DNNL_ARG_BIAS, mb}, {DNNL_ARG_DST, mdst}};
  }
  void run() {
    prim.execute(st, args);
    st.wait();
  }
};

// Alternating rounds, best of each; returns {op, dnnl} seconds per call.
template <class A, class B>
std::pair<double, double> race(A& a, B& b, int rounds) {
  double ta = 1e30, tb = 1e30;
  for (int i = 0; i < 3; ++i) a.run(), b.run();
  for (int r = 0; r < rounds; ++r) {
    const int reps = 5;
    double t0 = wall();
    for (int i = 0; i < reps; ++i) a.run();
    double t1 = wall();
    for (int i = 0; i < reps; ++i) b.run();
    double t2 = wall();
    ta = std::min(ta, (t1 - t0) / reps), tb = std::min(tb, (t2 - t1) / reps);
  }
  return {ta, tb};
}

// ---- --rule: the default choice against the best candidate, over a grid ----
// A weight W [K, N] with `sparsity` of its `pat` blocks (1x4: 1 row x 4 columns; 4x1: 4 rows x
// 1 column) zero, values uniform in [-0.5, 0.5).
void fill_pattern(ne::Tensor& w, int64_t K, int64_t N, const std::string& pat, double sparsity, std::mt19937& g) {
  std::uniform_real_distribution<float> u(0, 1);
  const int64_t bk = pat == "4x1" ? 4 : 1, bn = pat == "4x1" ? 1 : 4;
  for (int64_t k0 = 0; k0 < K; k0 += bk)
    for (int64_t n0 = 0; n0 < N; n0 += bn) {
      const bool z = u(g) < sparsity;
      for (int64_t k = k0; k < std::min(K, k0 + bk); ++k)
        for (int64_t n = n0; n < std::min(N, n0 + bn); ++n) {
          const float v = z ? 0.f : u(g) - 0.5f;
          const int64_t i = k * N + n;
          if (w.dtype == ne::DType::s8) w.ptr<int8_t>()[i] = int8_t(v * 254);
          else if (w.dtype == ne::DType::bf16) w.ptr<uint16_t>()[i] = ne::fp32_to_bf16(v);
          else w.ptr<float>()[i] = v;
        }
    }
}

// force: 0 = the op's own choice (default), 1 = sparse (threshold 0), 2 = dense (NE_IP_ONLY=dense).
std::unique_ptr<OpCall> make_op(const std::string& dtype, int64_t M, int64_t K, int64_t N, const std::string& pat,
                                double sparsity, const std::string& post, int force) {
  auto c = std::make_unique<OpCall>();
  std::mt19937 g(5);
  ne::OpInfo info;
  info.name = "ip";
  const bool s8 = dtype == "int8", bf = dtype == "bf16";
  info.type = s8 ? "InnerProduct.s8" : bf ? "InnerProduct.bf16" : "InnerProduct";
  c->in.push_back(mk(ne::DType::fp32, {M, K}, false));
  std::uniform_real_distribution<float> u(-1.5f, 2.5f);
  for (int64_t i = 0; i < M * K; ++i) c->in[0].t.ptr<float>()[i] = u(g);
  c->in.push_back(mk(s8 ? ne::DType::s8 : bf ? ne::DType::bf16 : ne::DType::fp32, {K, N}, true));
  fill_pattern(c->in[1].t, K, N, pat, sparsity, g);
  if (s8) {
    c->in.push_back(mk(ne::DType::fp32, {N}, true));
    for (int64_t n = 0; n < N; ++n) c->in.back().t.ptr<float>()[n] = 0.001f;
    info.attrs = {{"src_scale", "0.02"}, {"src_zero_point", "100"}};
  }
  c->in.push_back(mk(ne::DType::fp32, {N}, true));
  std::memset(c->in.back().b.data(), 0, c->in.back().b.size());
  if (post.find("sum") != std::string::npos) c->in.push_back(mk(ne::DType::fp32, {M, N}, false));
  if (!post.empty()) info.attrs.push_back({"append_op", post});
  for (size_t k = 0; k < c->in.size(); ++k) info.inputs.push_back("in" + std::to_string(k));
  info.outputs = {"out"};
  c->op = ne::create_op(info);
  ne::OpConfig cfg;
  if (force == 1) cfg.sparse_threshold = 0.f;
  c->op->set_config(cfg);
  if (force == 2) setenv("NE_IP_ONLY", "dense", 1);
  for (auto& x : c->in) c->p.push_back(&x.t);
  c->op->init(c->p);
  unsetenv("NE_IP_ONLY");
  c->o = {&c->out};
  c->op->reshape(c->p, c->o);
  c->ob.resize(c->out.nbytes() + 64);
  c->out.data = c->ob.data();
  return c;
}

// Every (dtype, pattern, sparsity, shape, M): the default op (its own timed choice), the sparse
// kernel forced and oneDNN forced, run in alternating rounds (best of `rounds`, each round a
// batch of calls lasting >= ~2 ms); default / best, and a flag where it is > 1.05.
int rule_grid(int rounds, const std::vector<std::string>& dtypes, const std::vector<int64_t>& Ms) {
  std::printf("# %s\n# threads %d; wall ms per call, best of %d alternating rounds; default = the op's own choice "
              "(timed candidates at plan time), sparse = threshold 0, dense = NE_IP_ONLY=dense\n",
              ne::cpu::describe().c_str(), omp_get_max_threads(), rounds);
  std::printf("%-5s %-4s %4s %5s %5s %5s %9s %9s %9s %7s %s  %s\n", "dtype", "pat", "sp%", "K", "N", "M", "default",
              "sparse", "dense", "def/best", "", "default ran");
  const int64_t shapes[][2] = {{768, 768}, {768, 3072}, {3072, 768}};
  int points = 0, over = 0;
  double worst = 0;
  for (const std::string& dt : dtypes)
    for (std::string pat : {"1x4", "4x1"})
      for (double sp : {0.0, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95}) {
        if (sp == 0.0 && pat == "4x1") continue;  // the same dense weight
        for (auto& sh : shapes)
          for (int64_t M : Ms) {
            std::unique_ptr<OpCall> c[3];
            for (int f = 0; f < 3; ++f) c[f] = make_op(dt, M, sh[0], sh[1], pat, sp, "", f);
            double best[3] = {1e30, 1e30, 1e30};
            int reps = 1;
            {
              const double t0 = wall();
              c[0]->run();
              const double one = wall() - t0;
              reps = int(std::max(1.0, std::min(50.0, 0.002 / std::max(1e-7, one))));
            }
            for (int f = 0; f < 3; ++f) c[f]->run(), c[f]->run();
            for (int r = 0; r < rounds; ++r)
              for (int j = 0; j < 3; ++j) {
                const int f = (j + r) % 3;
                const double t0 = wall();
                for (int i = 0; i < reps; ++i) c[f]->run();
                best[f] = std::min(best[f], (wall() - t0) / reps);
              }
            const double b = std::min(best[1], best[2]), ratio = best[0] / b;
            ++points;
            over += ratio > 1.05;
            worst = std::max(worst, ratio);
            std::printf("%-5s %-4s %4.0f %5lld %5lld %5lld %9.4f %9.4f %9.4f %7.3f %s  %s\n", dt.c_str(), pat.c_str(),
                        sp * 100, (long long)sh[0], (long long)sh[1], (long long)M, best[0] * 1e3, best[1] * 1e3,
                        best[2] * 1e3, ratio, ratio > 1.05 ? "SLOW" : "    ", c[0]->op->kernel().c_str());
            std::fflush(stdout);
          }
      }
  std::printf("# %d points; default > 1.05x the best candidate at %d; worst %.3fx\n", points, over, worst);
  return 0;
}

int vs_onednn(int rounds) {
  std::printf("# %s\n# threads %d; wall ms per call, best of %d alternating rounds of 5 calls; dense weights\n"
              "# op = InnerProduct through the operator API (src quantization/conversion included where src is fp32)\n",
              ne::cpu::describe().c_str(), omp_get_max_threads(), rounds);
  std::printf("%-5s %-5s %-4s %5s %5s %5s %9s %9s %6s  %s | %s\n", "dtype", "src", "dst", "M", "K", "N", "op_ms", "dnnl_ms",
              "ratio", "op kernel", "dnnl impl");
  struct Row { bool s8; const char* src; const char* out; };
  const Row rows[] = {{true, "u8", "fp32"}, {true, "fp32", "fp32"}, {true, "u8", "u8"}, {false, "bf16", "fp32"}, {false, "fp32", "fp32"}};
  const int64_t shapes[][2] = {{768, 768}, {768, 3072}, {3072, 768}};
  for (int64_t M : {128, 1024})
    for (auto& sh : shapes)
      for (const Row& r : rows) {
        auto op = make_dense_op(r.s8, r.src, r.out, M, sh[0], sh[1]);
        DnnlCall d(r.s8, r.out, M, sh[0], sh[1]);
        auto t = race(*op, d, rounds);
        std::printf("%-5s %-5s %-4s %5lld %5lld %5lld %9.3f %9.3f %6.2f  %s | %s\n", r.s8 ? "int8" : "bf16", r.src, r.out,
                    (long long)M, (long long)sh[0], (long long)sh[1], t.first * 1e3, t.second * 1e3, t.second / t.first,
                    op->op->kernel().c_str(), d.impl.c_str());
        std::fflush(stdout);
      }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const int64_t M = 1024;
  if (argc > 1 && std::string(argv[1]) == "--rule") {
    // --rule [rounds] [dtypes, e.g. fp32,int8,bf16] [Ms, e.g. 1,16,128,1024]
    auto list = [](const char* s) {
      std::vector<std::string> r;
      std::string t;
      for (const char* p = s;; ++p) {
        if (*p == ',' || !*p) {
          if (!t.empty()) r.push_back(t);
          t.clear();
          if (!*p) break;
        } else {
          t += *p;
        }
      }
      return r;
    };
    std::vector<std::string> dts = list(argc > 3 ? argv[3] : "fp32,int8,bf16");
    std::vector<int64_t> ms;
    for (auto& m : list(argc > 4 ? argv[4] : "1,16,128,1024")) ms.push_back(std::atoll(m.c_str()));
    return rule_grid(argc > 2 ? std::atoi(argv[2]) : 5, dts, ms);
  }
  if (argc > 1 && std::string(argv[1]) == "--vs-onednn") return vs_onednn(argc > 2 ? std::atoi(argv[2]) : 5);
  if (argc > 1 && std::string(argv[1]) == "--breakeven") {
    // Sparse kernel vs oneDNN dense on 768x768 (and 768x3072) over 1x4 block sparsity.
    std::printf("threads %d, M = %lld: ms per call, sparse kernel / oneDNN dense\n", omp_get_max_threads(), (long long)M);
    for (std::string type : {"InnerProduct.s8", "InnerProduct.bf16"})
      for (int64_t N : {768, 3072}) {
        std::string k;
        const double td = bench(type, M, 768, N, 0.0, "", &k, 2);
        for (double sp : {0.0, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9}) {
          const double ts = bench(type, M, 768, N, sp, "", &k, 1);
          std::printf("%-18s 768x%-4lld 1x4 %3.0f%%: sparse %7.3f ms  dense %7.3f ms  %s\n", type.c_str(),
                      (long long)N, sp * 100, ts * 1e3, td * 1e3, ts < td ? "sparse faster" : "dense faster");
        }
      }
    return 0;
  }
  std::printf("threads %d, M = %lld; CPU ms per call (summed over threads); GOP/s on non-zero weights\n",
              omp_get_max_threads(), (long long)M);
  struct Shape { int64_t K, N; const char* post; const char* what; };
  const Shape shapes[] = {{768, 768, "", "qkv/attn_out"}, {768, 3072, "gelu_erf", "ffn1+gelu"}, {768, 3072, "", "ffn1 no act"},
                          {3072, 768, "sum", "ffn2+sum"}};
  for (const Shape& s : shapes) {
    for (bool sparse : {true, false}) {
      const double density = sparse ? 0.1 : 1.0;
      for (std::string type : {"InnerProduct.s8", "InnerProduct.bf16", "InnerProduct"}) {
        std::string k;
        double t = bench(type, M, s.K, s.N, sparse ? 0.9 : 0.0, s.post, &k);
        double gop = 2.0 * M * s.K * s.N * density / 1e9;
        std::printf("%-13s %4lldx%-4lld %-6s %-18s %8.3f ms %7.1f GOP/s  %s\n", s.what, (long long)s.K,
                    (long long)s.N, sparse ? "90%1x4" : "dense", type.c_str(), t * 1e3, gop / t, k.c_str());
      }
    }
    // The src quantization alone (part of the s8 times above).
    std::vector<float> x(size_t(M * s.K));
    std::mt19937 g(2);
    std::uniform_real_distribution<float> u(-1.5f, 2.5f);
    for (auto& v : x) v = u(g);
    std::vector<uint8_t> q(x.size());
    const double c0 = cpu_seconds();
    for (int i = 0; i < 20; ++i) ne::quant::quantize(x.data(), q.data(), int64_t(x.size()), 0.02f, 100, false);
    std::printf("%-13s quantize src [%lld x %lld] fp32->u8: %.3f ms\n", s.what, (long long)M, (long long)s.K,
                (cpu_seconds() - c0) / 20 * 1e3);
  }
  return 0;
}
