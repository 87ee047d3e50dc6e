// Shared by the dense operator tests (test_inner_product, test_matmul, test_row_ops,
// test_attention_op): InnerProduct, Matmul, Softmax, LayerNorm, Gelu, Attention driven directly
// (create_op -> init -> reshape -> allocate -> forward), each against a naive double-precision
// reference written in the tests (shares no code with executor/ops/dense_*).
//
// Tolerances (u = 2^-24, the fp32 unit roundoff):
//  * dot products of length K: |err| <= 4·sqrt(K)·u·Σ|a_k·b_k| + post-op error. sqrt(K)·u is the
//    probabilistic rounding-error bound of a K-term fp32 sum (Higham & Mary, SIAM J. Sci. Comput.
//    2019); 4x margin for blocked summation orders. Exact worst case would be K·u.
//  * element-wise (exp, erf, tanh) results: 1e-6 relative + 1e-6·(scale of inputs) absolute.
//    Our AVX-512 exp/erf are a few ulp (6e-8 each); oneDNN's eltwise gelu_erf / tanh post-ops
//    claim ~1e-6 relative (oneDNN eltwise docs), which is what bounds the post-op cases.
//  * LayerNorm: rows of n values, fp32 two-pass mean/var: 1e-5 relative to |gamma|·|x-mean|/std.
// Random data: std::mt19937 seeded per test; the seed is printed on failure (SCOPED_TRACE).
#pragma once
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstring>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "executor/operator.hpp"
#include "executor/ops/dense_common.hpp"

namespace dense_ops_test {

using ne::DType;
using ne::Shape;

inline int64_t numel(const Shape& s) {
  int64_t n = 1;
  for (auto d : s) n *= d;
  return n;
}

struct Arg {
  Shape shape;
  std::vector<float> v;
  bool is_const = false;
};

inline std::vector<float> rnd(int64_t n, uint32_t seed, float lo = -1.f, float hi = 1.f) {
  std::mt19937 g(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = d(g);
  return v;
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

// Runs the op like the executor: init (weights only), reshape, allocate, forward.
struct Runner {
  std::unique_ptr<ne::Operator> op;
  std::vector<ne::Tensor> in;
  ne::Tensor out;
  std::vector<float> out_buf;

  explicit Runner(const ne::OpInfo& i) : op(ne::create_op(i)) { EXPECT_TRUE(op) << i.type << " not registered"; }

  void init(const std::vector<Arg*>& args) {
    in.assign(args.size(), ne::Tensor());
    std::vector<ne::Tensor*> p;
    for (size_t k = 0; k < args.size(); ++k) {
      in[k].name = "in" + std::to_string(k);
      in[k].dtype = DType::fp32;
      in[k].is_const = args[k]->is_const;
      if (args[k]->is_const) in[k].shape = args[k]->shape, in[k].data = args[k]->v.data();
      p.push_back(&in[k]);
    }
    op->init(p);
  }
  // reshape + forward; `inplace_with` >= 0: dst shares that input's buffer.
  std::vector<float> run(const std::vector<Arg*>& args, int inplace_with = -1) {
    std::vector<ne::Tensor*> p;
    for (size_t k = 0; k < args.size(); ++k) {
      in[k].shape = args[k]->shape;
      in[k].data = args[k]->v.data();
      p.push_back(&in[k]);
    }
    out = ne::Tensor();
    out.name = "out";
    std::vector<ne::Tensor*> o{&out};
    op->reshape(p, o);
    EXPECT_EQ(out.dtype, DType::fp32);
    if (inplace_with >= 0) {
      EXPECT_EQ(numel(out.shape), numel(args[inplace_with]->shape));
      out.data = args[inplace_with]->v.data();
    } else {
      out_buf.assign(size_t(numel(out.shape)) + 16, NAN);
      out.data = out_buf.data();
    }
    op->forward(p, o);
    if (inplace_with < 0) {
      for (int k = 0; k < 16; ++k) EXPECT_TRUE(std::isnan(out_buf[numel(out.shape) + k])) << "wrote past dst";
    }
    const float* d = static_cast<const float*>(out.data);
    return std::vector<float>(d, d + numel(out.shape));
  }
};

// ---- references (double) ----

inline double ref_post(const std::string& k, double x) {
  if (k == "relu") return x > 0 ? x : 0;
  // 1+erf(-t) = erfc(t): keeps the negative tail exact in the reference too.
  if (k == "gelu_erf") return 0.5 * x * std::erfc(-x / std::sqrt(2.0));
  if (k == "gelu_tanh") {
    const double y = std::sqrt(2 / M_PI) * (x + 0.044715 * x * x * x);
    return y >= 0 ? 0.5 * x * (1 + std::tanh(y)) : 0.5 * x * std::exp(2 * y) * 2 / (1 + std::exp(2 * y));
  }
  if (k == "tanh") return std::tanh(x);
  if (k == "sigmoid") return 1 / (1 + std::exp(-x));
  ADD_FAILURE() << "ref: unknown post " << k;
  return 0;
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

inline void expect_close(const std::vector<float>& got, const std::vector<double>& ref,
                  const std::vector<double>& tol, const std::string& what) {
  ASSERT_EQ(got.size(), ref.size()) << what;
  int bad = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    if (!(std::fabs(got[i] - ref[i]) <= tol[i])) {
      if (++bad <= 5)
        ADD_FAILURE() << what << ": [" << i << "] got " << got[i] << " ref " << ref[i] << " tol " << tol[i];
    }
  }
  EXPECT_EQ(bad, 0) << what << ": " << bad << " of " << got.size() << " out of tolerance";
}

const double kU = 1.0 / (1 << 24);

inline std::vector<int64_t> strides_of(const Shape& s) {
  std::vector<int64_t> st(s.size(), 1);
  for (int i = int(s.size()) - 2; i >= 0; --i) st[i] = st[i + 1] * s[i + 1];
  return st;
}

inline std::string join(const std::vector<int64_t>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + std::to_string(v[i]);
  return s;
}

// oneDNN 2.6's dnnl_sgemm is its JIT GEMM whenever the (ONEDNN_MAX_CPU_ISA-capped) ISA has
// SSE4.1, its reference GEMM only below (src/cpu/gemm/gemm.cpp, extended_sgemm). Asked of oneDNN.
inline bool onednn_sgemm_is_jit() {
  const unsigned isa = unsigned(dnnl_get_effective_cpu_isa());
  return (isa & unsigned(dnnl_cpu_isa_sse41)) == unsigned(dnnl_cpu_isa_sse41);
}

}  // namespace dense_ops_test
