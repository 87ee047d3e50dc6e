// Shared by the int8 / bf16 operator tests (test_ip_s8, test_ip_s8_candidates, test_ip_bf16,
// test_quantize): InnerProduct.s8, InnerProduct.bf16, Quantize, Dequantize driven directly
// (create_op -> init -> reshape -> forward), each against a naive double-precision reference
// written in the tests that shares no code with executor/ops/quant_* (quantize -> integer matmul
// -> dequantize, written out); and which kernel each ISA tier must run.
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
#pragma once
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

namespace quant_ops_test {

using ne::DType;
using ne::Shape;

inline int64_t numel(const Shape& s) {
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
inline Arg make(DType dt, Shape s, const std::vector<T>& v, bool c = false) {
  Arg a;
  a.dt = dt;
  a.shape = std::move(s);
  a.bytes.resize(v.size() * sizeof(T));
  if (!v.empty()) std::memcpy(a.bytes.data(), v.data(), a.bytes.size());  // memcpy(null, null, 0) is UB (UBSan)
  a.is_const = c;
  return a;
}

inline ne::OpInfo info(const std::string& type, int nin, std::vector<std::pair<std::string, std::string>> attrs) {
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

inline double ref_act(const std::string& k, double x) {
  if (k == "relu") return x > 0 ? x : 0;
  if (k == "gelu_erf") return 0.5 * x * std::erfc(-x / std::sqrt(2.0));
  if (k == "gelu_tanh") return 0.5 * x * (1 + std::tanh(std::sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
  if (k == "tanh") return std::tanh(x);
  if (k == "sigmoid") return 1 / (1 + std::exp(-x));
  ADD_FAILURE() << "unknown post-op " << k;
  return x;
}
inline std::vector<std::string> split(const std::string& s) {
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
inline int ref_q(float x, float s, int zp, int lo, int hi) {
  float v = std::nearbyintf(x / s);  // default rounding mode: to nearest, ties to even
  double r = double(v) + zp;
  return int(std::min<double>(hi, std::max<double>(lo, r)));
}
inline uint16_t ref_bf16(float f) {  // RNE by integer arithmetic
  uint32_t u;
  std::memcpy(&u, &f, 4);
  uint32_t r = u + 0x7fff + ((u >> 16) & 1);
  return uint16_t(r >> 16);
}
inline double bf16_val(uint16_t h) {
  uint32_t u = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// A weight W[K, N] with `sparsity` of its blocks (pattern "1x4" / "4x1") all zero; "dense": none.
template <class T, class Gen>
inline std::vector<T> make_weight(int64_t K, int64_t N, const std::string& pat, double sparsity, std::mt19937& g, Gen gen) {
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

// Which kernel: `expected` (a prefix) if given, else sparse weights go to the block-sparse kernel
// the kernel list names for this CPU and dense ones to oneDNN. The sparse expectation restates the
// list's rule independently of the dispatcher: the first entry of kernel_list() whose weight dtype
// and packed blocking fit the pattern, whose ISA this CPU (under NE_MAX_ISA) has, and whose
// preferred M range holds M = 128 (the M the op names its kernel for). The list is best-first and
// generic last, so this is never the scalar reference where a SIMD kernel fits. No silent fall
// back to oneDNN's reference implementation (e.g. runtime output scales) either.
inline std::string listed_kernel(ne::sparse::DType wdt, const std::string& pat) {
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
inline bool onednn_has_bf16_matmul() {
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
inline bool exact_kernels_only(ne::sparse::DType wdt) {
  if (wdt == ne::sparse::DType::s8) return !ne::cpu::mayiuse(ne::cpu::Isa::avx512_core_vnni);
  return !onednn_has_bf16_matmul();
}

inline void expect_kernel(const ne::Operator& op, const std::string& expected, const std::string& pat,
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
inline std::string kgather_kernel(ne::sparse::DType wdt) {
  const bool amx = ne::cpu::mayiuse(ne::cpu::Isa::avx512_core_amx);
  if (wdt == ne::sparse::DType::s8)
    return amx ? "bsgemm_u8s8s32_kgather_16x64__amx" : "bsgemm_u8s8s32_any_generic__ref";
  return amx ? "bsgemm_bf16_kgather_16x64__amx" : "bsgemm_bf16_any_generic__ref";
}

// The op tests that mean the sparse path force it (threshold 0), so that the dispatcher's
// sparse-vs-dense choice cannot turn them into dense tests. "dense" weights keep the default
// choice (a random s8 weight has a few all-zero blocks by chance, which threshold 0 would take).
inline ne::OpConfig forced_sparse(const std::string& pat) {
  ne::OpConfig cfg;
  if (pat != "dense") cfg.sparse_threshold = 0.f;
  return cfg;
}

// The weight patterns the op tests sweep.
inline const char* kPats[] = {"1x4", "4x1", "dense"};

}  // namespace quant_ops_test
