// Feature-major (transposed) mode operators (docs/OPS.md "Feature-major mode"), run through the
// Executor on one-op models:
//  * InnerProduct `layout: feature_major` (src [K, B, S], dst [N, B, S], residual in the same
//    layout) for fp32 / s8 / bf16 weights, sparse (1x4 90%: block-sparse kernels natively) and
//    dense (oneDNN: fp32 / bf16 read the src transposed and transpose the result back, s8 through
//    transposes), with bias, gelu and the residual `sum`:
//    fp32 against a double-precision reference; s8 / bf16 against the same op token-major on the
//    transposed input (the token-major variants are tested against references elsewhere).
//  * LayerNorm `transpose_mode: 1,0` (normalise dim 0, kernel `layernorm_ba`) against a
//    double-precision reference; attribute errors.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "common/dtype.hpp"
#include "executor/executor.hpp"
#include "executor/ops/dense_common.hpp"
#include "kernels/cpu_features.hpp"
#include "kernels/sparse_gemm/sparse_gemm.hpp"
#include "tests/core/test_util.hpp"

namespace {

using ne::DType;
using ne::HostTensor;
using ne::Shape;

std::vector<float> rnd(int64_t n, uint32_t seed, float lo = -1.f, float hi = 1.f) {
  std::mt19937 g(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = d(g);
  return v;
}

// W [K, N] with 1x4 blocks zeroed at `sparsity` (0 = dense).
std::vector<float> weight(int K, int N, double sparsity, uint32_t seed) {
  std::vector<float> w = rnd(int64_t(K) * N, seed, -0.5f, 0.5f);
  std::mt19937 g(seed + 7);
  std::uniform_real_distribution<double> u(0, 1);
  if (sparsity > 0)
    for (int k = 0; k < K; ++k)
      for (int j = 0; j < N; j += 4)
        if (u(g) < sparsity)
          for (int i = j; i < std::min(N, j + 4); ++i) w[size_t(k) * N + i] = 0.f;
  return w;
}

// [a, b*c] <-> [b*c, a] for the token-major comparison.
std::vector<float> transpose(const std::vector<float>& x, int64_t rows, int64_t cols) {
  std::vector<float> y(x.size());
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) y[size_t(c * rows + r)] = x[size_t(r * cols + c)];
  return y;
}

struct IpCase {
  std::string dtype;  // fp32 | s8 | bf16
  double sparsity;    // 0.9: sparse kernel, 0: oneDNN
  bool bias, gelu, sum;
};

std::string case_name(const IpCase& c) {
  return c.dtype + (c.sparsity > 0 ? "_sparse" : "_dense") + (c.bias ? "_bias" : "") + (c.gelu ? "_gelu" : "") +
         (c.sum ? "_sum" : "");
}

struct IpRun {
  std::vector<float> y;
  std::string kernel;
  Shape shape;
};

// One InnerProduct: x [K, B, S] (feature-major) or [B, S, K] (token-major).
IpRun run_ip(const IpCase& c, bool fm, int K, int N, int B, int S, const std::vector<float>& x,
             const std::vector<float>& res) {
  const std::vector<float> w = weight(K, N, c.sparsity, 11);
  ne::Model m;
  m.tensors["x"].name = "x";
  m.tensors["x"].dtype = DType::fp32;
  std::vector<std::string> ins = {"x", "w"};
  std::vector<std::pair<std::string, std::string>> attrs;
  if (c.dtype == "fp32") {
    m.add_weight<float>("w", DType::fp32, {K, N}, w);
  } else if (c.dtype == "bf16") {
    std::vector<uint16_t> b(w.size());
    for (size_t i = 0; i < w.size(); ++i) b[i] = ne::fp32_to_bf16(w[i]);
    m.add_weight<uint16_t>("w", DType::bf16, {K, N}, b);
  } else {
    std::vector<int8_t> q(w.size());
    for (size_t i = 0; i < w.size(); ++i) q[i] = int8_t(std::lround(w[i] * 254));
    m.add_weight<int8_t>("w", DType::s8, {K, N}, q);
    m.add_weight<float>("ws", DType::fp32, {N}, std::vector<float>(size_t(N), 1.f / 254));
    ins.push_back("ws");
    attrs = {{"src_scale", "0.01"}, {"src_zero_point", "100"}};
  }
  if (c.bias) {
    m.add_weight<float>("b", DType::fp32, {N}, rnd(N, 5));
    ins.push_back("b");
  }
  std::string post = c.gelu ? "gelu_erf" : "";
  if (c.sum) {
    m.tensors["r"].name = "r";
    m.tensors["r"].dtype = DType::fp32;
    ins.push_back("r");
    post += std::string(post.empty() ? "" : ",") + "sum";
  }
  if (!post.empty()) attrs.push_back({"append_op", post});
  if (fm) attrs.push_back({"layout", "feature_major"});
  std::vector<std::string> inputs = {"x"};
  if (c.sum) inputs.push_back("r");
  std::vector<std::string> input_outs = inputs;
  for (auto& n : ins)
    if (n != "x" && n != "r") input_outs.push_back(n);
  m.ops = {{"in", "Input", {}, input_outs, {}}, {"fc", "InnerProduct", ins, {"y"}, attrs}, {"out", "Output", {"y"}, {}, {}}};
  ne::ExecOptions o;
  o.profile = true;
  // Sparse cases mean the sparse path: forced (threshold 0), so the measured sparse-vs-dense
  // choice (which on an AMX CPU may well pick oneDNN) cannot turn them into dense tests.
  if (c.sparsity > 0) o.op.sparse_threshold = 0.f;
  ne::Executor ex(std::move(m), o);
  std::map<std::string, HostTensor> feed;
  feed["x"] = HostTensor::make(DType::fp32, fm ? Shape{K, B, S} : Shape{B, S, K}, x);
  if (c.sum) feed["r"] = HostTensor::make(DType::fp32, fm ? Shape{N, B, S} : Shape{B, S, N}, res);
  auto out = ex.run(feed);
  IpRun r;
  r.shape = out[0].shape;
  r.y.assign(out[0].ptr<float>(), out[0].ptr<float>() + out[0].numel());
  for (auto& p : ex.profile())
    if (p.type == "InnerProduct") r.kernel = p.kernel;
  return r;
}

// ---- which kernel each ISA tier runs, restated from capabilities (not asked of the op) ----

// The first entry of kernel_list() (best first, generic last) whose weight dtype and packed
// blocking fit the pattern, whose ISA ne::cpu allows (under NE_MAX_ISA), and whose preferred M
// range holds M = 128 (the M the dispatcher names the kernel for).
const ne::sparse::KernelInfo* listed_kernel(ne::sparse::DType wdt, const std::string& pat) {
  const int nb = pat == "4x1" ? 1 : 4;
  const int kq = pat == "4x1" ? 4 : (wdt == ne::sparse::DType::s8 ? 4 : wdt == ne::sparse::DType::bf16 ? 2 : 1);
  for (const auto& k : ne::sparse::kernel_list()) {
    if (k.wdtype != wdt) continue;
    if (k.nb && (k.nb != nb || k.kq != kq)) continue;
    if (!ne::cpu::why_not(k.isa).empty()) continue;
    if (k.max_m && 128 > k.max_m) continue;
    return &k;
  }
  return nullptr;
}

// oneDNN 2.6 (under ONEDNN_MAX_CPU_ISA) has no bf16 matmul below AVX512_CORE. Asked of oneDNN.
bool onednn_has_bf16_matmul() {
  try {
    using md = dnnl::memory::desc;
    const auto bf = dnnl::memory::data_type::bf16, f = dnnl::memory::data_type::f32;
    const auto t = dnnl::memory::format_tag::ab;
    dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(md({4, 8}, bf, t), md({8, 4}, bf, t), md({4, 4}, f, t)),
                                    ne::dense::engine());
    return true;
  } catch (const dnnl::error&) {
    return false;
  }
}

