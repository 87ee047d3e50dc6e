// bench_sparse_gemm: block-sparse GEMM (kernels/sparse_gemm) vs oneDNN dense matmul
// (dnnl::matmul, same dtype, weights reordered once to the format oneDNN prefers,
// format_tag::any), same shapes, same run.
//
//   bench_sparse_gemm [--quick] [--dtype f32,bf16,int8] [--pattern 1x4,4x1]
//                     [--sparsity 50,70,80,90,95] [--m 16,128,1024]
//                     [--nk 768x768,3072x768,768x3072] [--threads 1,2]
//                     [--layout token|feature] [--min-time SEC] [--breakeven] [--peaks]
//                     [--cpu-time]   (time = process CPU time; for --threads 1 on a busy machine)
//                     [--act none|gelu] (gelu_erf in the sparse kernel's epilogue; oneDNN: none)
//                     [--blocking standard,kgather] (packing(s) to run, each row its own:
//                                     kgather = Blocking::amx_kgather, bf16/int8 only)
//                     (--pattern 1x16: weights with random all-zero 1x16 blocks (1 input
//                      channel x 16 consecutive output channels; z = s), packed as 1x4)
//                     [--dst f32|u8] (int8 only: output dtype of BOTH engines. f32 = the s32
//                                     result dequantized (scale per channel + bias); u8 = then
//                                     requantized to u8, as the int8 pipeline chains layers)
//
// At start it measures THIS CPU's per-core instruction peaks (kernels/bench/peak.hpp:
// register-only loops, one thread, best of 3, each only where ne::cpu allows its ISA) and
// prints them under the CPU line; `--peaks` prints only those and exits.
//
// Columns: time per GEMM; dense-equivalent GOP/s (2*M*N*K / t); "peak%": the fraction of
// the measured peak (x threads) of the instruction the sparse kernel uses (f32 vfmadd231ps,
// bf16 vdpbf16ps, int8 vpdpbusd; AMX kernels tdpbusd / tdpbf16ps) reached on the non-zero
// work (2*M*K*N*(1-actual block sparsity) / t); oneDNN dense time; "dnnl%": oneDNN's share
// of the peak of the best instruction measured here for the dtype (AMX where usable,
// else the AVX-512 one; f32: vfmadd231ps); speedup over oneDNN dense.
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <oneapi/dnnl/dnnl.hpp>

#include "kernels/bench/peak.hpp"
#include "kernels/sparse_gemm/sparse_gemm.hpp"

namespace {

using namespace ne::sparse;

struct Opts {
  std::vector<std::string> dtypes = {"f32", "bf16", "int8"};
  std::vector<std::string> patterns = {"1x4", "4x1"};
  std::vector<int> sparsity = {50, 70, 80, 90, 95};
  std::vector<int> ms = {16, 128, 1024};
  std::vector<std::pair<int, int>> nk = {{768, 768}, {3072, 768}, {768, 3072}};
  std::vector<int> threads = {1, 2};
  Layout layout = Layout::token_major;
  double min_time = 0.3;
  bool breakeven = false;
  bool dst_u8 = false;
  std::vector<std::string> blockings = {"standard"};
};

bool g_dst_u8 = false;  // --dst u8 (int8 rows)
bool g_gelu = false;    // --act gelu (sparse kernel only: the epilogue's cost)

template <class T>
struct AlignedBuf {  // 64-byte aligned, like the executor's arena (std::vector of a large size is not)
  T* p = nullptr;
  explicit AlignedBuf(size_t n) : p(static_cast<T*>(std::aligned_alloc(64, (n * sizeof(T) + 63) & ~size_t(63)))) {}
  ~AlignedBuf() { std::free(p); }
  AlignedBuf(const AlignedBuf&) = delete;
  T* data() { return p; }
  T& operator[](size_t i) { return p[i]; }
};

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  size_t b = 0;
  while (b <= s.size()) {
    size_t e = s.find(',', b);
    if (e == std::string::npos) e = s.size();
    if (e > b) out.push_back(s.substr(b, e - b));
    b = e + 1;
  }
  return out;
}

bool g_cpu_time = false;  // --cpu-time: process CPU time (robust on a shared machine; use with --threads 1)

