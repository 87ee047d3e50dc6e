// InnerProduct.s8, InnerProduct.bf16, Quantize, Dequantize driven directly (create_op -> init ->
// reshape -> forward), each against a naive double-precision reference written here that shares
// no code with executor/ops/quant_* (quantize -> integer matmul -> dequantize, written out).
//
// Tolerances and where they come from (u = 2^-24, the fp32 unit roundoff):
//  * int8, fp32 output: the accumulation is exact (int32), and the reference quantizes src with
//    the contract's own float formula (nearbyintf(x / s) + zp), so q is bit-identical. Error comes
//    only from the few fp32 operations after it: s·ws[n], acc·scale, the zero-point fold into the
//    bias (bias' = bias − scale·zp·colsum, which cancels against acc·scale), + bias, the activation
//    (oneDNN / our gelu ~1e-6 relative) and + residual. Bound: 1e-5 relative to the magnitude of
//    the terms before cancellation, mag = scale·(Σ|q||W| + zp·Σ|W|) + |bias| + |residual|
//    (≈ 100 u per term: generous for ~5 roundings, tight enough to catch any wrong q or scale,
//    which moves y by ≥ scale·|W| ≈ mag/K).
//  * int8, requantized u8/s8 output: |q − q_ref| ≤ 1 (a y within the fp32 error above of a
//    rounding boundary may round the other way), and ≥ 95% of the elements exact.
//  * bf16: the reference rounds src to bf16 (RNE) itself, so the products are exact in double;
//    the error is the fp32 accumulation: 4·sqrt(K)·u·Σ|a·b| (probabilistic bound of a K-term fp32
//    sum, Higham & Mary 2019, 4x for blocked orders) + 1e-5 relative for the epilogue; bf16 output
//    adds 2^-8 relative (one bf16 rounding).
//  * Quantize / Dequantize: exact (ONNX QuantizeLinear: float x / scale, round half to even,
//    saturate; DequantizeLinear: (x − zp) in int32, · scale in fp32).
// Random data: std::mt19937 seeded per case; the seed is in the SCOPED_TRACE of every failure.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "executor/operator.hpp"
#include "executor/ops/ip_candidates.hpp"
#include "executor/ops/quant_common.hpp"
#include <dnnl.hpp>

#include "kernels/cpu_features.hpp"
#include "kernels/sparse_gemm/sparse_gemm.hpp"

namespace {

using ne::DType;
using ne::Shape;

int64_t numel(const Shape& s) {
  int64_t n = 1;
  for (auto d : s) n *= d;
  return n;
}

struct Arg {
  DType dt = DType::fp32;
  Shape shape;
  std::vector<uint8_t> bytes;
  bool is_const = false;
  template <class T> T* p() { return reinterpret_cast<T*>(bytes.data()); }
};
template <class T>
Arg make(DType dt, Shape s, const std::vector<T>& v, bool c = false) {
  Arg a;
  a.dt = dt;
  a.shape = std::move(s);
  a.bytes.resize(v.size() * sizeof(T));
  if (!v.empty()) std::memcpy(a.bytes.data(), v.data(), a.bytes.size());  // memcpy(null, null, 0) is UB (UBSan)
  a.is_const = c;
  return a;
}

ne::OpInfo info(const std::string& type, int nin, std::vector<std::pair<std::string, std::string>> attrs) {
  ne::OpInfo i;
  i.name = "op_" + type;
  i.type = type;
  for (int k = 0; k < nin; ++k) i.inputs.push_back("in" + std::to_string(k));
  i.outputs = {"out"};
  i.attrs = std::move(attrs);
  return i;
}

struct Runner {
  std::unique_ptr<ne::Operator> op;
  std::vector<ne::Tensor> in;
  ne::Tensor out;
  std::vector<uint8_t> out_buf;

