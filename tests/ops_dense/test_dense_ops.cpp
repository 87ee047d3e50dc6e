// InnerProduct, Matmul, Softmax, LayerNorm, Gelu driven directly (create_op -> init -> reshape ->
// allocate -> forward), each against a naive double-precision reference written here (shares no
// code with executor/ops/dense_*).
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
#include "kernels/cpu_features.hpp"
#include <gtest/gtest.h>
#include <omp.h>

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
#include "executor/ops/quant_common.hpp"
#include "kernels/attention/attention.hpp"

namespace {

using ne::DType;
using ne::Shape;

int64_t numel(const Shape& s) {
  int64_t n = 1;
  for (auto d : s) n *= d;
  return n;
}

struct Arg {
  Shape shape;
  std::vector<float> v;
  bool is_const = false;
};

std::vector<float> rnd(int64_t n, uint32_t seed, float lo = -1.f, float hi = 1.f) {
  std::mt19937 g(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = d(g);
  return v;
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

double ref_post(const std::string& k, double x) {
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

void expect_close(const std::vector<float>& got, const std::vector<double>& ref,
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

// ================================ InnerProduct ================================

struct IpCase {
  int64_t M, K, N;
  bool bias;
  std::string post;
};

// dst = post(src·W + b) with `sum` adding residual in place in the list.
void ip_ref(const IpCase& c, const std::vector<float>& src, const std::vector<float>& w,
            const std::vector<float>& b, const std::vector<float>& res, std::vector<double>* ref,
            std::vector<double>* tol) {
  const auto posts = split(c.post);
  ref->assign(c.M * c.N, 0);
  tol->assign(c.M * c.N, 0);
  for (int64_t m = 0; m < c.M; ++m)
    for (int64_t n = 0; n < c.N; ++n) {
      double acc = 0, mag = 0;
      for (int64_t k = 0; k < c.K; ++k) {
        acc += double(src[m * c.K + k]) * w[k * c.N + n];
        mag += std::fabs(double(src[m * c.K + k]) * w[k * c.N + n]);
      }
      if (c.bias) acc += b[n], mag += std::fabs(b[n]);
      double t = 4 * std::sqrt(double(c.K) + 1) * kU * mag + 1e-7;
      for (auto& p : posts) {
        if (p == "sum") {
          acc += res[m * c.N + n];
          t += kU * std::fabs(acc) + kU * std::fabs(res[m * c.N + n]);
        } else {
          acc = ref_post(p, acc);
          t = t * 1.2 + 1e-6 * std::fabs(acc) + 1e-6;  // |f'| <= 1.13 for these functions
        }
      }
      (*ref)[m * c.N + n] = acc;
      (*tol)[m * c.N + n] = t;
    }
}

void run_ip_case(const IpCase& c, uint32_t seed, bool inplace = false) {
  SCOPED_TRACE("seed " + std::to_string(seed) + " M=" + std::to_string(c.M) + " K=" + std::to_string(c.K) +
               " N=" + std::to_string(c.N) + " post=" + c.post + (inplace ? " inplace" : ""));
  const bool sum = c.post.find("sum") != std::string::npos;
  Arg src{{c.M, c.K}, rnd(c.M * c.K, seed)};
  Arg w{{c.K, c.N}, rnd(c.K * c.N, seed + 1), true};
  Arg b{{c.N}, rnd(c.N, seed + 2), true};
  Arg res{{c.M, c.N}, rnd(c.M * c.N, seed + 3)};
  std::vector<Arg*> args{&src, &w};
  if (c.bias) args.push_back(&b);
  if (sum) args.push_back(&res);
  std::vector<std::pair<std::string, std::string>> attrs;
  if (!c.post.empty()) attrs.push_back({"append_op", c.post});
  Runner r(info("InnerProduct", int(args.size()), attrs));
  r.init(args);
  if (sum) {
    EXPECT_EQ(r.op->inplace_input(), int(args.size()) - 1);
  }
  std::vector<double> ref, tol;
  ip_ref(c, src.v, w.v, b.v, res.v, &ref, &tol);
  auto got = r.run(args, inplace ? int(args.size()) - 1 : -1);
  EXPECT_EQ(r.out.shape, (Shape{c.M, c.N}));
  expect_close(got, ref, tol, "InnerProduct");
  // Every post-op chain stays on an optimised oneDNN kernel, on every ISA tier (where oneDNN
  // fuses only a leading sum, the engine adds the residual in a binary pass: dense_inner_product.cpp).
  EXPECT_EQ(r.op->kernel().find("ref"), std::string::npos) << "oneDNN fell back to its reference: " << r.op->kernel();
}

TEST(InnerProduct, AwkwardShapesNoPost) {
  uint32_t seed = 100;
  for (int64_t M : {1, 3, 77, 231})
    for (auto kn : std::vector<std::pair<int64_t, int64_t>>{{13, 97}, {97, 13}, {64, 64}, {1, 5}})
      for (bool bias : {false, true}) run_ip_case({M, kn.first, kn.second, bias, ""}, seed++);
}

TEST(InnerProduct, EachPostOp) {
  uint32_t seed = 200;
  for (std::string p : {"relu", "gelu_erf", "gelu_tanh", "tanh", "sigmoid", "sum"})
    for (bool bias : {false, true}) run_ip_case({77, 97, 131, bias, p}, seed++);
}

TEST(InnerProduct, Combos) {
  uint32_t seed = 300;
  run_ip_case({77, 97, 131, true, "gelu_erf,sum"}, seed++);
  run_ip_case({77, 97, 131, true, "sum,relu"}, seed++);
  run_ip_case({3, 13, 97, false, "tanh,sum"}, seed++);
  run_ip_case({231, 64, 48, true, "relu,gelu_tanh"}, seed++);
}

TEST(InnerProduct, ResidualInPlace) {
  uint32_t seed = 400;
  run_ip_case({77, 97, 131, true, "sum"}, seed++, true);
  run_ip_case({128, 768, 768, true, "sum"}, seed++, true);
  run_ip_case({3, 13, 97, false, "gelu_erf,sum"}, seed++, true);
}

TEST(InnerProduct, BertShapes) {
  run_ip_case({128, 768, 768, true, ""}, 500);
  run_ip_case({77, 768, 3072, true, "gelu_erf"}, 501);
  run_ip_case({77, 3072, 768, true, "sum"}, 502);
}

// One op object, M changing between calls (cached primitives per M), leading dims flattened.
TEST(InnerProduct, VaryingMOnOneOp) {
  const int64_t K = 97, N = 131;
  const uint32_t seed = 600;
  SCOPED_TRACE("seed " + std::to_string(seed));
  Arg w{{K, N}, rnd(K * N, seed), true};
  Arg b{{N}, rnd(N, seed + 1), true};
  Arg dummy_src{{1, K}, {}};
  Arg dummy_res{{1, N}, {}};
  Runner r(info("InnerProduct", 4, {{"append_op", "gelu_erf,sum"}}));
  r.init({&dummy_src, &w, &b, &dummy_res});
  for (Shape lead : std::vector<Shape>{{3, 77}, {1}, {231}, {3, 77}, {2, 1, 5}, {1}}) {
    Shape ss = lead, ds = lead;
    ss.push_back(K), ds.push_back(N);
    const int64_t M = numel(lead);
    Arg src{ss, rnd(M * K, seed + 10 + M)};
    Arg res{ds, rnd(M * N, seed + 20 + M)};
    auto got = r.run({&src, &w, &b, &res});
    EXPECT_EQ(r.out.shape, ds);
    std::vector<double> ref, tol;
    ip_ref({M, K, N, true, "gelu_erf,sum"}, src.v, w.v, b.v, res.v, &ref, &tol);
    expect_close(got, ref, tol, "InnerProduct M=" + std::to_string(M));
  }
  EXPECT_NE(r.op->kernel().find("onednn:"), std::string::npos) << r.op->kernel();
  EXPECT_EQ(r.op->kernel().find("ref"), std::string::npos) << "oneDNN fell back to its reference: " << r.op->kernel();
}

// src of rank 1 ([K] -> [N]); reason() names the dense strategy (and why others declined).
TEST(InnerProduct, RankOneSrcAndReason) {
  const int64_t K = 97, N = 13;
  Arg src{{K}, rnd(K, 650)};
  Arg w{{K, N}, rnd(K * N, 651), true};
  Arg b{{N}, rnd(N, 652), true};
  Runner r(info("InnerProduct", 3, {{"append_op", "relu"}}));
  r.init({&src, &w, &b});
  auto got = r.run({&src, &w, &b});
  EXPECT_EQ(r.out.shape, (Shape{N}));
  std::vector<double> ref, tol;
  ip_ref({1, K, N, true, "relu"}, src.v, w.v, b.v, {}, &ref, &tol);
  expect_close(got, ref, tol, "InnerProduct rank-1 src");
  EXPECT_EQ(r.op->reason().rfind("dense", 0), 0u) << r.op->reason();
}

// A weight that is an activation (not a constant): no packing, still correct.
TEST(InnerProduct, NonConstWeight) {
  const int64_t M = 5, K = 13, N = 7;
  Arg src{{M, K}, rnd(M * K, 700)};
  Arg w{{K, N}, rnd(K * N, 701), false};
  Runner r(info("InnerProduct", 2, {}));
  r.init({&src, &w});
  auto got = r.run({&src, &w});
  std::vector<double> ref, tol;
  ip_ref({M, K, N, false, ""}, src.v, w.v, {}, {}, &ref, &tol);
  expect_close(got, ref, tol, "InnerProduct non-const weight");
}

TEST(InnerProduct, Errors) {
  Arg w{{13, 7}, rnd(13 * 7, 1), true};
  Arg src{{4, 12}, rnd(48, 2)};
  {
    Runner r(info("InnerProduct", 2, {}));
    r.init({&src, &w});
    try {
      r.run({&src, &w});
      FAIL() << "K mismatch not detected";
    } catch (const ne::Error& e) {
      const std::string m = e.what();
      EXPECT_NE(m.find("op_InnerProduct"), std::string::npos) << m;
      EXPECT_NE(m.find("13"), std::string::npos) << m;
    }
  }
  {  // unknown post-op, at construction
    EXPECT_THROW(ne::create_op(info("InnerProduct", 2, {{"append_op", "swish"}})), ne::Error);
  }
  {  // wrong input count: sum without residual (2 inputs)
    Runner r(info("InnerProduct", 2, {{"append_op", "sum"}}));
    EXPECT_THROW(r.init({&src, &w}), ne::Error);
  }
  {  // bias of the wrong size
    Arg b{{6}, rnd(6, 3), true};
    Runner r(info("InnerProduct", 3, {}));
    EXPECT_THROW(r.init({&src, &w, &b}), ne::Error);
  }
  {  // residual of the wrong shape
    Arg src2{{4, 13}, rnd(52, 4)};
    Arg res{{4, 6}, rnd(24, 5)};
    Runner r(info("InnerProduct", 3, {{"append_op", "sum"}}));
    r.init({&src2, &w, &res});
    EXPECT_THROW(r.run({&src2, &w, &res}), ne::Error);
  }
}

// ================================ Matmul ================================

Shape permute(const Shape& s, const std::vector<int64_t>& p) {
  Shape r;
  for (auto i : p) r.push_back(s[i]);
  return r;
}

std::vector<int64_t> strides_of(const Shape& s) {
  std::vector<int64_t> st(s.size(), 1);
  for (int i = int(s.size()) - 2; i >= 0; --i) st[i] = st[i + 1] * s[i + 1];
  return st;
}

// Naive: transpose (by index maths), numpy-matmul with broadcast and 1-D rules, scale, mask, dst perm.
double g_matmul_extra_rel = 0;  // added tolerance, relative to sum |a_k b_k| (bf16 products)

void matmul_ref(const Arg& A, const Arg& B, const Arg* mask, std::vector<int64_t> pa,
                std::vector<int64_t> pb, std::vector<int64_t> pd, double scale, Shape* out_shape,
                std::vector<double>* ref, std::vector<double>* tol) {
  if (pa.empty()) pa.resize(A.shape.size()), std::iota(pa.begin(), pa.end(), 0);
  if (pb.empty()) pb.resize(B.shape.size()), std::iota(pb.begin(), pb.end(), 0);
  Shape ad = permute(A.shape, pa), bd = permute(B.shape, pb);
  auto ast0 = strides_of(A.shape), bst0 = strides_of(B.shape);
  std::vector<int64_t> as, bs;
  for (auto i : pa) as.push_back(ast0[i]);
  for (auto i : pb) bs.push_back(bst0[i]);
  bool dm = ad.size() == 1, dn = bd.size() == 1;
  if (dm) ad.insert(ad.begin(), 1), as.insert(as.begin(), 0);
  if (dn) bd.push_back(1), bs.push_back(0);
  int64_t M = ad[ad.size() - 2], K = ad.back(), N = bd.back();
  int na = int(ad.size()) - 2, nb = int(bd.size()) - 2, nbat = std::max(na, nb);
  Shape bat(nbat);
  for (int i = 0; i < nbat; ++i) {
    int64_t x = i - (nbat - na) >= 0 ? ad[i - (nbat - na)] : 1;
    int64_t y = i - (nbat - nb) >= 0 ? bd[i - (nbat - nb)] : 1;
    bat[i] = std::max(x, y);
  }
  Shape cs = bat;
  if (!dm) cs.push_back(M);
  if (!dn) cs.push_back(N);
  const int rc = int(cs.size());
  if (pd.empty()) pd.resize(rc), std::iota(pd.begin(), pd.end(), 0);
  *out_shape = permute(cs, pd);
  const auto dst_st = strides_of(*out_shape);
  std::vector<int64_t> c_st(rc);
  for (int i = 0; i < rc; ++i) c_st[pd[i]] = dst_st[i];
  ref->assign(numel(cs), 0);
  tol->assign(numel(cs), 0);
  const int64_t nbatch = numel(bat);
  for (int64_t t = 0; t < nbatch; ++t) {
    std::vector<int64_t> bi(nbat);
    int64_t tt = t;
    for (int d = nbat - 1; d >= 0; --d) bi[d] = tt % bat[d], tt /= bat[d];
    int64_t oa = 0, ob = 0;
    for (int d = 0; d < nbat; ++d) {
      int ia = d - (nbat - na), ib = d - (nbat - nb);
      if (ia >= 0 && ad[ia] != 1) oa += bi[d] * as[ia];
      if (ib >= 0 && bd[ib] != 1) ob += bi[d] * bs[ib];
    }
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = 0; n < N; ++n) {
        double acc = 0, mag = 0;
        for (int64_t k = 0; k < K; ++k) {
          double p = double(A.v[oa + m * as[na] + k * as[na + 1]]) * B.v[ob + k * bs[nb] + n * bs[nb + 1]];
          acc += p, mag += std::fabs(p);
        }
        acc *= scale, mag *= std::fabs(scale);
        std::vector<int64_t> ci = bi;
        if (!dm) ci.push_back(m);
        if (!dn) ci.push_back(n);
        if (mask) {
          int64_t om = 0;
          const Shape& ms = mask->shape;
          auto mst = strides_of(ms);
          for (size_t i = 0; i < ms.size(); ++i) {
            int j = rc - int(ms.size()) + int(i);
            if (ms[i] != 1) om += ci[j] * mst[i];
          }
          acc += mask->v[om], mag += std::fabs(mask->v[om]);
        }
        int64_t oc = 0;
        for (int i = 0; i < rc; ++i) oc += ci[i] * c_st[i];
        (*ref)[oc] = acc;
        (*tol)[oc] = 4 * std::sqrt(double(K) + 2) * kU * mag + 1e-7 + g_matmul_extra_rel * mag;
      }
  }
}

std::string join(const std::vector<int64_t>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + std::to_string(v[i]);
  return s;
}

// oneDNN 2.6's dnnl_sgemm is its JIT GEMM whenever the (ONEDNN_MAX_CPU_ISA-capped) ISA has
// SSE4.1, its reference GEMM only below (src/cpu/gemm/gemm.cpp, extended_sgemm). Asked of oneDNN.
bool onednn_sgemm_is_jit() {
  const unsigned isa = unsigned(dnnl_get_effective_cpu_isa());
  return (isa & unsigned(dnnl_cpu_isa_sse41)) == unsigned(dnnl_cpu_isa_sse41);
}

// Views the small GEMM takes (A and C rows contiguous, B along n or k, ...) run, on this tier:
// the vdpbf16ps tiles when bf16 is asked and AVX512_BF16 is there, the fp32 AVX-512 tiles when
// AVX-512 is there (saying why bf16 was not honoured), else oneDNN's strided sgemm (the small
// GEMM is AVX-512 only), which must be its JIT GEMM and must say why the small GEMM declined.
void expect_small_gemm_views(const ne::Operator& op, bool bf16) {
  using ne::cpu::Isa;
  const std::string k = op.kernel(), why = op.reason();
  const std::string no_bf16 = "compute_dtype bf16 asked, but " + ne::cpu::why_not(Isa::avx512_core_bf16);
  if (bf16 && ne::cpu::mayiuse(Isa::avx512_core_bf16)) {
    EXPECT_EQ(k, "small_gemm_bf16:avx512_bf16") << why;
  } else if (ne::cpu::mayiuse(Isa::avx512_core)) {
    EXPECT_EQ(k, "small_gemm:avx512") << why;
    if (bf16) EXPECT_NE(why.find(no_bf16), std::string::npos) << why;
  } else {
    EXPECT_EQ(k, "sgemm_strided") << why;
    EXPECT_NE(why.find("small GEMM needs AVX-512 (" + ne::cpu::why_not(Isa::avx512_core) + ")"), std::string::npos) << why;
    if (bf16) EXPECT_NE(why.find(no_bf16), std::string::npos) << why;
    EXPECT_TRUE(onednn_sgemm_is_jit()) << "dnnl_sgemm would be oneDNN's reference GEMM (effective ISA "
                                       << std::hex << unsigned(dnnl_get_effective_cpu_isa()) << ")";
  }
}

// expect_kernel: a substring of kernel(), or "small_gemm" for "the views the small GEMM takes"
// (resolved per ISA tier by expect_small_gemm_views).
void run_matmul(const Shape& as, const Shape& bs, const Shape* ms, std::vector<int64_t> pa,
                std::vector<int64_t> pb, std::vector<int64_t> pd, float scale, uint32_t seed,
                const char* expect_kernel = nullptr, bool bf16 = false) {
  SCOPED_TRACE("seed " + std::to_string(seed) + " A" + ne::shape_str(as) + " B" + ne::shape_str(bs) +
               " perms " + join(pa) + "/" + join(pb) + "/" + join(pd));
  Arg A{as, rnd(numel(as), seed)}, B{bs, rnd(numel(bs), seed + 1)};
  Arg M;
  if (ms) M = Arg{*ms, rnd(numel(*ms), seed + 2, -3.f, 0.f)};
  std::vector<std::pair<std::string, std::string>> attrs;
  if (!pa.empty()) attrs.push_back({"src0_perm", join(pa)});
  if (!pb.empty()) attrs.push_back({"src1_perm", join(pb)});
  if (!pd.empty()) attrs.push_back({"dst_perm", join(pd)});
  if (scale != 1.f) attrs.push_back({"output_scale", std::to_string(scale)});
  if (ms) attrs.push_back({"append_op", "binary_add"});
  if (bf16) attrs.push_back({"compute_dtype", "bf16"});
  // bf16 products: each factor rounded to 8 significant bits (relative 2^-8 each).
  g_matmul_extra_rel = bf16 ? std::ldexp(1.0, -7) : 0.0;
  std::vector<Arg*> args{&A, &B};
  if (ms) args.push_back(&M);
  Runner r(info("Matmul", int(args.size()), attrs));
  r.init(args);
  auto got = r.run(args);
  Shape os;
  std::vector<double> ref, tol;
  // std::to_string(scale) rounds: use the value the op parsed.
  const double sc = std::stod(std::to_string(scale));
  matmul_ref(A, B, ms ? &M : nullptr, pa, pb, pd, sc, &os, &ref, &tol);
  EXPECT_EQ(r.out.shape, os);
  expect_close(got, ref, tol, "Matmul");
  if (std::getenv("NE_TEST_VERBOSE"))
    std::printf("  Matmul A%s B%s -> %s (%s)\n", ne::shape_str(as).c_str(), ne::shape_str(bs).c_str(),
                r.op->kernel().c_str(), r.op->reason().c_str());
  if (expect_kernel && std::string(expect_kernel) == "small_gemm") {
    expect_small_gemm_views(*r.op, bf16);
  } else if (expect_kernel) {
    EXPECT_NE(r.op->kernel().find(expect_kernel), std::string::npos)
        << "fast path did not run: " << r.op->kernel() << " — " << r.op->reason();
  }
  // Second call with the same shapes takes the cached plan.
  auto again = r.run(args);
  EXPECT_EQ(again, got);
}

TEST(Matmul, Plain2DAndBatched) {
  run_matmul({3, 13}, {13, 97}, nullptr, {}, {}, {}, 1.f, 1);
  run_matmul({77, 64}, {64, 77}, nullptr, {}, {}, {}, 1.f, 2);
  run_matmul({3, 77, 13}, {3, 13, 5}, nullptr, {}, {}, {}, 0.5f, 3);
  run_matmul({1, 1}, {1, 1}, nullptr, {}, {}, {}, 1.f, 4);
}

TEST(Matmul, BroadcastBatch) {
  run_matmul({3, 1, 7, 13}, {4, 13, 5}, nullptr, {}, {}, {}, 1.f, 10);
  run_matmul({7, 13}, {2, 3, 13, 5}, nullptr, {}, {}, {}, 1.f, 11);
  run_matmul({2, 3, 7, 13}, {13, 5}, nullptr, {}, {}, {}, 2.f, 12);
}

TEST(Matmul, OneDimRules) {
  run_matmul({13}, {13, 5}, nullptr, {}, {}, {}, 1.f, 20);
  run_matmul({3, 7, 13}, {13}, nullptr, {}, {}, {}, 1.f, 21);
  run_matmul({13}, {13}, nullptr, {}, {}, {}, 1.f, 22);
  run_matmul({13}, {4, 13, 5}, nullptr, {}, {}, {}, 1.f, 23);
}

// BERT attention: Q·Kᵀ with scale and mask [B,1,1,S], then P·V with dst perm.
TEST(Matmul, AttentionShapes) {
  for (auto dims : std::vector<std::array<int64_t, 4>>{{1, 128, 12, 64}, {3, 77, 16, 64}, {2, 13, 3, 5}}) {
    const int64_t B = dims[0], S = dims[1], H = dims[2], D = dims[3];
    Shape mask{B, 1, 1, S};
    const float sc = 1.f / std::sqrt(float(D));
    run_matmul({B, S, H, D}, {B, S, H, D}, &mask, {0, 2, 1, 3}, {0, 2, 3, 1}, {}, sc, 30, "small_gemm");
    run_matmul({B, H, S, S}, {B, S, H, D}, nullptr, {}, {0, 2, 1, 3}, {0, 2, 1, 3}, 1.f, 31, "small_gemm");
  }
}

// compute_dtype bf16 (attention of int8 / bf16 models): the vdpbf16ps small GEMM, same shapes
// and tails, within bf16 rounding of the double reference. Without AVX512_BF16 the op runs fp32
// products (well inside that tolerance) and says so: expect_small_gemm_views.
TEST(Matmul, ComputeBf16) {
  for (auto dims : std::vector<std::array<int64_t, 4>>{{2, 128, 12, 64}, {3, 77, 16, 64}, {2, 13, 3, 5}}) {
    const int64_t B = dims[0], S = dims[1], H = dims[2], D = dims[3];
    Shape mask{B, 1, 1, S};
    run_matmul({B, S, H, D}, {B, S, H, D}, &mask, {0, 2, 1, 3}, {0, 2, 3, 1}, {}, 0.125f, 70, "small_gemm", true);
    run_matmul({B, H, S, S}, {B, S, H, D}, nullptr, {}, {0, 2, 1, 3}, {0, 2, 1, 3}, 1.f, 71, "small_gemm", true);
  }
  int seed = 72;
  for (int64_t M : {1, 7, 13})
    for (int64_t N : {1, 17, 64, 130})
      for (int64_t K : {1, 3, 64, 129}) {
        Shape m1{2, 1, N};
        run_matmul({2, M, K}, {2, K, N}, &m1, {}, {}, {}, 0.5f, seed++, "small_gemm", true);
        run_matmul({2, M, K}, {2, N, K}, nullptr, {}, {0, 2, 1}, {}, 1.f, seed++, "small_gemm", true);
      }
  g_matmul_extra_rel = 0;
}

// The small AVX-512 GEMM on every M / N tail (6-row blocks, 64/48/32/16-column tiles, masked
// last vector), K from 1, Bᵀ panels with odd sizes, masks contiguous or broadcast along n.
TEST(Matmul, SmallGemmTails) {
  int seed = 60;
  for (int64_t M : {1, 5, 6, 7, 13})
    for (int64_t N : {1, 15, 16, 17, 63, 64, 65, 130})
      for (int64_t K : {1, 3, 64}) {
        Shape m1{2, 1, N}, m2{2, M, 1};
        run_matmul({2, M, K}, {2, K, N}, &m1, {}, {}, {}, 0.5f, seed++, "small_gemm");
        run_matmul({2, M, K}, {2, N, K}, &m2, {}, {0, 2, 1}, {}, 1.f, seed++, "small_gemm");
      }
}

// The same products on the oneDNN primitive (strided descriptors, scale, binary_add mask).
TEST(Matmul, AttentionShapesOnednnPath) {
  setenv("NE_DENSE_MATMUL", "onednn", 1);
  for (auto dims : std::vector<std::array<int64_t, 4>>{{1, 128, 12, 64}, {3, 77, 16, 64}, {2, 13, 3, 5}}) {
    const int64_t B = dims[0], S = dims[1], H = dims[2], D = dims[3];
    Shape mask{B, 1, 1, S};
    run_matmul({B, S, H, D}, {B, S, H, D}, &mask, {0, 2, 1, 3}, {0, 2, 3, 1}, {}, 0.125f, 32, "onednn");
    run_matmul({B, H, S, S}, {B, S, H, D}, nullptr, {}, {0, 2, 1, 3}, {0, 2, 1, 3}, 1.f, 33, "onednn");
  }
  // oneDNN 2.6 brgemm takes a full or [B,1,1,S]-like mask; others (e.g. [1,1,S,S]) fall back to
  // strided sgemm because it offers only its reference: correct either way.
  for (Shape m : std::vector<Shape>{{3, 4, 7, 7}, {1, 1, 7, 7}, {7}})
    run_matmul({3, 4, 7, 5}, {3, 4, 5, 7}, &m, {}, {}, {}, 0.25f, 34, m.size() == 4 && m[0] == 3 ? "onednn" : nullptr);
  Shape m{3, 1, 1, 7};
  run_matmul({3, 1, 7, 13}, {4, 13, 7}, &m, {}, {}, {}, 1.f, 38, "onednn");
  unsetenv("NE_DENSE_MATMUL");
}

// The same attention products on the strided-sgemm path (path 2), forced.
TEST(Matmul, AttentionShapesSgemmPath) {
  setenv("NE_DENSE_MATMUL", "sgemm", 1);
  for (auto dims : std::vector<std::array<int64_t, 4>>{{2, 128, 12, 64}, {3, 77, 16, 64}}) {
    const int64_t B = dims[0], S = dims[1], H = dims[2], D = dims[3];
    Shape mask{B, 1, 1, S};
    run_matmul({B, S, H, D}, {B, S, H, D}, &mask, {0, 2, 1, 3}, {0, 2, 3, 1}, {}, 0.125f, 35, "sgemm");
    run_matmul({B, H, S, S}, {B, S, H, D}, nullptr, {}, {0, 2, 1, 3}, {0, 2, 1, 3}, 1.f, 36, "sgemm");
  }
  Shape m{3, 1, 7, 1};
  run_matmul({3, 4, 7, 5}, {3, 4, 5, 7}, &m, {}, {}, {}, 0.25f, 37, "sgemm");
  unsetenv("NE_DENSE_MATMUL");
}

TEST(Matmul, MaskBroadcasts) {
  const int64_t B = 3, H = 4, S = 7;
  for (Shape m : std::vector<Shape>{{B, 1, 1, S}, {B, H, S, S}, {1, 1, S, S}, {S}, {1}, {B, 1, S, 1},
                                    {H, 1, S}})
    run_matmul({B, H, S, 5}, {B, H, 5, S}, &m, {}, {}, {}, 0.25f, 40);
}

TEST(Matmul, PermsGeneral) {
  // No unit stride in either matrix dim of A' (copied), transposed C, odd perms.
  run_matmul({5, 3, 7}, {5, 3, 4}, nullptr, {1, 2, 0}, {1, 0, 2}, {}, 1.f, 50);
  run_matmul({3, 7, 5}, {3, 5, 4}, nullptr, {}, {}, {0, 2, 1}, 1.f, 51);
  run_matmul({2, 3, 7, 5}, {2, 3, 5, 4}, nullptr, {}, {}, {3, 1, 0, 2}, 1.f, 52);
  run_matmul({7, 2, 5}, {4, 5}, nullptr, {1, 0, 2}, {1, 0}, {2, 0, 1}, 1.5f, 53);
  Shape m{1, 7, 1};
  run_matmul({7, 2, 5}, {4, 5}, &m, {1, 0, 2}, {1, 0}, {2, 1, 0}, 1.f, 54);
  // A' with no unit stride in its matrix dims (packed copy); C with none either (temp tile).
  run_matmul({7, 5, 3}, {3, 5, 4}, nullptr, {2, 0, 1}, {}, {}, 1.f, 55);
  Shape m2{3, 7, 1};
  run_matmul({7, 5, 3}, {5, 3, 4}, &m2, {2, 0, 1}, {1, 0, 2}, {1, 2, 0}, 0.5f, 56);
  for (const char* path : {"sgemm", "onednn"}) {
    setenv("NE_DENSE_MATMUL", path, 1);
    run_matmul({7, 5, 3}, {5, 3, 4}, &m2, {2, 0, 1}, {1, 0, 2}, {1, 2, 0}, 0.5f, 57);
  }
  unsetenv("NE_DENSE_MATMUL");
}

TEST(Matmul, Errors) {
  Arg A{{3, 7}, rnd(21, 1)}, B{{6, 4}, rnd(24, 2)};
  Runner r(info("Matmul", 2, {}));
  r.init({&A, &B});
  EXPECT_THROW(r.run({&A, &B}), ne::Error);
  Arg B2{{7, 4}, rnd(28, 3)};
  Runner r2(info("Matmul", 2, {{"src0_perm", "0,0"}}));
  r2.init({&A, &B2});
  EXPECT_THROW(r2.run({&A, &B2}), ne::Error);
  Arg Mk{{2, 4}, rnd(8, 4)};
  Runner r3(info("Matmul", 3, {{"append_op", "binary_add"}}));
  r3.init({&A, &B2, &Mk});
  EXPECT_THROW(r3.run({&A, &B2, &Mk}), ne::Error);
}

// ================================ Softmax / LayerNorm / Gelu ================================

// Every test below runs with the AVX-512 kernels (when the CPU has them) and with the portable
// ones forced.
class RowOps : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override { ne::dense::force_portable(GetParam()); }
  void TearDown() override { ne::dense::force_portable(false); }
};
INSTANTIATE_TEST_SUITE_P(Isa, RowOps, ::testing::Values(false, true),
                         [](const auto& i) { return i.param ? "portable" : "native"; });

void run_softmax(const Shape& s, int64_t axis, uint32_t seed, float lo = -8.f, float hi = 8.f) {
  SCOPED_TRACE("seed " + std::to_string(seed) + " shape " + ne::shape_str(s) + " axis " + std::to_string(axis));
  Arg x{s, rnd(numel(s), seed, lo, hi)};
  Runner r(info("Softmax", 1, {{"axis", std::to_string(axis)}}));
  r.init({&x});
  auto got = r.run({&x});
  const int a = int(axis < 0 ? axis + int(s.size()) : axis);
  int64_t outer = 1, len = s[a], inner = 1;
  for (int i = 0; i < a; ++i) outer *= s[i];
  for (size_t i = a + 1; i < s.size(); ++i) inner *= s[i];
  std::vector<double> ref(numel(s)), tol(numel(s));
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i) {
      double mx = -1e300, sum = 0;
      for (int64_t l = 0; l < len; ++l) mx = std::max(mx, double(x.v[(o * len + l) * inner + i]));
      for (int64_t l = 0; l < len; ++l) sum += std::exp(double(x.v[(o * len + l) * inner + i]) - mx);
      for (int64_t l = 0; l < len; ++l) {
        const int64_t k = (o * len + l) * inner + i;
        ref[k] = std::exp(double(x.v[k]) - mx) / sum;
        // exp argument x-max is rounded (|x-max| * u), exp itself a few ulp, sum of len terms.
        tol[k] = ref[k] * (1e-6 + 2 * kU * (std::fabs(x.v[k]) + std::fabs(mx)) + std::sqrt(double(len)) * 2 * kU) + 1e-9;
      }
    }
  expect_close(got, ref, tol, "Softmax");
  // In place.
  Arg y = x;
  auto got2 = r.run({&y}, 0);
  expect_close(got2, ref, tol, "Softmax in place");
}

TEST_P(RowOps, Softmax) {
  run_softmax({3, 77}, -1, 1);
  run_softmax({2, 12, 77, 77}, -1, 2);
  run_softmax({5, 1}, -1, 3);
  run_softmax({4, 16}, -1, 4);
  run_softmax({7, 33}, 1, 5, -100.f, 80.f);
  run_softmax({3, 5, 7}, 1, 6);   // strided axis
  run_softmax({3, 5, 7}, 0, 7);
  run_softmax({2, 128}, -1, 8, -200.f, 0.f);  // exp underflow in the tail
}

TEST_P(RowOps, SoftmaxMinusInfMask) {
  Arg x{{2, 19}, rnd(38, 9)};
  for (int i = 0; i < 19; i += 2) x.v[i] = -INFINITY;  // masked positions
  Runner r(info("Softmax", 1, {}));
  r.init({&x});
  auto got = r.run({&x});
  double sum = 0;
  for (int i = 0; i < 19; ++i) {
    if (i % 2 == 0) {
      EXPECT_EQ(got[i], 0.f) << i;
    }
    sum += got[i];
  }
  EXPECT_NEAR(sum, 1.0, 1e-6);
}

void run_layernorm(const Shape& s, int64_t axis, const Shape& gs, bool beta, uint32_t seed) {
  SCOPED_TRACE("seed " + std::to_string(seed) + " shape " + ne::shape_str(s) + " axis " + std::to_string(axis));
  const float eps = 1e-5f;
  Arg x{s, rnd(numel(s), seed, -2.f, 3.f)};
  Arg g{gs, rnd(numel(gs), seed + 1, 0.5f, 1.5f), true};
  Arg b{gs, rnd(numel(gs), seed + 2), true};
  std::vector<Arg*> args{&x, &g};
  if (beta) args.push_back(&b);
  Runner r(info("LayerNorm", int(args.size()), {{"axis", std::to_string(axis)}, {"epsilon", "1e-05"}}));
  r.init(args);
  auto got = r.run(args);
  const int a = int(axis < 0 ? axis + int(s.size()) : axis);
  const Shape tail(s.begin() + a, s.end());
  const int64_t n = numel(tail), rows = numel(s) / n;
  std::vector<double> ref(numel(s)), tol(numel(s));
  auto gst = strides_of(gs);
  auto bidx = [&](int64_t i) {  // index into gamma/beta broadcast over tail
    auto ts = strides_of(tail);
    int64_t off = 0;
    for (size_t d = 0; d < tail.size(); ++d) {
      int64_t id = (i / ts[d]) % tail[d];
      int j = int(d) - int(tail.size() - gs.size());
      if (j >= 0 && gs[j] != 1) off += id * gst[j];
    }
    return off;
  };
  for (int64_t r0 = 0; r0 < rows; ++r0) {
    double mean = 0, var = 0;
    for (int64_t i = 0; i < n; ++i) mean += x.v[r0 * n + i];
    mean /= n;
    for (int64_t i = 0; i < n; ++i) var += (x.v[r0 * n + i] - mean) * (x.v[r0 * n + i] - mean);
    var /= n;
    const double rstd = 1 / std::sqrt(var + eps);
    for (int64_t i = 0; i < n; ++i) {
      const int64_t k = r0 * n + i, gi = bidx(i);
      const double z = (x.v[k] - mean) * rstd;
      ref[k] = z * g.v[gi] + (beta ? b.v[gi] : 0);
      tol[k] = 1e-5 * (std::fabs(g.v[gi]) * (std::fabs(z) + 1) + 1);
    }
  }
  expect_close(got, ref, tol, "LayerNorm");
  Arg y = x;
  std::vector<Arg*> args2 = args;
  args2[0] = &y;
  auto got2 = r.run(args2, 0);
  expect_close(got2, ref, tol, "LayerNorm in place");
}

TEST_P(RowOps, LayerNorm) {
  run_layernorm({3, 77, 768}, -1, {768}, true, 1);
  run_layernorm({5, 13}, -1, {13}, false, 2);
  run_layernorm({7, 1}, -1, {1}, true, 3);
  run_layernorm({2, 3, 5, 7}, 2, {5, 7}, true, 4);   // general axis
  run_layernorm({2, 3, 5, 7}, -2, {7}, true, 5);     // gamma broadcast over the tail
  run_layernorm({4, 33}, 0, {4, 33}, true, 6);
}

TEST(LayerNorm, Errors) {
  Arg x{{3, 8}, rnd(24, 1)}, g{{7}, rnd(7, 2), true};
  Runner r(info("LayerNorm", 2, {}));
  r.init({&x, &g});
  EXPECT_THROW(r.run({&x, &g}), ne::Error);
}

void run_gelu(const std::string& alg, const std::vector<float>& xs, uint32_t seed) {
  SCOPED_TRACE(alg + " seed " + std::to_string(seed));
  Arg x{{int64_t(xs.size())}, xs};
  Runner r(info("Gelu", 1, {{"algorithm", alg}}));
  r.init({&x});
  auto got = r.run({&x});
  std::vector<double> ref(xs.size()), tol(xs.size());
  for (size_t i = 0; i < xs.size(); ++i) {
    ref[i] = ref_post(alg, xs[i]);
    // Relative 1e-6 of the result (the erf/exp error, a few ulp); the argument x/sqrt(2) is
    // rounded (0.5 ulp) which moves the result by |x·g'(x)|·u, at most ~|x|·u·(1+x^2); tiny abs.
    tol[i] = 1e-6 * std::fabs(ref[i]) + 2 * kU * std::fabs(xs[i]) * (1 + xs[i] * xs[i]) *
                 std::exp(-0.5 * xs[i] * xs[i]) + 1e-30;
  }
  expect_close(got, ref, tol, "Gelu " + alg);
}

TEST_P(RowOps, GeluErfAccurate) {
  std::vector<float> xs;
  for (float v = -12.f; v <= 12.f; v += 0.00123f) xs.push_back(v);  // every erf region, both signs
  for (float v : {0.f, -0.f, 1e-30f, -1e-30f, 1e-8f, 0.84375f * 1.41421356f, 1.25f * 1.41421356f,
                  2.857142925f * 1.41421356f, 6.f * 1.41421356f, 30.f, -30.f})
    xs.push_back(v);
  run_gelu("gelu_erf", xs, 0);
  auto r = rnd(1003, 77, -6.f, 6.f);
  run_gelu("gelu_erf", r, 77);
}

TEST_P(RowOps, GeluTanh) {
  std::vector<float> xs;
  for (float v = -12.f; v <= 12.f; v += 0.0071f) xs.push_back(v);
  run_gelu("gelu_tanh", xs, 0);
}

TEST(Gelu, UnknownAlgorithm) {
  EXPECT_THROW(ne::create_op(info("Gelu", 1, {{"algorithm", "swish"}})), ne::Error);
}

// The fast path must really run on a CPU that has AVX-512 (no silent fallback).
// The row kernels take AVX-512 exactly when ne::cpu allows avx512_core (CPUID + XCR0, under
// NE_MAX_ISA), the portable ones otherwise: each tier checks its own side.
TEST(DenseOps, FastPathSelected) {
  const bool avx512 = ne::cpu::mayiuse(ne::cpu::Isa::avx512_core);
  EXPECT_EQ(ne::dense::use_avx512(), avx512) << ne::cpu::why_not(ne::cpu::Isa::avx512_core);
  const std::string isa = avx512 ? "avx512" : "portable";
  EXPECT_EQ(ne::create_op(info("Softmax", 1, {}))->kernel(), "softmax:" + isa);
  EXPECT_EQ(ne::create_op(info("Gelu", 1, {}))->kernel(), "gelu_erf:" + isa);
}

// The operators run the entries of the kernels/ lists (kernels/eltwise, kernels/layernorm,
// kernels/quant): the __avx512 ones exactly when use_avx512(), the __generic ones otherwise and
// whenever a test forces the portable path.
TEST(DenseOps, RowKernelEntriesFollowTheTier) {
  const std::string want = ne::dense::use_avx512() ? "__avx512" : "__generic";
  auto ends = [](const std::string& s, const std::string& t) {
    return s.size() >= t.size() && s.compare(s.size() - t.size(), t.size(), t) == 0;
  };
  for (bool forced : {false, true}) {
    ne::dense::force_portable(forced);
    ne::quant::force_portable(forced);
    const std::string w = forced ? "__generic" : want;
    EXPECT_PRED2(ends, ne::dense::pick(ne::kernels::eltwise::softmax_kernels()).name, w);
    EXPECT_PRED2(ends, ne::dense::pick(ne::kernels::eltwise::gelu_erf_kernels()).name, w);
    EXPECT_PRED2(ends, ne::dense::pick(ne::kernels::layernorm::rows_kernels()).name, w);
    EXPECT_PRED2(ends, ne::dense::pick(ne::kernels::layernorm::cols_kernels()).name, w);
    EXPECT_PRED2(ends, ne::quant::minmax_kernel().name, w);
    EXPECT_PRED2(ends, ne::quant::quantize_kernel().name, w);
    EXPECT_PRED2(ends, ne::quant::to_bf16_kernel().name, w);
  }
  ne::dense::force_portable(false);
  ne::quant::force_portable(false);
}

}  // namespace

// ---------------------------------------------------------------- Attention (fused)
namespace {

// x [shape] permuted: y = transpose(x, perm) (numpy semantics), in double.
std::vector<double> permute(const std::vector<float>& x, const Shape& s, const std::vector<int64_t>& perm, Shape* ys) {
  const int r = int(s.size());
  ys->clear();
  for (int i = 0; i < r; ++i) ys->push_back(s[size_t(perm[size_t(i)])]);
  std::vector<int64_t> xst(r, 1);
  for (int i = r - 2; i >= 0; --i) xst[i] = xst[i + 1] * s[i + 1];
  std::vector<double> y(x.size());
  std::vector<int64_t> idx(r, 0);
  for (size_t o = 0; o < y.size(); ++o) {
    int64_t off = 0;
    for (int i = 0; i < r; ++i) off += idx[i] * xst[size_t(perm[size_t(i)])];
    y[o] = x[size_t(off)];
    for (int i = r - 1; i >= 0; --i) {
      if (++idx[i] < (*ys)[i]) break;
      idx[i] = 0;
    }
  }
  return y;
}

std::string fused_bf16_kernel();

// Q, K, V: rank 4; Q' [B,H,Sq,D], K' [B,H,D,Sk], V' [B,H,Sk,Dv] after perms; mask [B,1,1,Sk].
void run_attention(const Shape& qs, const Shape& ks, const Shape& vs, std::vector<int64_t> pq, std::vector<int64_t> pk,
                   std::vector<int64_t> pv, std::vector<int64_t> pd, bool with_mask, uint32_t seed, const char* expect,
                   bool bf16 = false) {
  SCOPED_TRACE("Attention seed " + std::to_string(seed) + " Q" + ne::shape_str(qs) + " perms " + join(pq) + "/" +
               join(pk) + "/" + join(pv) + "/" + join(pd));
  Arg Q{qs, rnd(numel(qs), seed, -2.f, 2.f)}, K{ks, rnd(numel(ks), seed + 1, -2.f, 2.f)}, V{vs, rnd(numel(vs), seed + 2)};
  Shape q2, k2, v2;
  auto q = permute(Q.v, qs, pq, &q2), k = permute(K.v, ks, pk, &k2), v = permute(V.v, vs, pv, &v2);
  const int64_t B = q2[0], H = q2[1], Sq = q2[2], D = q2[3], Sk = k2[3], Dv = v2[3];
  Arg M;
  if (with_mask) M = Arg{{B, 1, 1, Sk}, rnd(B * Sk, seed + 3, -3.f, 0.f)};
  const double scale = 0.125;
  std::vector<double> ctx(size_t(B * H * Sq * Dv)), ctol(ctx.size());
  const double rel = bf16 ? std::ldexp(1.0, -7) : 1e-5;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < Sq; ++i) {
        std::vector<double> s(static_cast<size_t>(Sk)), sm(static_cast<size_t>(Sk));
        double mx = -1e300, smag = 0;
        for (int64_t j = 0; j < Sk; ++j) {
          double acc = 0, mag = 0;
          for (int64_t d = 0; d < D; ++d) {
            const double p = q[size_t(((b * H + h) * Sq + i) * D + d)] * k[size_t(((b * H + h) * D + d) * Sk + j)];
            acc += p, mag += std::fabs(p);
          }
          s[size_t(j)] = scale * acc + (with_mask ? M.v[size_t(b * Sk + j)] : 0.0);
          smag = std::max(smag, scale * mag);
          mx = std::max(mx, s[size_t(j)]);
        }
        double sum = 0;
        for (int64_t j = 0; j < Sk; ++j) sum += (sm[size_t(j)] = std::exp(s[size_t(j)] - mx));
        for (int64_t e = 0; e < Dv; ++e) {
          double acc = 0, mag = 0;
          for (int64_t j = 0; j < Sk; ++j) {
            const double p = sm[size_t(j)] / sum * v[size_t(((b * H + h) * Sk + j) * Dv + e)];
            acc += p, mag += std::fabs(p);
          }
          const size_t o = size_t(((b * H + h) * Sq + i) * Dv + e);
          ctx[o] = acc;
          // score errors (relative rel on sum |q k|) move the probabilities by ~ that much
          ctol[o] = (2 * rel * (smag + 1) + rel + 1e-6) * std::max(mag, 1e-3) + 1e-6;
        }
      }
  // Expected output: ctx [B,H,Sq,Dv] transposed by dst_perm.
  const Shape cs{B, H, Sq, Dv};
  const std::vector<int64_t> pdi = pd.empty() ? std::vector<int64_t>{0, 1, 2, 3} : pd;
  Shape os;
  std::vector<double> ref(ctx.size()), tol(ctx.size());
  {
    for (int i = 0; i < 4; ++i) os.push_back(cs[size_t(pdi[size_t(i)])]);
    std::vector<int64_t> st(4, 1), idx(4, 0);
    for (int i = 2; i >= 0; --i) st[size_t(i)] = st[size_t(i) + 1] * cs[size_t(i) + 1];
    for (size_t o = 0; o < ref.size(); ++o) {
      int64_t off = 0;
      for (int i = 0; i < 4; ++i) off += idx[size_t(i)] * st[size_t(pdi[size_t(i)])];
      ref[o] = ctx[size_t(off)], tol[o] = ctol[size_t(off)];
      for (int i = 3; i >= 0; --i) {
        if (++idx[size_t(i)] < os[size_t(i)]) break;
        idx[size_t(i)] = 0;
      }
    }
  }
  std::vector<std::pair<std::string, std::string>> attrs;
  if (!pq.empty()) attrs.push_back({"qk_src0_perm", join(pq)});
  if (!pk.empty()) attrs.push_back({"qk_src1_perm", join(pk)});
  attrs.push_back({"output_scale", "0.125"});
  if (!pv.empty()) attrs.push_back({"pv_src1_perm", join(pv)});
  if (!pd.empty()) attrs.push_back({"dst_perm", join(pd)});
  if (bf16) attrs.push_back({"compute_dtype", "bf16"});
  std::vector<Arg*> args{&Q, &K, &V};
  if (with_mask) args.push_back(&M);
  Runner r(info("Attention", int(args.size()), attrs));
  r.init(args);
  auto got = r.run(args);
  EXPECT_EQ(r.out.shape, os);
  expect_close(got, ref, tol, "Attention");
  const std::string kern = r.op->kernel(), why = r.op->reason();
  if (std::string(expect) == "attention_fused") {
    // The fused path's tiles are the AVX-512 small GEMM's; bf16 products where AVX512_BF16 is.
    using ne::cpu::Isa;
    if (!ne::cpu::mayiuse(Isa::avx512_core)) {
      EXPECT_EQ(kern, "attention_unfused") << why;
      EXPECT_NE(why.find("no AVX-512 (" + ne::cpu::why_not(Isa::avx512_core) + ")"), std::string::npos) << why;
      EXPECT_TRUE(onednn_sgemm_is_jit()) << "the unfused products would run oneDNN's reference GEMM";
    } else if (bf16 && ne::cpu::mayiuse(Isa::avx512_core_bf16)) {
      // The attention family's first runnable bf16 entry (AMX where usable), else the op's own.
      const std::string fam = fused_bf16_kernel();
      EXPECT_EQ(kern, fam == "attention_fused_bf16" ? "attention_fused_bf16:avx512_bf16" : fam) << why;
    } else {
      EXPECT_EQ(kern, "attention_fused:avx512") << why;
      if (bf16) {
        EXPECT_NE(why.find("compute_dtype bf16 asked, but " + ne::cpu::why_not(Isa::avx512_core_bf16)), std::string::npos)
            << why;
      }
    }
  } else {
    EXPECT_NE(kern.find(expect), std::string::npos) << kern << " — " << why;
  }
  EXPECT_EQ(r.run(args), got);  // cached plan
}

// The kernel the op must report for compute_dtype bf16 on this CPU: the attention family's first
// runnable entry (AMX where usable), else the op's own AVX-512 bf16 path. Taken from the family's
// list, so a silent fallback fails the test.
std::string fused_bf16_kernel() {
  ne::attention::Args a;
  a.batch = 1, a.Sq = a.Sk = a.D = a.Dv = 16, a.compute = ne::attention::Compute::bf16;
  const auto c = ne::attention::choose(a, /*runnable_only=*/true);
  return c.kernel ? c.kernel->name : "attention_fused_bf16";
}

}  // namespace