// The kernels an InnerProduct of this case may run here (the weight's packed pattern, 1x4 or
// 4x1, is the dispatcher's choice), by the engine's rules:
//  * a sparse weight goes to its listed block-sparse kernel, unless that is only the scalar
//    reference (no AVX-512): then it is treated as dense (executor/sparse_dispatch.cpp);
//  * int8 without AVX512_VNNI runs every weight, dense too, on the exact int32 kernels (oneDNN's
//    u8*s8 there sums pairs in int16 and can saturate), and bf16 where oneDNN has no bf16 matmul
//    runs every weight on the exact kernels (executor/ops/quant_inner_product.cpp choose());
//  * everything else on oneDNN.
std::vector<std::string> expected_kernels(const IpCase& c) {
  const ne::sparse::DType wdt = c.dtype == "fp32"   ? ne::sparse::DType::f32
                                : c.dtype == "bf16" ? ne::sparse::DType::bf16
                                                    : ne::sparse::DType::s8;
  std::vector<std::string> listed;
  bool simd = false;
  for (const char* pat : {"1x4", "4x1"})
    if (const ne::sparse::KernelInfo* k = listed_kernel(wdt, pat)) {
      listed.push_back(k->name);
      simd = simd || k->isa != ne::cpu::Isa::generic;
    }
  const bool exact_only = (wdt == ne::sparse::DType::s8 && !ne::cpu::mayiuse(ne::cpu::Isa::avx512_core_vnni)) ||
                          (wdt == ne::sparse::DType::bf16 && !onednn_has_bf16_matmul());
  if ((c.sparsity > 0 && simd) || exact_only) return listed;
  return {"onednn"};
}