double now() {
  if (g_cpu_time) {
    timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
  }
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Seconds per call: best of 3 batches, each batch >= min_time / 3.
template <class F>
double time_it(F&& f, double min_time) {
  f();
  double best = 1e30;
  for (int rep = 0; rep < 3; ++rep) {
    int iters = 0;
    const double t0 = now();
    double t;
    do {
      f();
      ++iters;
      t = now() - t0;
    } while (t < min_time / 3);
    best = std::min(best, t / iters);
  }
  return best;
}

uint16_t bf16(float f) { return f32_to_bf16(f); }

// Weight with an exact fraction of all-zero blocks of the pattern.
// bw = block width along N for the 1x4 family (4, or 16 for --pattern 1x16).
std::vector<uint8_t> make_weight(DType dt, int K, int N, Pattern p, double sp, std::mt19937_64& rng, int bw = 4) {
  const size_t es = dtype_size(dt);
  std::vector<uint8_t> w(size_t(K) * N * es);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  for (size_t i = 0; i < size_t(K) * N; ++i) {
    float v = u(rng);
    if (v == 0.f) v = 0.5f;
    if (dt == DType::f32) std::memcpy(&w[i * 4], &v, 4);
    else if (dt == DType::bf16) { uint16_t h = bf16(v); std::memcpy(&w[i * 2], &h, 2); }
    else { int q = int(v * 127); w[i] = uint8_t(int8_t(q == 0 ? 1 : q)); }
  }
  std::vector<std::pair<int, int>> blocks;
  if (p == Pattern::p4x1)
    for (int k = 0; k < K; k += 4)
      for (int n = 0; n < N; ++n) blocks.push_back({k, n});
  else
    for (int k = 0; k < K; ++k)
      for (int n = 0; n < N; n += bw) blocks.push_back({k, n});
  std::shuffle(blocks.begin(), blocks.end(), rng);
  const size_t nz = size_t(sp * double(blocks.size()) + 0.5);
  for (size_t i = 0; i < nz; ++i) {
    auto [k0, n0] = blocks[i];
    const int kh = p == Pattern::p4x1 ? 4 : 1, nw = p == Pattern::p4x1 ? 1 : bw;
    for (int k = k0; k < std::min(K, k0 + kh); ++k)
      std::memset(&w[(size_t(k) * N + n0) * es], 0, size_t(std::min(nw, N - n0)) * es);
  }
  return w;
}

struct Dense {
  dnnl::engine eng{dnnl::engine::kind::cpu, 0};
  dnnl::stream strm{eng};
  dnnl::matmul prim;
  dnnl::memory src, wei, dst;
  Dense(DType dt, int M, int N, int K, const void* W, const void* X, Layout layout) {
    using dt_t = dnnl::memory::data_type;
    using tag = dnnl::memory::format_tag;
    const dt_t sdt = dt == DType::f32 ? dt_t::f32 : dt == DType::bf16 ? dt_t::bf16 : dt_t::u8;
    const dt_t wdt = dt == DType::f32 ? dt_t::f32 : dt == DType::bf16 ? dt_t::bf16 : dt_t::s8;
    // token-major: Y[M,N] = X[M,K] W[K,N]; feature-major: Yt[N,M] = Wt[N,K] Xt[K,M]
    // (oneDNN computes it as the same matmul with transposed layouts).
    // Baseline is always the token-major dense matmul (oneDNN's preferred layout; its
    // transposed-layout path is a slow reference): the same work as either orientation.
    (void)layout;
    const bool u8out = dt == DType::s8 && g_dst_u8;
    dnnl::memory::desc sd({M, K}, sdt, tag::ab), dd({M, N}, u8out ? dt_t::u8 : dt_t::f32, tag::ab), wd_any, wd_user;
    wd_any = dnnl::memory::desc({K, N}, wdt, tag::any);
    wd_user = dnnl::memory::desc({K, N}, wdt, tag::ab);
    dnnl::primitive_attr attr;
    if (dt == DType::s8) attr.set_output_scales(2, std::vector<float>(size_t(N), 0.01f));  // per-channel dequantize (+ requantize folded in for u8)
    auto pd = dnnl::matmul::primitive_desc(dnnl::matmul::desc(sd, wd_any, dd), attr, eng);
    prim = dnnl::matmul(pd);
    src = dnnl::memory(pd.src_desc(), eng, const_cast<void*>(X));
    dnnl::memory wuser(wd_user, eng, const_cast<void*>(W));
    wei = dnnl::memory(pd.weights_desc(), eng);
    dnnl::reorder(wuser, wei).execute(strm, wuser, wei);
    dst = dnnl::memory(pd.dst_desc(), eng);
    strm.wait();
  }
  void run() {
    prim.execute(strm, {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, wei}, {DNNL_ARG_DST, dst}});
    strm.wait();
  }
};