  explicit Runner(const ne::OpInfo& i, const ne::OpConfig* cfg = nullptr) : op(ne::create_op(i)) {
    EXPECT_TRUE(op) << i.type << " not registered";
    if (op && cfg) op->set_config(*cfg);
  }
  void init(const std::vector<Arg*>& args) {
    in.assign(args.size(), ne::Tensor());
    std::vector<ne::Tensor*> p;
    for (size_t k = 0; k < args.size(); ++k) {
      in[k].name = "in" + std::to_string(k);
      in[k].dtype = args[k]->dt;
      in[k].is_const = args[k]->is_const;
      if (args[k]->is_const) in[k].shape = args[k]->shape, in[k].data = args[k]->bytes.data();
      p.push_back(&in[k]);
    }
    op->init(p);
  }
  // reshape + forward; returns output bytes. `inplace_with` >= 0: dst shares that input's buffer.
  std::vector<uint8_t> run(const std::vector<Arg*>& args, int inplace_with = -1) {
    std::vector<ne::Tensor*> p;
    for (size_t k = 0; k < args.size(); ++k) {
      in[k].dtype = args[k]->dt;
      in[k].shape = args[k]->shape;
      in[k].data = args[k]->bytes.data();
      p.push_back(&in[k]);
    }
    out = ne::Tensor();
    out.name = "out";
    std::vector<ne::Tensor*> o{&out};
    op->reshape(p, o);
    const size_t nb = out.nbytes();
    if (inplace_with >= 0) {
      EXPECT_EQ(nb, args[inplace_with]->bytes.size());
      out.data = args[inplace_with]->bytes.data();
    } else {
      out_buf.assign(nb + 64, 0xA5);
      out.data = out_buf.data();
    }
    op->forward(p, o);
    if (inplace_with < 0) {
      for (size_t k = 0; k < 64; ++k) EXPECT_EQ(out_buf[nb + k], 0xA5) << "wrote past dst";
    }
    const uint8_t* d = static_cast<const uint8_t*>(out.data);
    return std::vector<uint8_t>(d, d + nb);
  }
};

// ---- references (written from OPS.md, double precision) ----

double ref_act(const std::string& k, double x) {
  if (k == "relu") return x > 0 ? x : 0;
  if (k == "gelu_erf") return 0.5 * x * std::erfc(-x / std::sqrt(2.0));
  if (k == "gelu_tanh") return 0.5 * x * (1 + std::tanh(std::sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
  if (k == "tanh") return std::tanh(x);
  if (k == "sigmoid") return 1 / (1 + std::exp(-x));
  ADD_FAILURE() << "unknown post-op " << k;
  return x;
}
std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> r;
  size_t p = 0;
  while (!s.empty() && p <= s.size()) {
    size_t e = s.find(',', p);
    if (e == std::string::npos) e = s.size();
    r.push_back(s.substr(p, e - p));
    p = e + 1;
  }
  return r;
}
// ONNX QuantizeLinear of one value: float division, round half to even, saturate.
int ref_q(float x, float s, int zp, int lo, int hi) {
  float v = std::nearbyintf(x / s);  // default rounding mode: to nearest, ties to even
  double r = double(v) + zp;
  return int(std::min<double>(hi, std::max<double>(lo, r)));
}
uint16_t ref_bf16(float f) {  // RNE by integer arithmetic
  uint32_t u;
  std::memcpy(&u, &f, 4);
  uint32_t r = u + 0x7fff + ((u >> 16) & 1);
  return uint16_t(r >> 16);
}
double bf16_val(uint16_t h) {
  uint32_t u = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// A weight W[K, N] with `sparsity` of its blocks (pattern "1x4" / "4x1") all zero; "dense": none.
template <class T, class Gen>
std::vector<T> make_weight(int64_t K, int64_t N, const std::string& pat, double sparsity, std::mt19937& g, Gen gen) {
  std::vector<T> w(static_cast<size_t>(K * N));
  for (auto& v : w) v = gen(g);
  if (pat == "dense") return w;
  const int64_t bk = pat == "4x1" ? 4 : 1, bn = pat == "1x4" ? 4 : 1;
  const int64_t KB = (K + bk - 1) / bk, NB = (N + bn - 1) / bn, total = KB * NB;
  std::vector<int64_t> idx(static_cast<size_t>(total));
  for (int64_t i = 0; i < total; ++i) idx[size_t(i)] = i;
  std::shuffle(idx.begin(), idx.end(), g);
  const int64_t keep = std::max<int64_t>(1, int64_t(std::llround((1 - sparsity) * double(total))));
  std::vector<bool> nz(static_cast<size_t>(total), false);
  for (int64_t i = 0; i < keep; ++i) nz[size_t(idx[size_t(i)])] = true;
  for (int64_t k = 0; k < K; ++k)
    for (int64_t n = 0; n < N; ++n)
      if (!nz[size_t((k / bk) * NB + n / bn)]) w[size_t(k * N + n)] = T(0);
  return w;
}

// ------------------------------------------------------------------ InnerProduct.s8
struct S8Case {
  std::string pat = "dense";   // weight pattern (90% sparse) or dense
  int64_t M = 3, K = 13, N = 13;
  std::string src_in = "fp32";  // fp32 | u8 | s8 (already quantized)
  std::string src_dt = "u8";
  bool dynamic = false;
  bool per_channel = true;
  bool bias = true;
  std::string post;
  std::string out = "fp32";      // fp32 | u8 | s8
  std::vector<int64_t> Ms;       // more calls with these M (same op)
  bool inplace = false;
  uint32_t seed = 1;
  std::string expect_kernel;     // "bsgemm" / "onednn" (prefix); "" = by pattern
  std::string only;              // NE_IP_ONLY during init (then expect_kernel is the exact name)
};

std::string describe(const S8Case& c) {
  return "pat=" + c.pat + " M=" + std::to_string(c.M) + " K=" + std::to_string(c.K) + " N=" + std::to_string(c.N) +
         " src=" + c.src_in + "/" + c.src_dt + (c.dynamic ? " dynamic" : " static") +
         (c.per_channel ? " per-channel" : " per-tensor") + (c.bias ? " bias" : "") + " post=" + c.post +
         " out=" + c.out + " seed=" + std::to_string(c.seed);
}

// Which kernel: `expected` (a prefix) if given, else sparse weights go to the block-sparse kernel
// the kernel list names for this CPU and dense ones to oneDNN. The sparse expectation restates the
// list's rule independently of the dispatcher: the first entry of kernel_list() whose weight dtype
// and packed blocking fit the pattern, whose ISA this CPU (under NE_MAX_ISA) has, and whose
// preferred M range holds M = 128 (the M the op names its kernel for). The list is best-first and
// generic last, so this is never the scalar reference where a SIMD kernel fits. No silent fall
// back to oneDNN's reference implementation (e.g. runtime output scales) either.
std::string listed_kernel(ne::sparse::DType wdt, const std::string& pat) {
  const int nb = pat == "4x1" ? 1 : 4;
  const int kq = pat == "4x1" ? 4 : (wdt == ne::sparse::DType::s8 ? 4 : wdt == ne::sparse::DType::bf16 ? 2 : 1);
  for (const auto& k : ne::sparse::kernel_list()) {
    if (k.wdtype != wdt) continue;
    if (k.nb && (k.nb != nb || k.kq != kq)) continue;
    if (!ne::cpu::why_not(k.isa).empty()) continue;
    if (k.max_m && 128 > k.max_m) continue;
    return k.name;
  }
  return "(none in the list)";
}

// Whether oneDNN (under ONEDNN_MAX_CPU_ISA) can make a bf16 matmul here: 2.6 has none below
// AVX512_CORE. Asked of oneDNN directly, not of the op.
bool onednn_has_bf16_matmul() {
  try {
    using md = dnnl::memory::desc;
    const auto bf = dnnl::memory::data_type::bf16, f = dnnl::memory::data_type::f32;
    const auto t = dnnl::memory::format_tag::ab;
    dnnl::engine eng(dnnl::engine::kind::cpu, 0);
    dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(md({4, 8}, bf, t), md({8, 4}, bf, t), md({4, 4}, f, t)), eng);
    return true;
  } catch (const dnnl::error&) {
    return false;
  }
}

// Where the engine cannot use oneDNN for a dtype, every weight of it (dense ones too) runs on the
// block-sparse family's exact kernels: int8 without AVX512_VNNI (oneDNN's u8*s8 would sum pairs
// in int16 and saturate), bf16 where oneDNN has no bf16 matmul.
bool exact_kernels_only(ne::sparse::DType wdt) {
  if (wdt == ne::sparse::DType::s8) return !ne::cpu::mayiuse(ne::cpu::Isa::avx512_core_vnni);
  return !onednn_has_bf16_matmul();
}

void expect_kernel(const ne::Operator& op, const std::string& expected, const std::string& pat,
                   ne::sparse::DType wdt) {
  if (exact_kernels_only(wdt)) {
    // Dense weights too; the pattern the weight is packed in is the dispatcher's choice.
    const std::string k14 = listed_kernel(wdt, "1x4"), k41 = listed_kernel(wdt, "4x1");
    EXPECT_TRUE(op.kernel() == k14 || op.kernel() == k41)
        << "kernel " << op.kernel() << ", want " << k14 << " or " << k41 << "; reason " << op.reason();
  } else if (!expected.empty() || pat == "dense") {
    const std::string want = expected.empty() ? "onednn" : expected;
    EXPECT_EQ(op.kernel().rfind(want, 0), 0u) << "kernel " << op.kernel() << " reason " << op.reason();
  } else if (listed_kernel(wdt, "1x4").find("generic__ref") != std::string::npos &&
             listed_kernel(wdt, "4x1").find("generic__ref") != std::string::npos) {
    // Only the scalar reference sparse kernel could run (e.g. bf16 under NE_MAX_ISA=avx512_core):
    // the sparse entry declines and oneDNN runs (README "Sparse weights").
    EXPECT_EQ(op.kernel().rfind("onednn:", 0), 0u) << "kernel " << op.kernel() << " reason " << op.reason();
    EXPECT_NE(op.reason().find("only the scalar reference sparse kernel"), std::string::npos) << op.reason();
  } else {
    // The weight is packed in whichever runnable pattern the dispatcher judged better (a 90%
    // 4x1-pruned weight of small K can be packed 1x4): either blocking's listed kernel.
    const std::string k14 = listed_kernel(wdt, "1x4"), k41 = listed_kernel(wdt, "4x1");
    EXPECT_TRUE(op.kernel() == k14 || op.kernel() == k41)
        << "kernel " << op.kernel() << ", want " << k14 << " or " << k41 << "; reason " << op.reason();
  }
  if (op.kernel().rfind("onednn:", 0) == 0) {
    EXPECT_EQ(op.kernel().find("ref"), std::string::npos) << op.kernel();
  }
}

// Sets an environment variable for a scope ("" leaves it as it is).
struct ScopedEnv {
  std::string name, old;
  bool had = false, set = false;
  ScopedEnv(const std::string& n, const std::string& v) : name(n) {
    if (v.empty()) return;
    if (const char* e = std::getenv(n.c_str())) old = e, had = true;
    setenv(n.c_str(), v.c_str(), 1);
    set = true;
  }
  ~ScopedEnv() {
    if (set) had ? setenv(name.c_str(), old.c_str(), 1) : unsetenv(name.c_str());
  }
};

// The AMX K-gather kernel where AMX is usable, else (NE_IP_ONLY forcing the K-gather candidate)
// the generic reference kernel, which runs any packing.
std::string kgather_kernel(ne::sparse::DType wdt) {
  const bool amx = ne::cpu::mayiuse(ne::cpu::Isa::avx512_core_amx);
  if (wdt == ne::sparse::DType::s8)
    return amx ? "bsgemm_u8s8s32_kgather_16x64__amx" : "bsgemm_u8s8s32_any_generic__ref";
  return amx ? "bsgemm_bf16_kgather_16x64__amx" : "bsgemm_bf16_any_generic__ref";
}

// The op tests that mean the sparse path force it (threshold 0), so that the dispatcher's
// sparse-vs-dense choice cannot turn them into dense tests. "dense" weights keep the default
// choice (a random s8 weight has a few all-zero blocks by chance, which threshold 0 would take).
ne::OpConfig forced_sparse(const std::string& pat) {
  ne::OpConfig cfg;
  if (pat != "dense") cfg.sparse_threshold = 0.f;
  return cfg;
}

void run_s8(const S8Case& c) {
  SCOPED_TRACE(describe(c));
  std::mt19937 g(c.seed);
  const int64_t K = c.K, N = c.N;
  const bool has_sum = c.post.find("sum") != std::string::npos;
  const bool s8src = c.src_dt == "s8";
  const int qlo = s8src ? -128 : 0, qhi = s8src ? 127 : 255;
  std::uniform_int_distribution<int> wd(-127, 127);
  auto W = make_weight<int8_t>(K, N, c.pat, 0.9, g, [&](std::mt19937& r) { return int8_t(wd(r)); });
  std::uniform_real_distribution<float> sd(0.002f, 0.02f);
  std::vector<float> ws(static_cast<size_t>(c.per_channel ? N : 1));
  for (auto& v : ws) v = sd(g);
  std::uniform_real_distribution<float> bd(-1.f, 1.f);
  std::vector<float> bias(static_cast<size_t>(N));
  for (auto& v : bias) v = bd(g);
  // Static src quantization parameters (the x range is about [-1.5, 2.5]).
  const float src_scale = s8src ? 2.5f / 127.f : 4.f / 255.f;
  const int src_zp = s8src ? 0 : 96;
  const float dst_scale = 0.05f;
  const int dst_zp = c.out == "u8" ? 120 : 0;

  std::vector<std::pair<std::string, std::string>> attrs;
  if (!c.post.empty()) attrs.push_back({"append_op", c.post});
  attrs.push_back({"src_dtype", c.src_dt});
  if (c.dynamic) {
    attrs.push_back({"src_scale", "dynamic"});
  } else {
    char b[64];
    std::snprintf(b, sizeof b, "%.9g", src_scale);
    attrs.push_back({"src_scale", b});
    attrs.push_back({"src_zero_point", std::to_string(src_zp)});
  }
  if (c.out != "fp32") {
    attrs.push_back({"output_dtype", c.out});
    attrs.push_back({"dst_scale", "0.05"});
    attrs.push_back({"dst_zero_point", std::to_string(dst_zp)});
  }
  const int nin = 3 + (c.bias ? 1 : 0) + (has_sum ? 1 : 0);
  const ne::OpConfig cfg = forced_sparse(c.pat);
  Runner r(info("InnerProduct.s8", nin, attrs), &cfg);
  if (!r.op) return;
  Arg a_src, a_w = make(DType::s8, {K, N}, W, true), a_ws = make(DType::fp32, {int64_t(ws.size())}, ws, true);
  Arg a_b = make(DType::fp32, {N}, bias, true), a_res;
  std::vector<Arg*> args{&a_src, &a_w, &a_ws};
  if (c.bias) args.push_back(&a_b);
  if (has_sum) args.push_back(&a_res);
  if (c.expect_kernel == "onednn" && exact_kernels_only(ne::sparse::DType::s8)) {
    // A post-op order only oneDNN runs, on a CPU where oneDNN's int8 is not exact: a clear error.
    try {
      r.init(args);
      ADD_FAILURE() << "expected an error, got kernel " << r.op->kernel();
    } catch (const ne::Error& e) {
      EXPECT_NE(std::string(e.what()).find("needs AVX512_VNNI"), std::string::npos) << e.what();
    }
    return;
  }
  {
    ScopedEnv only("NE_IP_ONLY", c.only);
    r.init(args);
  }
  if (!c.only.empty()) {
    EXPECT_EQ(r.op->kernel(), c.expect_kernel) << r.op->reason();
  } else {
    expect_kernel(*r.op, c.expect_kernel, c.pat, ne::sparse::DType::s8);
  }

  std::vector<int64_t> Ms{c.M};
  Ms.insert(Ms.end(), c.Ms.begin(), c.Ms.end());
  for (int64_t M : Ms) {
    SCOPED_TRACE("M=" + std::to_string(M));
    std::uniform_real_distribution<float> xd(-1.5f, 2.5f);
    std::vector<float> X(static_cast<size_t>(M * K));
    for (auto& v : X) v = xd(g);
    if (c.dynamic && M * K > 2) X[0] = -0.75f, X[1] = 3.1f;  // a definite range
    // The quantized src, as the contract writes it.
    float s = src_scale;
    int zp = src_zp;
    if (c.dynamic) {
      float mn = 0, mx = 0;
      for (float v : X) mn = std::min(mn, v), mx = std::max(mx, v);  // range includes 0
      if (s8src) {
        s = std::max(-mn, mx) / 127.f;
        zp = 0;
      } else {
        s = (mx - mn) / 255.f;  // ORT DynamicQuantizeLinear
        zp = int(std::min(255.f, std::max(0.f, std::nearbyintf(-mn / s))));
      }
    }
    std::vector<int> q(static_cast<size_t>(M * K));
    for (size_t i = 0; i < q.size(); ++i) q[i] = ref_q(X[i], s, zp, qlo, qhi);
    if (c.src_in == "fp32") {
      a_src = make(DType::fp32, {M, K}, X);
    } else if (c.src_in == "u8") {
      std::vector<uint8_t> qb(q.begin(), q.end());
      a_src = make(DType::u8, {M, K}, qb);
    } else {
      std::vector<int8_t> qb(q.begin(), q.end());
      a_src = make(DType::s8, {M, K}, qb);
    }
    std::vector<float> res(static_cast<size_t>(M * N));
    for (auto& v : res) v = bd(g);
    a_res = make(DType::fp32, {M, N}, res);

    // Reference: integer matmul, dequantize, post-ops in order.
    std::vector<double> y(static_cast<size_t>(M * N)), mag(size_t(M * N));
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = 0; n < N; ++n) {
        int64_t acc = 0;
        double am = 0;
        for (int64_t k = 0; k < K; ++k) {
          int w = W[size_t(k * N + n)];
          acc += int64_t(q[size_t(m * K + k)] - zp) * w;
          am += std::fabs(double(q[size_t(m * K + k)])) * std::abs(w) + double(zp) * std::abs(w);
        }
        const double sc = double(s) * double(ws[c.per_channel ? size_t(n) : 0]);
        double v = double(acc) * sc + (c.bias ? bias[size_t(n)] : 0.0);
        double mg = am * sc + (c.bias ? std::fabs(bias[size_t(n)]) : 0.0);
        for (auto& p : split(c.post)) {
          if (p == "sum") {
            v += res[size_t(m * N + n)];
            mg += std::fabs(res[size_t(m * N + n)]);
          } else {
            v = ref_act(p, v);
          }
        }
        y[size_t(m * N + n)] = v;
        mag[size_t(m * N + n)] = mg;
      }

    auto outb = r.run(args, c.inplace && has_sum && c.out == "fp32" ? int(args.size()) - 1 : -1);
    ASSERT_EQ(r.out.shape, (Shape{M, N}));
    if (c.out == "fp32") {
      ASSERT_EQ(r.out.dtype, DType::fp32);
      const float* o = reinterpret_cast<const float*>(outb.data());
      for (int64_t i = 0; i < M * N; ++i) {
        const double tol = 1e-5 * mag[size_t(i)] + 1e-6;
        ASSERT_NEAR(o[i], y[size_t(i)], tol) << "at m=" << i / N << " n=" << i % N << " kernel " << r.op->kernel();
      }
    } else {
      const bool so = c.out == "s8";
      ASSERT_EQ(r.out.dtype, so ? DType::s8 : DType::u8);
      int64_t exact = 0;
      for (int64_t i = 0; i < M * N; ++i) {
        double t = std::nearbyint(y[size_t(i)] / dst_scale) + dst_zp;
        t = std::min<double>(so ? 127 : 255, std::max<double>(so ? -128 : 0, t));
        int got = so ? int(int8_t(outb[size_t(i)])) : int(outb[size_t(i)]);
        ASSERT_LE(std::abs(got - int(t)), 1) << "at " << i << " y=" << y[size_t(i)];
        exact += got == int(t);
      }
      EXPECT_GE(double(exact), 0.95 * double(M * N));
    }
  }
}

const char* kPats[] = {"1x4", "4x1", "dense"};

TEST(InnerProductS8, StaticU8AllPatternsAndSizes) {
  uint32_t seed = 100;
  for (const char* pat : kPats)
    for (int64_t K : {13, 97})
      for (int64_t N : {13, 64})
        for (int64_t M : {1, 3, 77}) {
          S8Case c;
          c.pat = pat, c.K = K, c.N = N, c.M = M, c.seed = seed++;
          run_s8(c);
        }
}

TEST(InnerProductS8, DynamicAndS8Src) {
  uint32_t seed = 200;
  for (const char* pat : kPats)
    for (bool dyn : {false, true})
      for (std::string sdt : {"u8", "s8"})
        for (bool pc : {true, false}) {
          S8Case c;
          c.pat = pat, c.dynamic = dyn, c.src_dt = sdt, c.per_channel = pc, c.K = 97, c.N = 29, c.M = 77;
          c.Ms = {1, 0, 3, 515};  // M = 0 (empty batch) and a large M between calls
          c.seed = seed++;
          run_s8(c);
        }
}

// Regression (AMX Xeon): oneDNN runs a small M (1..3 rows) on its VNNI brgemm and larger M on AMX,
// with different weight layouts, and the s8-src VNNI layout (with compensation) cannot be
// reordered from the AMX one: "could not create a primitive descriptor for a reorder primitive".
// Odd K and N, both src dtypes, M from 1 up, growing and shrinking between calls, every dense
// weight dtype. The capped passes of scripts/test.sh run it on the VNNI/BF16 and AVX2 tiers too.
TEST(InnerProductS8, DenseOddShapesEveryM) {
  uint32_t seed = 250;
  for (auto kn : {std::pair<int64_t, int64_t>{97, 29}, {5, 3}, {131, 67}, {768, 33}})
    for (std::string sdt : {"u8", "s8"})
      for (bool dyn : {false, true}) {
        S8Case c;
        c.pat = "dense", c.src_dt = sdt, c.dynamic = dyn, c.K = kn.first, c.N = kn.second, c.M = 1;
        c.Ms = {2, 3, 16, 77, 515, 1, 130};
        c.seed = seed++;
        run_s8(c);
      }
}

TEST(InnerProductS8, PreQuantizedSrc) {
  uint32_t seed = 300;
  for (const char* pat : kPats)
    for (std::string sdt : {"u8", "s8"}) {
      S8Case c;
      c.pat = pat, c.src_in = sdt, c.src_dt = sdt, c.K = 97, c.N = 40, c.M = 77, c.seed = seed++;
      run_s8(c);
    }
}

TEST(InnerProductS8, PostOpsAndCombos) {
  uint32_t seed = 400;
  for (const char* pat : kPats)
    for (std::string post : {"gelu_erf", "sum", "gelu_erf,sum", "relu", "gelu_tanh", "tanh"})
      for (int v = 0; v < 3; ++v) {
        S8Case c;
        c.pat = pat, c.post = post, c.K = 97, c.N = 64, c.M = 77, c.seed = seed++;
        c.bias = v != 1;
        c.dynamic = v == 2;
        c.Ms = {3};
        run_s8(c);
      }
}

TEST(InnerProductS8, PostOrderOutsideTheSparseEpilogueGoesDense) {
  uint32_t seed = 450;
  for (const char* pat : kPats)
    for (std::string post : {"sum,gelu_erf", "sigmoid", "relu,tanh"}) {
      S8Case c;
      c.pat = pat, c.post = post, c.K = 97, c.N = 64, c.M = 77, c.seed = seed++;
      c.expect_kernel = "onednn";
      run_s8(c);
    }
}

TEST(InnerProductS8, ResidualInPlace) {
  uint32_t seed = 500;
  for (const char* pat : kPats)
    for (std::string post : {"sum", "gelu_erf,sum"}) {
      S8Case c;
      c.pat = pat, c.post = post, c.inplace = true, c.K = 97, c.N = 64, c.M = 77, c.seed = seed++;
      c.Ms = {1};
      run_s8(c);
    }
}

TEST(InnerProductS8, RequantizedOutput) {
  uint32_t seed = 600;
  for (const char* pat : kPats)
    for (std::string out : {"u8", "s8"})
      for (std::string post : {"", "gelu_erf", "gelu_erf,sum"}) {
        S8Case c;
        c.pat = pat, c.out = out, c.post = post, c.K = 97, c.N = 64, c.M = 77, c.seed = seed++;
        c.Ms = {3};
        run_s8(c);
      }
}

TEST(InnerProductS8, SparseReasonAndDenseReason) {
  for (std::string pat : {"1x4", "dense"}) {
    S8Case c;
    c.pat = pat;
    std::mt19937 g(7);
    std::uniform_int_distribution<int> wd(-127, 127);
    auto W = make_weight<int8_t>(64, 64, pat, 0.9, g, [&](std::mt19937& r) { return int8_t(wd(r)); });
    std::vector<float> ws(64, 0.01f);
    Runner r(info("InnerProduct.s8", 3, {{"src_scale", "0.02"}, {"src_zero_point", "10"}}));
    Arg a_src, a_w = make(DType::s8, {64, 64}, W, true), a_ws = make(DType::fp32, {64}, ws, true);
    r.init({&a_src, &a_w, &a_ws});
    if (exact_kernels_only(ne::sparse::DType::s8)) {
      EXPECT_EQ(r.op->reason().rfind("exact: the block-sparse family's exact int32 kernels", 0), 0u) << r.op->reason();
      EXPECT_NE(r.op->reason().find("dense: needs AVX512_VNNI"), std::string::npos) << r.op->reason();
    } else if (pat == "1x4") {
      // Measured dispatch (the default): sparse and dense are both candidates, timed per M class
      // (and, where AMX is usable, the K-gather kernel first).
      const bool amx = ne::cpu::mayiuse(ne::cpu::Isa::avx512_core_amx);
      EXPECT_EQ(r.op->reason().rfind(amx ? "candidates sparse_amx_kgather (z16 " : "candidates sparse (weight 90", 0), 0u)
          << r.op->reason();
      EXPECT_NE(r.op->reason().find("sparse (weight 90"), std::string::npos) << r.op->reason();
      EXPECT_NE(r.op->reason().find(", dense: timed on this CPU"), std::string::npos) << r.op->reason();
      if (amx) {
        EXPECT_EQ(r.op->kernel(), "bsgemm_u8s8s32_kgather_16x64__amx") << r.op->reason();
      } else if (ne::cpu::mayiuse(ne::cpu::Isa::avx512_core_vnni)) {
        EXPECT_NE(r.op->kernel().find("u8s8s32_1x4"), std::string::npos) << r.op->kernel();
        EXPECT_NE(r.op->kernel().find("avx512vnni"), std::string::npos) << r.op->kernel();
      }
    } else {
      EXPECT_EQ(r.op->reason().rfind("dense; declined: ", 0), 0u) << r.op->reason();
      EXPECT_NE(r.op->reason().find("; sparse: weight "), std::string::npos) << r.op->reason();
      EXPECT_EQ(r.op->kernel().rfind("onednn:", 0), 0u) << r.op->kernel();
    }
  }
}

// The AMX K-gather candidate through the op: the weight packed as 16-channel groups of their
// non-zero k rows (partial last group: N = 40), every epilogue and output dtype, several M.
// Without AMX, NE_IP_ONLY forces it and the generic reference kernel runs that packing.
TEST(InnerProductS8, KgatherCandidateThroughTheOp) {
  uint32_t seed = 700;
  for (const char* pat : {"1x4", "4x1"})
    for (int64_t N : {64, 40})
      for (std::string post : {"", "gelu_erf", "gelu_erf,sum"})
        for (std::string out : {"fp32", "u8"}) {
          S8Case c;
          c.pat = pat, c.post = post, c.out = out, c.K = 97, c.N = N, c.M = 77, c.seed = seed++;
          c.Ms = {1, 16};
          c.only = "sparse_amx_kgather";
          c.expect_kernel = kgather_kernel(ne::sparse::DType::s8);
          run_s8(c);
        }
}

// The candidate list's reasons: K-gather declines without AMX (or, with AMX, for a 4x1 weight whose
// z16 is ~0.9^16, and under a given threshold); a forced threshold runs the AVX-512 sparse entry
// alone; NE_IP_ONLY with an unknown entry is a clear error.
TEST(InnerProductS8, CandidateListReasons) {
  std::mt19937 g(11);
  std::uniform_int_distribution<int> wd(-127, 127);
  const int64_t K = 256, N = 64;
  std::vector<float> ws(N, 0.01f);
  for (std::string pat : {"1x4", "4x1"}) {
    SCOPED_TRACE(pat);
    auto W = make_weight<int8_t>(K, N, pat, 0.9, g, [&](std::mt19937& r) { return int8_t(wd(r)); });
    Arg a_src, a_w = make(DType::s8, {K, N}, W, true), a_ws = make(DType::fp32, {N}, ws, true);
    {
      Runner r(info("InnerProduct.s8", 3, {{"src_scale", "0.02"}, {"src_zero_point", "10"}}));
      r.init({&a_src, &a_w, &a_ws});
      const std::string why = r.op->reason();
      if (!ne::cpu::mayiuse(ne::cpu::Isa::avx512_core_amx)) {
        EXPECT_NE(why.find("sparse_amx_kgather: needs AMX ("), std::string::npos) << why;
      } else if (pat == "4x1") {
        EXPECT_NE(why.find("sparse_amx_kgather: z16 0."), std::string::npos) << why;
        EXPECT_NE(why.find(" < 0.30: too few all-zero"), std::string::npos) << why;
      }
    }
    if (pat != "1x4" || exact_kernels_only(ne::sparse::DType::s8)) continue;
    ne::OpConfig forced;
    forced.sparse_threshold = 0.5f;
    Runner r(info("InnerProduct.s8", 3, {{"src_scale", "0.02"}, {"src_zero_point", "10"}}), &forced);
    r.init({&a_src, &a_w, &a_ws});
    const std::string why = r.op->reason();
    // A given threshold forces the AVX-512 sparse rule; the K-gather kernel is a timed candidate only.
    EXPECT_EQ(why.rfind("sparse: ", 0), 0u) << why;
    EXPECT_NE(why.find("dense: not tried (sparse is a sure or forced choice)"), std::string::npos) << why;
    if (ne::cpu::mayiuse(ne::cpu::Isa::avx512_core_amx)) {
      EXPECT_NE(why.find("sparse_amx_kgather: runs only as a timed candidate"), std::string::npos) << why;
    }
    ScopedEnv only("NE_IP_ONLY", "no_such_entry");
    Runner bad(info("InnerProduct.s8", 3, {{"src_scale", "0.02"}, {"src_zero_point", "10"}}));
    try {
      bad.init({&a_src, &a_w, &a_ws});
      ADD_FAILURE() << "NE_IP_ONLY=no_such_entry accepted: " << bad.op->kernel();
    } catch (const ne::Error& e) {
      EXPECT_NE(std::string(e.what()).find("dense: NE_IP_ONLY=no_such_entry"), std::string::npos) << e.what();
    }
  }
}

// kernel() names the kernel that runs each M (the sparse list prefers a narrow token tile for
// small M), not the one chosen for M = 128 at init.
TEST(InnerProductS8, KernelIsTheOneThatRanForEachM) {
  if (exact_kernels_only(ne::sparse::DType::s8)) GTEST_SKIP() << "int8 runs the exact kernels here";
  std::mt19937 g(12);
  std::uniform_int_distribution<int> wd(-127, 127);
  const int64_t K = 128, N = 64;
  auto W = make_weight<int8_t>(K, N, "1x4", 0.9, g, [&](std::mt19937& r) { return int8_t(wd(r)); });
  std::vector<float> ws(N, 0.01f);
  ne::OpConfig forced;
  forced.sparse_threshold = 0.f;
  ScopedEnv only("NE_IP_ONLY", "sparse");
  Runner r(info("InnerProduct.s8", 3, {{"src_scale", "0.02"}, {"src_zero_point", "10"}}), &forced);
  Arg a_src, a_w = make(DType::s8, {K, N}, W, true), a_ws = make(DType::fp32, {N}, ws, true);
  r.init({&a_src, &a_w, &a_ws});
  for (int64_t M : {int64_t(8), int64_t(256), int64_t(8)}) {
    SCOPED_TRACE("M=" + std::to_string(M));
    std::vector<float> X(size_t(M * K), 0.5f);
    a_src = make(DType::fp32, {M, K}, X);
    r.run({&a_src, &a_w, &a_ws});
    ne::sparse::GemmArgs a;
    a.M = int(M);
    a.src_dtype = ne::sparse::DType::u8;
    const auto ch = ne::sparse::choose_kernel(a, ne::sparse::DType::s8, ne::sparse::Pattern::p1x4);
    ASSERT_TRUE(ch.kernel);
    EXPECT_EQ(r.op->kernel(), ch.kernel->name) << r.op->reason();
  }
}

// Measured dispatch: every candidate is timed once per M class at plan time, the reason shows each
// class's timings and what ran; with WEIGHT_SHARING=1 the decision is cached in NE_CACHE_DIR and a
// second op on the same weight (the in-process memo cleared) takes it from there.
TEST(InnerProductS8, TimedChoiceIsCachedBesideThePackedWeights) {
  if (exact_kernels_only(ne::sparse::DType::s8)) GTEST_SKIP() << "int8 runs the exact kernels here";
  char tmpl[] = "/tmp/ne_ipchoice_XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  ScopedEnv ws_env("WEIGHT_SHARING", "1"), dir_env("NE_CACHE_DIR", tmpl);
  std::mt19937 g(13);
  std::uniform_int_distribution<int> wd(-127, 127);
  const int64_t K = 256, N = 128, M = 64;
  auto W = make_weight<int8_t>(K, N, "1x4", 0.9, g, [&](std::mt19937& r) { return int8_t(wd(r)); });
  std::vector<float> ws(N, 0.01f), X(size_t(M * K), 0.5f);
  Arg a_src = make(DType::fp32, {M, K}, X), a_w = make(DType::s8, {K, N}, W, true),
      a_ws = make(DType::fp32, {N}, ws, true);
  std::string first_ran;
  for (int pass = 0; pass < 2; ++pass) {
    SCOPED_TRACE("pass " + std::to_string(pass));
    ne::ip_choice_memo_clear();
    Runner r(info("InnerProduct.s8", 3, {{"src_scale", "0.02"}, {"src_zero_point", "10"}}));
    r.init({&a_src, &a_w, &a_ws});
    r.run({&a_src, &a_w, &a_ws});
    const std::string why = r.op->reason();
    const size_t at = why.find("M=64");
    ASSERT_NE(at, std::string::npos) << why;
    EXPECT_EQ(why.find("M=64 (cached decision): ran ") != std::string::npos, pass == 1) << why;
    EXPECT_NE(why.find("x slower"), std::string::npos) << why;
    if (pass == 0) first_ran = r.op->kernel();
    else EXPECT_EQ(r.op->kernel(), first_ran) << why;
  }
  std::system((std::string("rm -rf ") + tmpl).c_str());
}

// fp32 has the same list machinery: a sparse weight above the threshold, near the break-even, is
// timed against oneDNN; far above it (>= 50% 1x4) it runs sparse untimed.
TEST(InnerProductFp32, SparseAndDenseAreTimedCandidates) {
  if (!ne::cpu::mayiuse(ne::cpu::Isa::avx512_core)) GTEST_SKIP() << "no AVX-512: only the scalar sparse kernel";
  std::mt19937 g(14);
  std::uniform_real_distribution<float> ud(-1.f, 1.f);
  const int64_t K = 256, N = 128, M = 32;
  auto W = make_weight<float>(K, N, "1x4", 0.4, g, [&](std::mt19937& r) { return ud(r); });
  std::vector<float> X(size_t(M * K), 0.25f);
  Arg a_src = make(DType::fp32, {M, K}, X), a_w = make(DType::fp32, {K, N}, W, true);
  Runner r(info("InnerProduct", 2, {}));
  r.init({&a_src, &a_w});
  auto out = r.run({&a_src, &a_w});
  const std::string why = r.op->reason();
  EXPECT_EQ(why.rfind("candidates sparse (weight 40", 0), 0u) << why;
  EXPECT_NE(why.find(", dense: timed on this CPU"), std::string::npos) << why;
  EXPECT_NE(why.find("M=32: ran "), std::string::npos) << why;
  // Far above the fp32 break-even the sparse kernel runs untimed from M = 16 on; M = 1 is timed.
  auto W90 = make_weight<float>(K, N, "1x4", 0.9, g, [&](std::mt19937& r) { return ud(r); });
  Arg a_w90 = make(DType::fp32, {K, N}, W90, true);
  Runner r90(info("InnerProduct", 2, {}));
  r90.init({&a_src, &a_w90});
  r90.run({&a_src, &a_w90});
  std::string why90 = r90.op->reason();
  EXPECT_EQ(why90.rfind("candidates sparse (weight 90", 0), 0u) << why90;
  EXPECT_NE(why90.find("sure for M >= 16: >= 70%, far above the fp32 break-even"), std::string::npos) << why90;
  EXPECT_NE(why90.find("M=32: ran bsgemm_f32_1x4"), std::string::npos) << why90;
  EXPECT_NE(why90.find("(not timed: weight 90"), std::string::npos) << why90;
  std::vector<float> X1(size_t(K), 0.25f);
  Arg a_src1 = make(DType::fp32, {1, K}, X1);
  r90.run({&a_src1, &a_w90});
  why90 = r90.op->reason();
  EXPECT_NE(why90.find("M=1: ran "), std::string::npos) << why90;
  EXPECT_NE(why90.find("x slower"), std::string::npos) << why90;
  const float* y = reinterpret_cast<const float*>(out.data());
  for (int64_t n = 0; n < N; ++n) {
    double acc = 0, mag = 0;
    for (int64_t k = 0; k < K; ++k) acc += 0.25 * W[size_t(k * N + n)], mag += std::fabs(0.25 * W[size_t(k * N + n)]);
    for (int64_t m = 0; m < M; ++m) ASSERT_NEAR(y[m * N + n], acc, 1e-5 * mag + 1e-6) << "m=" << m << " n=" << n;
  }
}

TEST(InnerProductS8, BadAttributesAreErrors) {
  std::vector<int8_t> W(16, 1);
  std::vector<float> ws(4, 0.1f);
  auto mk = [](std::vector<std::pair<std::string, std::string>> a) {
    return ne::create_op(info("InnerProduct.s8", 3, a));
  };
  EXPECT_THROW(mk({}), ne::Error);                                                      // no src_scale
  EXPECT_THROW(mk({{"src_scale", "0"}}), ne::Error);                                    // not positive
  EXPECT_THROW(mk({{"src_scale", "0.1"}, {"src_zero_point", "300"}}), ne::Error);       // zp range
  EXPECT_THROW(mk({{"src_scale", "0.1"}, {"src_dtype", "s8"}, {"src_zero_point", "3"}}), ne::Error);
  EXPECT_THROW(mk({{"src_scale", "0.1"}, {"output_dtype", "u8"}}), ne::Error);          // no dst_scale
  auto op = mk({{"src_scale", "0.1"}});
  Arg a_src, a_w = make(DType::s8, {4, 4}, W, true), a_ws = make(DType::fp32, {3}, std::vector<float>(3, 0.1f), true);
  std::vector<ne::Tensor> t(3);
  Arg* args[] = {&a_src, &a_w, &a_ws};
  std::vector<ne::Tensor*> p;
  for (int k = 0; k < 3; ++k) {
    t[k].dtype = args[k]->dt, t[k].is_const = args[k]->is_const;
    if (t[k].is_const) t[k].shape = args[k]->shape, t[k].data = args[k]->bytes.data();
    p.push_back(&t[k]);
  }
  EXPECT_THROW(op->init(p), ne::Error);  // weight_scale of 3 for N = 4
}

// ------------------------------------------------------------------ InnerProduct.bf16
struct Bf16Case {
  std::string pat = "dense";
  int64_t M = 3, K = 13, N = 13;
  bool src_bf16 = false, bias = true, out_bf16 = false, inplace = false;
  std::string post;
  std::vector<int64_t> Ms;
  uint32_t seed = 1;
  std::string expect_kernel;
  std::string only;  // NE_IP_ONLY during init (then expect_kernel is the exact name)
};

void run_bf16(const Bf16Case& c) {
  SCOPED_TRACE("pat=" + c.pat + " M=" + std::to_string(c.M) + " K=" + std::to_string(c.K) + " N=" +
               std::to_string(c.N) + " post=" + c.post + (c.src_bf16 ? " src bf16" : "") +
               (c.out_bf16 ? " out bf16" : "") + " seed=" + std::to_string(c.seed));
  std::mt19937 g(c.seed);
  const int64_t K = c.K, N = c.N;
  const bool has_sum = c.post.find("sum") != std::string::npos;
  std::uniform_real_distribution<float> ud(-1.f, 1.f);
  auto Wf = make_weight<float>(K, N, c.pat, 0.9, g, [&](std::mt19937& r) { return ud(r) * 0.3f; });
  std::vector<uint16_t> W(Wf.size());
  for (size_t i = 0; i < W.size(); ++i) W[i] = ref_bf16(Wf[i]);
  std::vector<float> bias(static_cast<size_t>(N));
  for (auto& v : bias) v = ud(g);
  std::vector<std::pair<std::string, std::string>> attrs;
  if (!c.post.empty()) attrs.push_back({"append_op", c.post});
  if (c.out_bf16) attrs.push_back({"output_dtype", "bf16"});
  const ne::OpConfig cfg = forced_sparse(c.pat);
  Runner r(info("InnerProduct.bf16", 2 + (c.bias ? 1 : 0) + (has_sum ? 1 : 0), attrs), &cfg);
  if (!r.op) return;
  Arg a_src, a_w = make(DType::bf16, {K, N}, W, true), a_b = make(DType::fp32, {N}, bias, true), a_res;
  std::vector<Arg*> args{&a_src, &a_w};
  if (c.bias) args.push_back(&a_b);
  if (has_sum) args.push_back(&a_res);
  if (c.expect_kernel == "onednn" && exact_kernels_only(ne::sparse::DType::bf16)) {
    try {
      r.init(args);
      ADD_FAILURE() << "expected an error, got kernel " << r.op->kernel();
    } catch (const ne::Error& e) {
      EXPECT_NE(std::string(e.what()).find("oneDNN has no bf16 matmul"), std::string::npos) << e.what();
    }
    return;
  }
  {
    ScopedEnv only("NE_IP_ONLY", c.only);
    r.init(args);
  }
  if (!c.only.empty()) {
    EXPECT_EQ(r.op->kernel(), c.expect_kernel) << r.op->reason();
  } else {
    expect_kernel(*r.op, c.expect_kernel, c.pat, ne::sparse::DType::bf16);
  }

  std::vector<int64_t> Ms{c.M};
  Ms.insert(Ms.end(), c.Ms.begin(), c.Ms.end());
  for (int64_t M : Ms) {
    SCOPED_TRACE("M=" + std::to_string(M));
    std::vector<float> X(static_cast<size_t>(M * K));
    for (auto& v : X) v = ud(g) * 2;
    std::vector<uint16_t> Xb(X.size());
    for (size_t i = 0; i < X.size(); ++i) Xb[i] = ref_bf16(X[i]);
    a_src = c.src_bf16 ? make(DType::bf16, {M, K}, Xb) : make(DType::fp32, {M, K}, X);
    std::vector<float> res(static_cast<size_t>(M * N));
    for (auto& v : res) v = ud(g);
    a_res = make(DType::fp32, {M, N}, res);
    std::vector<double> y(static_cast<size_t>(M * N)), tol(size_t(M * N));
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = 0; n < N; ++n) {
        double acc = 0, am = 0;
        for (int64_t k = 0; k < K; ++k) {
          double p = bf16_val(Xb[size_t(m * K + k)]) * bf16_val(W[size_t(k * N + n)]);
          acc += p, am += std::fabs(p);
        }
        double v = acc + (c.bias ? bias[size_t(n)] : 0.0);
        double mg = am + (c.bias ? std::fabs(bias[size_t(n)]) : 0.0);
        for (auto& p : split(c.post)) {
          if (p == "sum") v += res[size_t(m * N + n)], mg += std::fabs(res[size_t(m * N + n)]);
          else v = ref_act(p, v);
        }
        y[size_t(m * N + n)] = v;
        tol[size_t(m * N + n)] = 4 * std::sqrt(double(K)) * std::ldexp(1.0, -24) * am + 1e-5 * mg + 1e-6 +
                                 (c.out_bf16 ? std::ldexp(std::fabs(v), -8) : 0.0);
      }
    auto outb = r.run(args, c.inplace && has_sum && !c.out_bf16 ? int(args.size()) - 1 : -1);
    ASSERT_EQ(r.out.dtype, c.out_bf16 ? DType::bf16 : DType::fp32);
    for (int64_t i = 0; i < M * N; ++i) {
      double o = c.out_bf16 ? bf16_val(reinterpret_cast<const uint16_t*>(outb.data())[i])
                            : double(reinterpret_cast<const float*>(outb.data())[i]);
      ASSERT_NEAR(o, y[size_t(i)], tol[size_t(i)]) << "at m=" << i / N << " n=" << i % N << " kernel " << r.op->kernel();
    }
  }
}