class FeatureMajorIp : public ::testing::TestWithParam<IpCase> {};

TEST_P(FeatureMajorIp, MatchesReference) {
  const IpCase c = GetParam();
  const int K = 64, N = 96, B = 3, S = 13, M = B * S;  // M not a multiple of 16: tails
  const std::vector<float> xt = rnd(int64_t(K) * M, 1, -2.f, 2.f);  // [K, M]
  const std::vector<float> rt = rnd(int64_t(N) * M, 2);              // [N, M]
  IpRun fm = run_ip(c, true, K, N, B, S, xt, rt);
  EXPECT_EQ(fm.shape, (Shape{N, B, S}));
  const std::vector<std::string> want = expected_kernels(c);
  bool found = false;
  std::string wants;
  for (const auto& w : want) found = found || fm.kernel.rfind(w, 0) == 0, wants += " " + w;
  EXPECT_TRUE(found) << "kernel " << fm.kernel << ", want one of" << wants << " (isa "
                     << ne::cpu::isa_name(ne::cpu::max_isa()) << ")";
  // oneDNN's reference implementation (what a transposed dst or a per-row bias gets in 2.6) is
  // orders of magnitude slower: the feature-major dense path must stay on its fast kernels.
  EXPECT_EQ(fm.kernel.find(":ref"), std::string::npos) << fm.kernel;
  std::vector<double> ref(size_t(N) * M);
  if (c.dtype == "fp32") {
    const std::vector<float> w = weight(K, N, c.sparsity, 11);
    const std::vector<float> b = rnd(N, 5);
    for (int n = 0; n < N; ++n)
      for (int m = 0; m < M; ++m) {
        double a = c.bias ? b[size_t(n)] : 0.0;
        for (int k = 0; k < K; ++k) a += double(w[size_t(k) * N + n]) * xt[size_t(k) * M + m];
        if (c.gelu) a = 0.5 * a * std::erfc(-a / std::sqrt(2.0));
        if (c.sum) a += rt[size_t(n) * M + m];
        ref[size_t(n) * M + m] = a;
      }
  } else {
    IpRun tm = run_ip(c, false, K, N, B, S, transpose(xt, K, M), transpose(rt, N, M));
    const std::vector<float> back = transpose(tm.y, M, N);
    for (size_t i = 0; i < ref.size(); ++i) ref[i] = back[i];
  }
  double err = 0;
  for (size_t i = 0; i < ref.size(); ++i) err = ne_test::max_keep_nan(err, std::fabs(ref[i] - fm.y[i]));
  EXPECT_LE(err, c.dtype == "fp32" ? 2e-5 : 1e-4) << case_name(c) << " kernel " << fm.kernel;
}

std::vector<IpCase> ip_cases() {
  std::vector<IpCase> v;
  for (std::string dt : {"fp32", "s8", "bf16"})
    for (double sp : {0.9, 0.0}) {
      v.push_back({dt, sp, false, false, false});
      v.push_back({dt, sp, true, true, false});
      v.push_back({dt, sp, true, false, true});
      v.push_back({dt, sp, true, true, true});
    }
  return v;
}
INSTANTIATE_TEST_SUITE_P(Layouts, FeatureMajorIp, ::testing::ValuesIn(ip_cases()),
                         [](const ::testing::TestParamInfo<IpCase>& i) { return case_name(i.param); });

ne::Model one_op(const std::string& type, std::vector<std::pair<std::string, std::string>> attrs, int64_t n,
                 std::vector<std::string> extra_weights = {"g", "b"}) {
  ne::Model m;
  m.tensors["x"].name = "x";
  m.tensors["x"].dtype = DType::fp32;
  std::vector<std::string> outs = {"x"}, ins = {"x"};
  for (auto& w : extra_weights) {
    m.add_weight<float>(w, DType::fp32, {n}, rnd(n, w == "g" ? 3 : 4, 0.5f, 1.5f));
    outs.push_back(w);
    ins.push_back(w);
  }
  m.ops = {{"in", "Input", {}, outs, {}}, {"op", type, ins, {"y"}, attrs}, {"out", "Output", {"y"}, {}, {}}};
  return m;
}

