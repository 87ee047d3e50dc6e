// The Neural Engine dialect lowering (compile/ne_dialect*): recognition, the weight layouts and
// quantization encodings it decodes (checked against float64 loops), and its refusals.
// End-to-end runs of whole NE-dialect IRs (as the Neural Engine's compiler writes them) are in
// tests/python/test_ne_dialect.py.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

#include "common/error.hpp"
#include "compile/ne_dialect.hpp"
#include "executor/executor.hpp"

namespace {

std::vector<float> randv(size_t n, uint32_t seed, float lo = -1, float hi = 1) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = u(rng);
  return v;
}

// Input x [-1, K] (fp32) -> one InnerProduct -> y; the caller adds weights and the op.
ne::Model one_ip(int64_t K) {
  ne::Model m;
  m.source = "/hand/ne/conf.yaml";
  ne::TensorInfo x;
  x.name = "x:0";
  x.shape = {-1, K};
  x.has_shape = true;
  m.tensors[x.name] = x;
  ne::OpInfo in;
  in.name = "input_data";
  in.type = "Input";
  in.outputs = {"x:0"};
  m.ops.push_back(in);
  return m;
}

void finish(ne::Model& m, const std::vector<std::string>& ip_inputs,
            std::vector<std::pair<std::string, std::string>> attrs) {
  ne::OpInfo ip;
  ip.name = "fc";
  ip.type = "InnerProduct";
  ip.inputs = ip_inputs;
  ip.outputs = {"y:0"};
  ip.attrs = std::move(attrs);
  m.ops.push_back(ip);
  ne::OpInfo out;
  out.name = "output_data";
  out.type = "Output";
  out.inputs = {"y:0"};
  m.ops.push_back(out);
}

std::vector<float> run(ne::Model m, const std::vector<float>& x, int64_t M, int64_t K) {
  ne::NeLowered l = ne::lower_ne_dialect(m);
  ne::CompileOptions o;
  o.precision = l.precision;
  ne::Model c = ne::compile_model(std::move(l.model), o, m.source, l.ranges.empty() ? nullptr : &l.ranges);
  ne::Executor ex(std::move(c));
  auto out = ex.run({{"x:0", ne::HostTensor::make(ne::DType::fp32, {M, K}, x)}});
  const float* p = out.at(0).ptr<float>();
  std::vector<float> r(p, p + out.at(0).numel());
  for (float v : r) EXPECT_TRUE(std::isfinite(v));
  return r;
}

// y = x · W + b in float64, W[K, N].
std::vector<double> ref_ip(const std::vector<float>& x, const std::vector<double>& w, const std::vector<double>& b,
                           int64_t M, int64_t K, int64_t N) {
  std::vector<double> y(static_cast<size_t>(M * N));
  for (int64_t i = 0; i < M; ++i)
    for (int64_t n = 0; n < N; ++n) {
      double s = b.empty() ? 0 : b[size_t(n)];
      for (int64_t k = 0; k < K; ++k) s += double(x[size_t(i * K + k)]) * w[size_t(k * N + n)];
      y[size_t(i * N + n)] = s;
    }
  return y;
}

const ne::TensorInfo* find_fp32_weight(const ne::Model& m, const std::string& prefix) {
  for (auto& kv : m.tensors)
    if (kv.second.is_weight && kv.first.rfind(prefix, 0) == 0 && kv.second.dtype == ne::DType::fp32) return &kv.second;
  return nullptr;
}

TEST(NeDialect, RecognisedByItsVocabularyNotOurs) {
  ne::Model m = one_ip(4);
  m.add_weight("w:0", ne::DType::fp32, {4, 4}, randv(16, 1));
  finish(m, {"x:0", "w:0"}, {{"src1_perm", "1,0"}});
  std::string why;
  EXPECT_TRUE(ne::is_ne_dialect(m, &why));
  EXPECT_NE(why.find("src1_perm"), std::string::npos) << why;
  m.ops[1].attrs.clear();
  EXPECT_FALSE(ne::is_ne_dialect(m, &why));  // a plain InnerProduct is ours
  m.ops[1].type = "PaddingSequence";
  EXPECT_TRUE(ne::is_ne_dialect(m, &why));
  EXPECT_NE(why.find("PaddingSequence"), std::string::npos) << why;
}