TEST(InnerProductBf16, AllPatternsAndSizes) {
  uint32_t seed = 1000;
  for (const char* pat : kPats)
    for (int64_t K : {13, 97})
      for (int64_t N : {13, 64})
        for (int64_t M : {1, 3, 77}) {
          Bf16Case c;
          c.pat = pat, c.K = K, c.N = N, c.M = M, c.seed = seed++;
          run_bf16(c);
        }
}

TEST(InnerProductBf16, PostOpsSrcBf16OutBf16InPlace) {
  uint32_t seed = 1100;
  for (const char* pat : kPats)
    for (std::string post : {"", "gelu_erf", "sum", "gelu_erf,sum", "relu"}) {
      for (int v = 0; v < 4; ++v) {
        Bf16Case c;
        c.pat = pat, c.post = post, c.K = 97, c.N = 64, c.M = 77, c.seed = seed++;
        c.src_bf16 = v == 1;
        c.out_bf16 = v == 2;
        c.inplace = v == 3;
        c.bias = v != 1;
        c.Ms = {1, 0, 3};
        run_bf16(c);
      }
    }
}

// The bf16 side of InnerProductS8.DenseOddShapesEveryM.
TEST(InnerProductBf16, DenseOddShapesEveryM) {
  uint32_t seed = 1250;
  for (auto kn : {std::pair<int64_t, int64_t>{97, 29}, {5, 3}, {131, 67}, {768, 33}})
    for (bool src_bf16 : {false, true}) {
      Bf16Case c;
      c.pat = "dense", c.src_bf16 = src_bf16, c.K = kn.first, c.N = kn.second, c.M = 1;
      c.Ms = {2, 3, 16, 77, 515, 1, 130};
      c.seed = seed++;
      run_bf16(c);
    }
}