TEST(FeatureMajorLayerNorm, ColumnsMatchReference) {
  for (bool portable : {false, true})
  for (auto dims : {Shape{64, 3, 13}, Shape{768, 2, 40}, Shape{5, 1}, Shape{32, 17}, Shape{16, 1, 200},
                    Shape{768, 1, 128}, Shape{768, 1, 300}, Shape{100, 3, 50}}) {
    SCOPED_TRACE(portable ? "portable" : "avx512");
    ne::dense::force_portable(portable);
    const int64_t n = dims[0], cols = ne::shape_numel(dims) / n;
    ne::ExecOptions o;
    o.profile = true;
    ne::Executor ex(one_op("LayerNorm", {{"epsilon", "1e-12"}, {"transpose_mode", "1,0"}}, n), o);
    const std::vector<float> x = rnd(n * cols, 9, -3.f, 3.f);
    auto out = ex.run({{"x", HostTensor::make(DType::fp32, dims, x)}});
    ASSERT_EQ(out[0].shape, dims);
    EXPECT_EQ(ex.profile()[0].kernel, "layernorm_ba");
    const std::vector<float> g = rnd(n, 3, 0.5f, 1.5f), b = rnd(n, 4, 0.5f, 1.5f);
    double err = 0;
    for (int64_t c = 0; c < cols; ++c) {
      double mean = 0, var = 0;
      for (int64_t i = 0; i < n; ++i) mean += x[size_t(i * cols + c)];
      mean /= double(n);
      for (int64_t i = 0; i < n; ++i) var += (x[size_t(i * cols + c)] - mean) * (x[size_t(i * cols + c)] - mean);
      var /= double(n);
      for (int64_t i = 0; i < n; ++i) {
        const double r = (x[size_t(i * cols + c)] - mean) / std::sqrt(var + 1e-12) * g[size_t(i)] + b[size_t(i)];
        err = ne_test::max_keep_nan(err, std::fabs(r - out[0].ptr<float>()[i * cols + c]));
      }
    }
    EXPECT_LE(err, 1e-5) << ne::shape_str(dims);
    ne::dense::force_portable(false);
  }
}

// The error a one-input model gives when run on an all-ones "x" of shape s ("" if none).
static std::string err_of(ne::Model m, const Shape& s) {
  try {
    ne::Executor ex(std::move(m));
    ex.run({{"x", HostTensor::make(DType::fp32, s, std::vector<float>(size_t(ne::shape_numel(s)), 1.f))}});
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

TEST(FeatureMajorLayerNorm, WithoutBetaAndErrors) {
  {
    ne::Executor ex(one_op("LayerNorm", {{"transpose_mode", "1,0"}}, 8, {"g"}));
    auto out = ex.run({{"x", HostTensor::make(DType::fp32, {8, 4}, rnd(32, 1))}});
    EXPECT_EQ(out[0].shape, (Shape{8, 4}));
  }
  EXPECT_NE(err_of(one_op("LayerNorm", {{"transpose_mode", "0,2,1"}}, 8), {8, 4}).find("attribute transpose_mode='0,2,1' is not supported"),
            std::string::npos);
  EXPECT_NE(err_of(one_op("LayerNorm", {{"transpose_mode", "1,0"}, {"axis", "-1"}}, 8), {8, 4}).find("axis"),
            std::string::npos);
  // gamma of 8 against a first dim of 4.
  EXPECT_NE(err_of(one_op("LayerNorm", {{"transpose_mode", "1,0"}}, 8), {4, 8}).find("must have 4 elements"),
            std::string::npos);
}

TEST(FeatureMajorIpErrors, BadLayoutAndWrongFirstDim) {
  auto build = [](const std::string& layout) {
    ne::Model m;
    m.tensors["x"].name = "x";
    m.tensors["x"].dtype = DType::fp32;
    m.add_weight<float>("w", DType::fp32, {8, 4}, rnd(32, 1));
    m.ops = {{"in", "Input", {}, {"x", "w"}, {}},
             {"fc", "InnerProduct", {"x", "w"}, {"y"}, {{"layout", layout}}},
             {"out", "Output", {"y"}, {}, {}}};
    return m;
  };
  EXPECT_NE(err_of(build("nchw"), {8, 3}).find("attribute layout='nchw' is not supported"), std::string::npos);
  const std::string e = err_of(build("feature_major"), {3, 8});
  EXPECT_NE(e.find("first dim"), std::string::npos) << e;
  EXPECT_EQ(err_of(build("feature_major"), {8, 3}), "");
}

}  // namespace