// A square [N, K] weight (src1_perm 0,1, the Gemm pooler's form) and the same weight stored
// [K, N] (src1_perm 1,0): both against the float64 loop. Read the wrong way round, the square one
// would run with no error and a wrong answer.
TEST(NeDialect, InnerProductWeightLayoutsHonoured) {
  const int64_t M = 3, K = 8, N = 8;
  std::vector<float> w = randv(size_t(K * N), 2), b = randv(size_t(N), 3), x = randv(size_t(M * K), 4);
  std::vector<double> wkn(w.begin(), w.end()), bd(b.begin(), b.end());
  auto want = ref_ip(x, wkn, bd, M, K, N);
  for (int nk = 0; nk < 2; ++nk) {
    SCOPED_TRACE(nk ? "stored [N, K], src1_perm 0,1" : "stored [K, N], src1_perm 1,0");
    std::vector<float> stored(w.size());
    for (int64_t k = 0; k < K; ++k)
      for (int64_t n = 0; n < N; ++n) stored[size_t(nk ? n * K + k : k * N + n)] = w[size_t(k * N + n)];
    ne::Model m = one_ip(K);
    m.add_weight("w:0", ne::DType::fp32, {nk ? N : K, nk ? K : N}, stored);
    m.add_weight("b:0", ne::DType::fp32, {N}, b);
    finish(m, {"x:0", "w:0", "b:0"}, {{"src1_perm", nk ? "0,1" : "1,0"}});
    auto got = run(m, x, M, K);
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-5) << i;
  }
}

// Dynamic int8 (NE autocast dynamic_int8): s8 weight [K, N] with `<w>_min` / `<w>_scale`
// per output channel, src quantized at run time (Quantize per_token): the lowered weight is
// exactly q · scale, and the output within int8 error of the float64 loop.
TEST(NeDialect, DynamicInt8WeightDecoded) {
  const int64_t M = 4, K = 16, N = 8;
  std::vector<float> w = randv(size_t(K * N), 5), b = randv(size_t(N), 6), x = randv(size_t(M * K), 7);
  std::vector<float> scale(static_cast<size_t>(N)), mn(static_cast<size_t>(N));
  std::vector<int8_t> q(w.size());
  for (int64_t n = 0; n < N; ++n) {
    float a = 0, lo = 0;
    for (int64_t k = 0; k < K; ++k) a = std::max(a, std::fabs(w[size_t(k * N + n)])), lo = std::min(lo, w[size_t(k * N + n)]);
    scale[size_t(n)] = a / 127.f;
    mn[size_t(n)] = lo;
    for (int64_t k = 0; k < K; ++k) q[size_t(k * N + n)] = int8_t(std::lround(w[size_t(k * N + n)] / scale[size_t(n)]));
  }
  ne::Model m = one_ip(K);
  m.add_weight("w:0_quant", ne::DType::s8, {K, N}, q);
  m.add_weight("w:0_min", ne::DType::fp32, {N}, mn);
  m.add_weight("w:0_scale", ne::DType::fp32, {N}, scale);
  m.add_weight("b:0", ne::DType::fp32, {N}, b);
  ne::OpInfo qz;
  qz.name = "x:0_quant0";
  qz.type = "Quantize";
  qz.inputs = {"x:0"};
  qz.outputs = {"x:0_quant", "x:0_min", "x:0_scale"};
  qz.attrs = {{"output_dtype", "s8"}, {"per_token", "true"}};
  m.ops.push_back(qz);
  finish(m, {"x:0_quant", "w:0_quant", "b:0", "x:0_min", "x:0_scale", "w:0_min", "w:0_scale"}, {{"src1_perm", "1,0"}});
  ne::NeLowered l = ne::lower_ne_dialect(m);
  EXPECT_EQ(l.precision, "int8_dynamic");
  const ne::TensorInfo* wf = find_fp32_weight(l.model, "w:0_quant/fp32");
  ASSERT_TRUE(wf);
  ASSERT_EQ(wf->shape, (ne::Shape{K, N}));
  std::vector<double> deq(w.size());
  for (size_t i = 0; i < w.size(); ++i) {
    deq[i] = double(float(q[i]) * scale[i % size_t(N)]);
    EXPECT_EQ(wf->as<float>()[i], float(deq[i])) << i;
  }
  auto want = ref_ip(x, deq, std::vector<double>(b.begin(), b.end()), M, K, N);
  auto got = run(m, x, M, K);
  double num = 0, da = 0, db = 0;
  for (size_t i = 0; i < got.size(); ++i) num += got[i] * want[i], da += got[i] * got[i], db += want[i] * want[i];
  EXPECT_GT(num / std::sqrt(da * db), 0.9995);
}