TEST(InnerProductBf16, KgatherCandidateThroughTheOp) {
  uint32_t seed = 1300;
  for (const char* pat : {"1x4", "4x1"})
    for (int64_t N : {64, 40})
      for (std::string post : {"", "gelu_erf,sum"})
        for (bool out_bf16 : {false, true}) {
          Bf16Case c;
          c.pat = pat, c.post = post, c.out_bf16 = out_bf16, c.K = 97, c.N = N, c.M = 77, c.seed = seed++;
          c.Ms = {1, 16};
          c.only = "sparse_amx_kgather";
          c.expect_kernel = kgather_kernel(ne::sparse::DType::bf16);
          run_bf16(c);
        }
}

TEST(InnerProductBf16, PostOrderOutsideTheSparseEpilogueGoesDense) {
  Bf16Case c;
  c.pat = "1x4", c.post = "sum,gelu_erf", c.K = 97, c.N = 64, c.M = 77, c.seed = 1200, c.expect_kernel = "onednn";
  run_bf16(c);
}

// ------------------------------------------------------------------ Quantize / Dequantize
TEST(Quantize, HalfToEvenAndSaturation) {
  for (bool portable : {false, true}) {
    ne::quant::force_portable(portable);
    SCOPED_TRACE(portable ? "portable" : "detected ISA");
    // scale 1: halves go to even; then + zp; saturation both ends.
    std::vector<float> x = {0.5f, 1.5f, 2.5f, -0.5f, -1.5f, -2.5f, 3.49999f, 1000.f, -1000.f, 127.5f, 0.f, -0.f};
    {
      Runner r(info("Quantize", 1, {{"output_dtype", "u8"}, {"scale", "1"}, {"zero_point", "10"}}));
      Arg a = make(DType::fp32, {int64_t(x.size())}, x);
      r.init({&a});
      auto o = r.run({&a});
      ASSERT_EQ(r.out.dtype, DType::u8);
      std::vector<uint8_t> want = {10, 12, 12, 10, 8, 8, 13, 255, 0, 138, 10, 10};
      EXPECT_EQ(o, want);
    }
    {
      Runner r(info("Quantize", 1, {{"output_dtype", "s8"}, {"scale", "1"}, {"zero_point", "-3"}}));
      Arg a = make(DType::fp32, {int64_t(x.size())}, x);
      r.init({&a});
      auto o = r.run({&a});
      ASSERT_EQ(r.out.dtype, DType::s8);
      std::vector<int8_t> want = {-3, -1, -1, -3, -5, -5, 0, 127, -128, 125, -3, -3};
      for (size_t i = 0; i < x.size(); ++i) EXPECT_EQ(int8_t(o[i]), want[i]) << i;
    }
    // Random data of an awkward length (vector tails, several threads' chunks) vs the reference.
    for (std::string dt : {"u8", "s8"}) {
      const int64_t n = 100003;
      std::mt19937 g(77);
      std::uniform_real_distribution<float> d(-3.f, 3.f);
      std::vector<float> v(static_cast<size_t>(n));
      for (auto& e : v) e = d(g);
      for (int64_t i = 0; i < 1000; ++i) v[size_t(i)] = float(i - 500) * 0.0125f;  // exact halves of 0.025
      const float s = 0.025f;
      const int zp = dt == "u8" ? 128 : 0;
      Runner r(info("Quantize", 1, {{"output_dtype", dt}, {"scale", "0.025"}, {"zero_point", std::to_string(zp)}}));
      Arg a = make(DType::fp32, {n}, v);
      r.init({&a});
      auto o = r.run({&a});
      for (int64_t i = 0; i < n; ++i) {
        int want = dt == "u8" ? ref_q(v[size_t(i)], s, zp, 0, 255) : ref_q(v[size_t(i)], s, zp, -128, 127);
        int got = dt == "u8" ? int(o[size_t(i)]) : int(int8_t(o[size_t(i)]));
        ASSERT_EQ(got, want) << dt << " at " << i << " x=" << v[size_t(i)];
      }
    }
  }
  ne::quant::force_portable(false);
}