ne::bench::Peaks g_peaks;  // measured at start (main)

// Peak (ops/s per core) of the instruction a sparse kernel runs on; 0 = not measured
// (generic scalar kernels, or the ISA is not usable here).
double kernel_peak(const KernelInfo& k) {
  if (k.isa == ne::cpu::Isa::generic) return 0;
  if (k.amx) return k.wdtype == DType::bf16 ? g_peaks.amx_bf16 : g_peaks.amx_int8;
  return k.wdtype == DType::f32 ? g_peaks.f32_fma : k.wdtype == DType::bf16 ? g_peaks.bf16_dp : g_peaks.int8_dp;
}

// Peak of the best instruction measured here for a dtype: what oneDNN dense can reach.
double dense_peak(DType dt) {
  if (dt == DType::f32) return g_peaks.f32_fma;
  if (dt == DType::bf16) return g_peaks.amx_bf16 > 0 ? g_peaks.amx_bf16 : g_peaks.bf16_dp > 0 ? g_peaks.bf16_dp : g_peaks.f32_fma;
  return g_peaks.amx_int8 > 0 ? g_peaks.amx_int8 : g_peaks.int8_dp;
}

const char* dnnl_isa_name(dnnl::cpu_isa isa) {
  using I = dnnl::cpu_isa;
  switch (isa) {
    case I::sse41: return "sse41";
    case I::avx: return "avx";
    case I::avx2: return "avx2";
    case I::avx2_vnni: return "avx2_vnni";
    case I::avx512_core: return "avx512_core";
    case I::avx512_core_vnni: return "avx512_core_vnni";
    case I::avx512_core_bf16: return "avx512_core_bf16";
    case I::avx512_core_amx: return "avx512_core_amx";
    default: return "other";
  }
}

std::string gops(double r) {
  if (r <= 0) return "-";
  char b[32];
  std::snprintf(b, sizeof b, "%.0f", r * 1e-9);
  return b;
}

// "# peaks/core (measured, ...): f32 vfmadd231ps 150, ..." (GOP/s; "-" = ISA not usable here)
void print_peaks() {
  std::printf("# peaks/core, GOP/s (measured: register-only loops, 1 thread, best of 3): f32 vfmadd231ps %s, "
              "bf16 vdpbf16ps %s, int8 vpdpbusd %s, AMX int8 tdpbusd %s, AMX bf16 tdpbf16ps %s\n",
              gops(g_peaks.f32_fma).c_str(), gops(g_peaks.bf16_dp).c_str(), gops(g_peaks.int8_dp).c_str(),
              gops(g_peaks.amx_int8).c_str(), gops(g_peaks.amx_bf16).c_str());
}

std::string pct(double ops, double t, double peak) {
  if (peak <= 0) return "-";
  char b[32];
  std::snprintf(b, sizeof b, "%.1f%%", 100.0 * ops / t / peak);
  return b;
}

struct Result {
  double t_sparse, t_dense, actual_sp, z;
  const KernelInfo* kernel;
};