// transpose_mode_int8 (the Neural Engine's sparse example): the s8 weight [N, K] is src0, the u8
// activation src1 with constant min / max; weight min / max are -128·s and 127·s (from a QDQ
// model); the bias has -s_x·zp_x·s_w·Σ_k q folded in. The lowering must give back W = s·q and the
// original bias exactly (to fp32 rounding).
TEST(NeDialect, TransposedStaticInt8Decoded) {
  const int64_t K = 12, N = 8;
  std::vector<float> s = randv(size_t(N), 8, 0.01f, 0.02f), b = randv(size_t(N), 9);
  std::vector<int8_t> q(static_cast<size_t>(N * K));
  std::mt19937 rng(10);
  for (auto& v : q) v = int8_t(int(rng() % 255) - 127);
  const float sx = 0.02f, zp = 100.f;  // x in [-2, 3.1]
  const float xmin = -zp * sx, xmax = (255.f - zp) * sx;
  std::vector<float> wmin(static_cast<size_t>(N)), wmax(static_cast<size_t>(N)), folded(b);
  for (int64_t n = 0; n < N; ++n) {
    wmin[size_t(n)] = -128.f * s[size_t(n)], wmax[size_t(n)] = 127.f * s[size_t(n)];
    int64_t sum = 0;
    for (int64_t k = 0; k < K; ++k) sum += q[size_t(n * K + k)];
    folded[size_t(n)] = b[size_t(n)] - sx * zp * s[size_t(n)] * float(sum);
  }
  ne::Model m = one_ip(K);
  m.add_weight("w_quantized:0", ne::DType::s8, {N, K}, q);
  m.add_weight("b:0", ne::DType::fp32, {N}, folded);
  m.add_weight("w_quantized:0_min", ne::DType::fp32, {N}, wmin);
  m.add_weight("w_quantized:0_max", ne::DType::fp32, {N}, wmax);
  m.add_weight("x:0_min", ne::DType::fp32, {1}, std::vector<float>{xmin});
  m.add_weight("x:0_max", ne::DType::fp32, {1}, std::vector<float>{xmax});
  ne::OpInfo re;
  re.name = "x_Reorder_Post_0";
  re.type = "Reorder";
  re.inputs = {"x:0"};
  re.outputs = {"x:0_reorder"};
  re.attrs = {{"src_perm", "0,1"}, {"dst_perm", "1,0"}};
  m.ops.push_back(re);
  ne::OpInfo qz;
  qz.name = "fc_quant_0";
  qz.type = "Quantize";
  qz.inputs = {"x:0_reorder", "x:0_min", "x:0_max"};
  qz.outputs = {"x:0_quant"};
  qz.attrs = {{"output_dtype", "u8"}};
  m.ops.push_back(qz);
  finish(m, {"w_quantized:0", "x:0_quant", "b:0", "w_quantized:0_min", "w_quantized:0_max", "x:0_min", "x:0_max"}, {});
  // y is held feature-major by the Neural Engine: its chain ends in a Reorder back.
  m.ops.back().inputs = {"y:0_recover"};
  ne::OpInfo back;
  back.name = "fc_Reorder_Recover";
  back.type = "Reorder";
  back.inputs = {"y:0"};
  back.outputs = {"y:0_recover"};
  back.attrs = {{"src_perm", "0,1"}, {"dst_perm", "1,0"}};
  m.ops.insert(m.ops.end() - 1, back);
  ne::NeLowered l = ne::lower_ne_dialect(m);
  EXPECT_EQ(l.precision, "int8");
  EXPECT_TRUE(l.transposed);
  ASSERT_EQ(l.ranges.count("x:0"), 1u);
  EXPECT_EQ(l.ranges["x:0"].first, xmin);
  EXPECT_EQ(l.ranges["x:0"].second, xmax);
  const ne::TensorInfo* wf = find_fp32_weight(l.model, "w_quantized:0/fp32");
  ASSERT_TRUE(wf);
  ASSERT_EQ(wf->shape, (ne::Shape{K, N}));
  for (int64_t k = 0; k < K; ++k)
    for (int64_t n = 0; n < N; ++n)
      EXPECT_FLOAT_EQ(wf->as<float>()[k * N + n], float(q[size_t(n * K + k)]) * (wmax[size_t(n)] / 127.f));
  const ne::TensorInfo* bf = find_fp32_weight(l.model, "b:0/zero_point_restored");
  ASSERT_TRUE(bf);
  for (int64_t n = 0; n < N; ++n) EXPECT_NEAR(bf->as<float>()[n], b[size_t(n)], 2e-6f * (1 + std::fabs(b[size_t(n)])));
}