// Values a few ulp around every half step, for awkward scales: the AVX-512 body multiplies by
// 1/scale and must still round exactly as fl(x / scale) does (ONNX), near the halves included.
TEST(Quantize, NearHalfStepsMatchTheDivision) {
  for (bool portable : {false, true}) {
    ne::quant::force_portable(portable);
    for (float s : {0.025f, 4.f / 255.f, 0.0173f, 3.3e-3f, 7.1f, 1e-30f, 3e30f}) {
      SCOPED_TRACE(std::string(portable ? "portable" : "detected ISA") + " scale " + std::to_string(s));
      std::vector<float> x;
      for (int k = -300; k <= 300; ++k) {
        float h = (float(k) + 0.5f) * s;
        float lo = h, hi = h;
        for (int j = 0; j < 4; ++j) lo = std::nextafter(lo, -INFINITY), hi = std::nextafter(hi, INFINITY);
        for (float v = lo; v <= hi; v = std::nextafter(v, INFINITY)) x.push_back(v);
      }
      for (bool sg : {false, true}) {
        const int zp = sg ? 0 : 100;
        std::vector<uint8_t> q(x.size());
        ne::quant::quantize(x.data(), q.data(), int64_t(x.size()), s, zp, sg);
        for (size_t i = 0; i < x.size(); ++i) {
          int want = ref_q(x[i], s, zp, sg ? -128 : 0, sg ? 127 : 255);
          int got = sg ? int(int8_t(q[i])) : int(q[i]);
          ASSERT_EQ(got, want) << "x=" << x[i] << " x/s=" << x[i] / s << (sg ? " s8" : " u8");
        }
      }
    }
  }
  ne::quant::force_portable(false);
}