// BERT layout ([B,S,H,D] views), the fused path: fp32 and bf16, with and without the mask, odd
// sequence lengths (tails of the 6-row and 64-column tiles). Which kernel each ISA tier runs:
// run_attention's "attention_fused" expectation.
TEST(Attention, FusedBertLayout) {
  // {1, 700, 1, 4}: several query row blocks (the score tile is capped at 256 KiB) and a tail.
  for (auto dims : std::vector<std::array<int64_t, 4>>{{2, 128, 12, 64}, {3, 77, 4, 64}, {2, 13, 3, 5}, {1, 700, 1, 4}}) {
    const int64_t B = dims[0], S = dims[1], H = dims[2], D = dims[3];
    const Shape s{B, S, H, D};
    for (bool mask : {true, false}) {
      run_attention(s, s, s, {0, 2, 1, 3}, {0, 2, 3, 1}, {0, 2, 1, 3}, {0, 2, 1, 3}, mask, 80, "attention_fused");
      run_attention(s, s, s, {0, 2, 1, 3}, {0, 2, 3, 1}, {0, 2, 1, 3}, {0, 2, 1, 3}, mask, 81, "attention_fused", true);
    }
  }
}

// Feature-major layout ([H,D,B,S] views, as --transpose writes them: Q' and the output have
// their D dim strided): fused with Q' transposed per tile and P·V' computed as its transpose.
TEST(Attention, FusedFeatureMajorLayout) {
  for (auto dims : std::vector<std::array<int64_t, 4>>{{2, 128, 12, 64}, {2, 19, 3, 8}, {1, 7, 2, 5}, {1, 700, 1, 4}}) {
    const int64_t B = dims[0], S = dims[1], H = dims[2], D = dims[3];
    const Shape fm{H, D, B, S};
    run_attention(fm, fm, fm, {2, 0, 3, 1}, {2, 0, 1, 3}, {2, 0, 3, 1}, {1, 3, 0, 2}, true, 84, "attention_fused");
    run_attention(fm, fm, fm, {2, 0, 3, 1}, {2, 0, 1, 3}, {2, 0, 3, 1}, {1, 3, 0, 2}, false, 85, "attention_fused", true);
  }
}