Result measure(DType dt, Pattern p, int M, int N, int K, double sp, int threads, Layout layout, double min_time,
               bool with_dense, std::mt19937_64& rng, int bw = 4, Blocking blk = Blocking::standard) {
  omp_set_num_threads(threads);
  const std::vector<uint8_t> W = make_weight(dt, K, N, p, sp, rng, bw);
  const PackedWeight pw = PackedWeight::pack(W.data(), dt, K, N, p, 0, blk);
  const size_t es = dtype_size(dt);
  AlignedBuf<uint8_t> X(size_t(M) * K * es);
  for (size_t i = 0; i < size_t(M) * K; ++i) {
    if (dt == DType::f32) { float v = float(int(rng() % 200) - 100) / 100.f; std::memcpy(&X[i * 4], &v, 4); }
    else if (dt == DType::bf16) { uint16_t h = bf16(float(int(rng() % 200) - 100) / 100.f); std::memcpy(&X[i * 2], &h, 2); }
    else X[i] = uint8_t(rng());
  }
  AlignedBuf<float> Y(size_t(M) * N);
  std::vector<float> bias(N, 0.1f), scale(N, 0.01f);
  GemmArgs a;
  a.layout = layout;
  a.M = M;
  a.src = X.data();
  a.src_dtype = dt == DType::s8 ? DType::u8 : dt;
  a.dst = Y.data();
  a.post.bias = bias.data();
  if (dt == DType::s8) a.post.scale = scale.data();
  if (g_gelu) a.post.act = Act::gelu_erf;
  if (dt == DType::s8 && g_dst_u8) {
    a.post.dst_dtype = DType::u8;
    a.post.dst_scale = 0.05f;
    a.post.dst_zero_point = 128;
  }
  a.num_threads = threads;
  const KernelInfo* k = &gemm(a, pw);
  Result r{};
  r.kernel = k;
  r.actual_sp = pw.sparsity();
  r.z = pw.kgather_z();
  r.t_sparse = time_it([&] { gemm_with(*k, a, pw); }, min_time);
  if (with_dense) {
    Dense d(dt, M, N, K, W.data(), X.data(), layout);
    r.t_dense = time_it([&] { d.run(); }, min_time);
  }
  return r;
}

DType parse_dt(const std::string& s) {
  if (s == "f32" || s == "fp32") return DType::f32;
  if (s == "bf16") return DType::bf16;
  if (s == "int8" || s == "s8" || s == "u8s8") return DType::s8;
  std::fprintf(stderr, "unknown dtype %s\n", s.c_str());
  std::exit(2);
}

const char* dt_label(DType d) { return d == DType::f32 ? "f32" : d == DType::bf16 ? "bf16" : "int8"; }

}  // namespace