TEST(Quantize, BadAttributes) {
  EXPECT_THROW(ne::create_op(info("Quantize", 1, {{"output_dtype", "u8"}})), ne::Error);
  EXPECT_THROW(ne::create_op(info("Quantize", 1, {{"output_dtype", "fp32"}, {"scale", "1"}})), ne::Error);
  EXPECT_THROW(ne::create_op(info("Quantize", 1, {{"output_dtype", "u8"}, {"scale", "-1"}})), ne::Error);
  EXPECT_THROW(ne::create_op(info("Quantize", 1, {{"output_dtype", "s8"}, {"scale", "1"}, {"zero_point", "200"}})),
               ne::Error);
}

TEST(Dequantize, OnnxSemantics) {
  {
    std::vector<uint8_t> x = {0, 1, 128, 255};
    Runner r(info("Dequantize", 1, {{"scale", "0.5"}, {"zero_point", "128"}}));
    Arg a = make(DType::u8, {4}, x);
    r.init({&a});
    auto o = r.run({&a});
    ASSERT_EQ(r.out.dtype, DType::fp32);
    const float* f = reinterpret_cast<const float*>(o.data());
    EXPECT_EQ(std::vector<float>(f, f + 4), (std::vector<float>{-64.f, -63.5f, 0.f, 63.5f}));
  }
  {
    std::vector<int8_t> x = {-128, -1, 0, 127};
    Runner r(info("Dequantize", 1, {{"scale", "0.25"}, {"zero_point", "-1"}}));
    Arg a = make(DType::s8, {2, 2}, x);
    r.init({&a});
    auto o = r.run({&a});
    const float* f = reinterpret_cast<const float*>(o.data());
    EXPECT_EQ(std::vector<float>(f, f + 4), (std::vector<float>{-31.75f, 0.f, 0.25f, 32.f}));
    EXPECT_EQ(r.out.shape, (Shape{2, 2}));
  }
  {
    std::vector<int32_t> x = {-1000000, 0, 7, 2147483000};
    Runner r(info("Dequantize", 1, {{"scale", "0.001"}}));
    Arg a = make(DType::s32, {4}, x);
    r.init({&a});
    auto o = r.run({&a});
    const float* f = reinterpret_cast<const float*>(o.data());
    for (int i = 0; i < 4; ++i) EXPECT_EQ(f[i], float(x[size_t(i)]) * 0.001f) << i;
  }
}