// Layouts the fused path does not take (no unit stride in Q' at all), and the forced-unfused
// path: the scores go through a temporary, same numbers.
TEST(Attention, UnfusedLayouts) {
  const int64_t B = 2, S = 19, H = 3, D = 8;
  // Q [H,S,D,B] -> Q' [B,H,S,D] with neither S nor D unit-stride.
  run_attention(Shape{H, S, D, B}, Shape{B, S, H, D}, Shape{B, S, H, D}, {3, 0, 1, 2}, {0, 2, 3, 1}, {0, 2, 1, 3},
                {0, 2, 1, 3}, true, 82, "attention_unfused");
  setenv("NE_DENSE_MATMUL", "sgemm", 1);
  const Shape s{B, S, H, D};
  run_attention(s, s, s, {0, 2, 1, 3}, {0, 2, 3, 1}, {0, 2, 1, 3}, {0, 2, 1, 3}, true, 83, "attention_unfused");
  unsetenv("NE_DENSE_MATMUL");
}

// On a CPU with usable AMX, compute_dtype bf16 must run the AMX kernel of the attention family
// (BERT and feature-major layouts); NE_ATTENTION_AMX=0 brings back the AVX-512 bf16 path.
TEST(Attention, AmxKernelRunsWhereUsable) {
  if (!ne::cpu::mayiuse(ne::cpu::Isa::avx512_core_amx))
    GTEST_SKIP() << "AMX not usable: " << ne::cpu::why_not(ne::cpu::Isa::avx512_core_amx);
  const Shape s{2, 77, 3, 64}, fm{3, 64, 2, 77};
  run_attention(s, s, s, {0, 2, 1, 3}, {0, 2, 3, 1}, {0, 2, 1, 3}, {0, 2, 1, 3}, true, 86, "attn_bf16_f32acc_16x16__amx", true);
  run_attention(fm, fm, fm, {2, 0, 3, 1}, {2, 0, 1, 3}, {2, 0, 3, 1}, {1, 3, 0, 2}, true, 87, "attn_bf16_f32acc_16x16__amx", true);
  // Q' with no unit stride (the unfused layout of fp32): the AMX kernel takes any strides.
  run_attention(Shape{3, 19, 8, 2}, Shape{2, 19, 3, 8}, Shape{2, 19, 3, 8}, {3, 0, 1, 2}, {0, 2, 3, 1}, {0, 2, 1, 3},
                {0, 2, 1, 3}, true, 88, "attn_bf16_f32acc_16x16__amx", true);
  setenv("NE_ATTENTION_AMX", "0", 1);
  run_attention(s, s, s, {0, 2, 1, 3}, {0, 2, 3, 1}, {0, 2, 1, 3}, {0, 2, 1, 3}, true, 89, "attention_fused_bf16:avx512_bf16", true);
  unsetenv("NE_ATTENTION_AMX");
}

TEST(Attention, BadAttrs) {
  EXPECT_THROW(ne::create_op(info("Attention", 3, {{"compute_dtype", "int4"}})), ne::Error);
  Arg Q{{1, 4, 2, 3}, rnd(24, 1)}, K{{1, 4, 2, 5}, rnd(40, 2)};
  Runner r(info("Attention", 3, {{"qk_src0_perm", "0,2,1,3"}, {"qk_src1_perm", "0,2,3,1"}}));
  std::vector<Arg*> args{&Q, &K, &K};
  EXPECT_THROW({ r.init(args); r.run(args); }, ne::Error);  // D 3 vs 5
}