int main(int argc, char** argv) {
  Opts o;
  bool peaks_only = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) { std::fprintf(stderr, "%s needs a value\n", a.c_str()); std::exit(2); }
      return argv[++i];
    };
    if (a == "--quick") {
      o.sparsity = {70, 90};
      o.ms = {128, 1024};
      o.nk = {{768, 768}, {3072, 768}};
      o.threads = {omp_get_max_threads()};
      o.min_time = 0.15;
    } else if (a == "--dtype") { o.dtypes = split(next()); }
    else if (a == "--pattern") { o.patterns = split(next()); }
    else if (a == "--blocking") { o.blockings = split(next()); }
    else if (a == "--sparsity") { o.sparsity.clear(); for (auto& s : split(next())) o.sparsity.push_back(std::atoi(s.c_str())); }
    else if (a == "--m") { o.ms.clear(); for (auto& s : split(next())) o.ms.push_back(std::atoi(s.c_str())); }
    else if (a == "--threads") { o.threads.clear(); for (auto& s : split(next())) o.threads.push_back(std::atoi(s.c_str())); }
    else if (a == "--nk") {
      o.nk.clear();
      for (auto& s : split(next())) {
        int n, k;
        if (std::sscanf(s.c_str(), "%dx%d", &n, &k) != 2) { std::fprintf(stderr, "bad --nk %s\n", s.c_str()); return 2; }
        o.nk.push_back({n, k});
      }
    } else if (a == "--layout") { o.layout = next() == "feature" ? Layout::feature_major : Layout::token_major; }
    else if (a == "--min-time") { o.min_time = std::atof(next().c_str()); }
    else if (a == "--breakeven") { o.breakeven = true; }
    else if (a == "--peaks") { peaks_only = true; }
    else if (a == "--cpu-time") { g_cpu_time = true; }
    else if (a == "--act") { g_gelu = next() == "gelu"; }
    else if (a == "--dst") {
      const std::string d = next();
      if (d != "f32" && d != "u8") { std::fprintf(stderr, "--dst f32|u8\n"); return 2; }
      g_dst_u8 = d == "u8";
    }
    else { std::fprintf(stderr, "unknown flag %s (see the header of bench_sparse_gemm.cpp)\n", a.c_str()); return 2; }
  }
  g_peaks = ne::bench::measure_peaks(0.07, 3);
  std::printf("# %s\n# oneDNN %d.%d, effective ISA %s\n", ne::cpu::describe().c_str(), int(dnnl::version()->major),
              int(dnnl::version()->minor), dnnl_isa_name(dnnl::get_effective_cpu_isa()));
  print_peaks();
  if (peaks_only) return 0;
  std::printf("# layout %s; int8 output %s\n", o.layout == Layout::token_major ? "token-major" : "feature-major",
              g_dst_u8 ? "u8 (requantized)" : "f32");
  std::mt19937_64 rng(42);

  if (o.breakeven) {
    const int M = o.ms.size() == 1 ? o.ms[0] : 128;
    const int T = o.threads.back();
    const auto [N, K] = o.nk.size() == 1 ? o.nk[0] : std::pair<int, int>{768, 768};
    std::printf("# break-even sparsity (sparse faster than oneDNN dense), N=%d K=%d M=%d threads=%d\n", N, K, M, T);
    std::printf("%-5s %-4s %-10s %s\n", "dtype", "pat", "breakeven", "speedup at 0/30/50/70%");
    for (auto& ds : o.dtypes)
      for (auto& ps : o.patterns) {
        const DType dt = parse_dt(ds);
        Pattern p;
        parse_pattern(ps.c_str(), &p);
        omp_set_num_threads(T);
        Result dense = measure(dt, p, M, N, K, 0.0, T, o.layout, o.min_time, true, rng);
        double be = -1;
        std::string pts;
        for (int s = 0; s <= 95; s += 5) {
          Result r = measure(dt, p, M, N, K, s / 100.0, T, o.layout, o.min_time, false, rng);
          const double sp = dense.t_dense / r.t_sparse;
          if (s == 0 || s == 30 || s == 50 || s == 70) pts += std::to_string(sp).substr(0, 4) + " ";
          if (sp >= 1.0 && be < 0) be = s;
        }
        std::printf("%-5s %-4s %-10s %s\n", dt_label(dt), ps.c_str(), be < 0 ? ">95%" : (std::to_string(int(be)) + "%").c_str(),
                    pts.c_str());
        std::fflush(stdout);
      }
    return 0;
  }

  std::printf("%-5s %-4s %5s %5s %5s %4s %3s %10s %9s %6s %10s %6s %8s  %s\n", "dtype", "pat", "N", "K", "M", "sp%",
              "thr", "time_us", "GOP/s", "peak%", "dnnl_us", "dnnl%", "speedup", "kernel");
  std::printf("# kgather rows: z = all-zero (16-channel group, k) rows; peak%% counts the non-zero MACs of the weight\n");
  for (auto& ds : o.dtypes)
    for (auto& ps : o.patterns)
      for (auto [N, K] : o.nk)
        for (int M : o.ms)
          for (int T : o.threads)
            for (int s : o.sparsity)
              for (auto& bs : o.blockings) {
              const DType dt = parse_dt(ds);
              Pattern p;
              int bw = 4;
              if (ps == "1x16") p = Pattern::p1x4, bw = 16;
              else if (!parse_pattern(ps.c_str(), &p)) { std::fprintf(stderr, "bad pattern %s\n", ps.c_str()); return 2; }
              if (bs != "standard" && bs != "kgather") { std::fprintf(stderr, "--blocking standard|kgather\n"); return 2; }
              const Blocking blk = bs == "kgather" ? Blocking::amx_kgather : Blocking::standard;
              if (blk == Blocking::amx_kgather && dt == DType::f32) continue;
              Result r = measure(dt, p, M, N, K, s / 100.0, T, o.layout, o.min_time, true, rng, bw, blk);
              const double ops = 2.0 * M * N * K;
              char zs[32] = "";
              if (blk == Blocking::amx_kgather) std::snprintf(zs, sizeof zs, " (z=%.2f)", r.z);
              std::printf("%-5s %-4s %5d %5d %5d %4d %3d %10.1f %9.1f %6s %10.1f %6s %7.2fx  %s%s\n", dt_label(dt),
                          ps.c_str(), N, K, M, s, T, r.t_sparse * 1e6, ops / r.t_sparse * 1e-9,
                          pct(ops * (1 - r.actual_sp), r.t_sparse, kernel_peak(*r.kernel) * T).c_str(), r.t_dense * 1e6,
                          pct(ops, r.t_dense, dense_peak(dt) * T).c_str(), r.t_dense / r.t_sparse, r.kernel->name, zs);
              std::fflush(stdout);
            }
  return 0;
}