TEST(QuantHelpers, DynamicParamsFollowDynamicQuantizeLinear) {
  float s;
  int zp;
  ne::quant::dynamic_qparams(-1.f, 3.f, false, &s, &zp);
  EXPECT_FLOAT_EQ(s, 4.f / 255.f);
  EXPECT_EQ(zp, 64);  // nearbyint(63.75)
  ne::quant::dynamic_qparams(0.5f, 2.f, false, &s, &zp);  // widened to include 0
  EXPECT_FLOAT_EQ(s, 2.f / 255.f);
  EXPECT_EQ(zp, 0);
  ne::quant::dynamic_qparams(-4.f, -1.f, false, &s, &zp);
  EXPECT_EQ(zp, 255);
  ne::quant::dynamic_qparams(-1.f, 3.f, true, &s, &zp);
  EXPECT_FLOAT_EQ(s, 3.f / 127.f);
  EXPECT_EQ(zp, 0);
  ne::quant::dynamic_qparams(0.f, 0.f, false, &s, &zp);
  EXPECT_EQ(s, 1.f);
  EXPECT_EQ(zp, 0);
}

TEST(QuantHelpers, MinMaxAndBf16MatchPortable) {
  const int64_t n = 70001;
  std::mt19937 g(5);
  std::uniform_real_distribution<float> d(-10.f, 10.f);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& e : v) e = d(g);
  v[12345] = -11.f;
  v[n - 1] = 12.f;
  for (bool portable : {false, true}) {
    ne::quant::force_portable(portable);
    float mn, mx;
    ne::quant::minmax(v.data(), n, &mn, &mx);
    EXPECT_EQ(mn, -11.f);
    EXPECT_EQ(mx, 12.f);
    std::vector<uint16_t> b(static_cast<size_t>(n));
    ne::quant::to_bf16(v.data(), b.data(), n);
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(b[size_t(i)], ref_bf16(v[size_t(i)])) << i;
  }
  ne::quant::force_portable(false);
}

}  // namespace