std::string lower_error(const ne::Model& m) {
  try {
    ne::lower_ne_dialect(m);
  } catch (const ne::Error& e) {
    return e.what();
  }
  return "";
}

TEST(NeDialect, UnknownOrUnsupportedAttributeRefusedNamingFileOpAndAttribute) {
  ne::Model m = one_ip(4);
  m.add_weight("w:0", ne::DType::fp32, {4, 4}, randv(16, 11));
  finish(m, {"x:0", "w:0"}, {{"src1_perm", "1,0"}, {"foo", "1"}});
  std::string e = lower_error(m);
  EXPECT_EQ(e.rfind("/hand/ne/conf.yaml: operator 'fc' (InnerProduct): unknown attribute 'foo'", 0), 0u) << e;
  m.ops[1].attrs = {{"src1_perm", "2,0"}};
  e = lower_error(m);
  EXPECT_NE(e.find("operator 'fc' (InnerProduct): attribute src1_perm='2,0' is not supported"), std::string::npos) << e;
  m.ops[1].attrs = {{"src1_perm", "1,0"}, {"append_op", "swish"}};
  e = lower_error(m);
  EXPECT_NE(e.find("attribute append_op='swish' is not supported"), std::string::npos) << e;
  m.ops[1].attrs = {{"src1_perm", "1,0"}, {"gelu_split", "true"}};
  e = lower_error(m);
  EXPECT_NE(e.find("attribute gelu_split='true' is not supported"), std::string::npos) << e;
  // An operator type outside the covered vocabulary is named, not skipped.
  m.ops[1].attrs = {};
  m.ops[1].type = "Convolution";
  e = lower_error(m);
  EXPECT_NE(e.find("operator 'fc' (Convolution): operator type 'Convolution' is not in the Neural Engine vocabulary"),
            std::string::npos) << e;
}

}  // namespace
