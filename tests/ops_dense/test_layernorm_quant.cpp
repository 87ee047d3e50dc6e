// LayerNorm with a quantized second output (docs/OPS.md LayerNorm: quantize_dtype,
// quantize_scale, quantize_zero_point), driven directly (create_op -> reshape -> forward):
//  * output 0 is bitwise the 1-output op's output (the fusion changes no fp32 number), and
//    within the LayerNorm tolerance of a float64 reference written here (1e-5 relative to
//    |gamma|·(|x-mean|/std + 1), as test_row_ops.cpp: fp32 two-pass mean / variance);
//  * output 1 is exactly ONNX QuantizeLinear of the op's own output 0, with the formula written
//    here: saturate(round_half_to_even(y / scale) + zero_point), y / scale an fp32 division;
//  * odd sizes (rows 1, 7, 77; n 5, 768, 1000), u8 and s8, gamma / beta broadcast from one value,
//    every thread split; AVX-512 (when the CPU has it) and the portable kernels forced;
//  * bad attributes are errors naming the operator.
// Random data: std::mt19937 seeded per case; the seed is in the failure message.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "executor/operator.hpp"
#include "executor/ops/dense_common.hpp"
#include "executor/ops/quant_common.hpp"
#include "kernels/cpu_features.hpp"

namespace {

using ne::DType;
using ne::Shape;

std::vector<float> rnd(int64_t n, uint32_t seed, float lo, float hi) {
  std::mt19937 g(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = d(g);
  return v;
}

ne::OpInfo ln_info(int nin, int nout, std::vector<std::pair<std::string, std::string>> attrs) {
  ne::OpInfo i;
  i.name = "ln_q";
  i.type = "LayerNorm";
  for (int k = 0; k < nin; ++k) i.inputs.push_back("in" + std::to_string(k));
  i.outputs = {"y"};
  if (nout > 1) i.outputs.push_back("y_q");
  i.attrs = std::move(attrs);
  return i;
}

// ONNX QuantizeLinear, written out: the fp32 quotient, ties to even, then zero point and
// saturation (no library rounding function, so it shares nothing with the kernels).
int ref_quantize(float y, float scale, int zp, bool is_signed) {
  const float t = y / scale;
  double r = std::floor(double(t));
  const double frac = double(t) - r;
  if (frac > 0.5 || (frac == 0.5 && std::fmod(r, 2.0) != 0)) r += 1;
  double v = r + zp;
  const double lo = is_signed ? -128 : 0, hi = is_signed ? 127 : 255;
  if (std::isnan(double(t))) v = lo;
  return int(std::min(hi, std::max(lo, v)));
}

struct Result {
  std::vector<float> y;
  std::vector<uint8_t> q;  // raw bytes of output 1
  DType qdt = DType::fp32;
  std::string kernel;
};

// Runs the op on x [rows, n]; nout 2 allocates output 1 with 64 guard bytes after it.
Result run(const ne::OpInfo& info, const std::vector<float>& x, int64_t rows, int64_t n, const std::vector<float>& g,
           const std::vector<float>* b) {
  auto op = ne::create_op(info);
  EXPECT_TRUE(op);
  std::vector<ne::Tensor> in(b ? 3 : 2);
  in[0].name = "x", in[0].dtype = DType::fp32, in[0].shape = {rows, n};
  in[1].name = "gamma", in[1].dtype = DType::fp32, in[1].shape = {int64_t(g.size())}, in[1].is_const = true;
  in[1].data = const_cast<float*>(g.data());
  if (b) {
    in[2].name = "beta", in[2].dtype = DType::fp32, in[2].shape = {int64_t(b->size())}, in[2].is_const = true;
    in[2].data = const_cast<float*>(b->data());
  }
  std::vector<ne::Tensor*> ip;
  for (auto& t : in) ip.push_back(&t);
  op->init(ip);
  in[0].data = const_cast<float*>(x.data());
  std::vector<ne::Tensor> out(info.outputs.size());
  std::vector<ne::Tensor*> op_out;
  for (size_t k = 0; k < out.size(); ++k) out[k].name = info.outputs[k], op_out.push_back(&out[k]);
  op->reshape(ip, op_out);
  EXPECT_EQ(out[0].dtype, DType::fp32);
  EXPECT_EQ(out[0].shape, (Shape{rows, n}));
  Result r;
  r.kernel = op->kernel();
  std::vector<float> y(size_t(rows * n) + 16, NAN);
  std::vector<uint8_t> q(size_t(rows * n) + 64, 0xA5);
  out[0].data = y.data();
  if (out.size() > 1) {
    EXPECT_EQ(out[1].shape, (Shape{rows, n}));
    r.qdt = out[1].dtype;
    out[1].data = q.data();
  }
  op->forward(ip, op_out);
  for (int k = 0; k < 16; ++k) EXPECT_TRUE(std::isnan(y[size_t(rows * n + k)])) << "output 0 written past its end";
  for (int k = 0; k < 64; ++k) EXPECT_EQ(q[size_t(rows * n + k)], 0xA5) << "output 1 written past its end";
  r.y.assign(y.begin(), y.begin() + rows * n);
  r.q.assign(q.begin(), q.begin() + rows * n);
  return r;
}

struct Case {
  int64_t rows, n;
  bool is_signed;
  bool broadcast;  // gamma / beta of one element
  bool beta;
};

void check(const Case& c, uint32_t seed) {
  SCOPED_TRACE("seed " + std::to_string(seed) + " rows " + std::to_string(c.rows) + " n " + std::to_string(c.n) +
               (c.is_signed ? " s8" : " u8") + (c.broadcast ? " broadcast" : "") + (c.beta ? " beta" : "") +
               " threads " + std::to_string(omp_get_max_threads()));
  const float eps = 1e-5f;
  const std::vector<float> x = rnd(c.rows * c.n, seed, -2.f, 3.f);
  const int64_t gn = c.broadcast ? 1 : c.n;
  const std::vector<float> g = rnd(gn, seed + 1, 0.5f, 1.5f), b = rnd(gn, seed + 2, -1.f, 1.f);
  // Scale / zero point: the range ends saturate (|y| reaches ~3.5 with per-element gamma / beta),
  // zero points off centre.
  const float scale = c.is_signed ? 2.f / 127.f : 3.6f / 255.f;
  const int zp = c.is_signed ? -3 : 131;
  const std::vector<std::pair<std::string, std::string>> base = {{"axis", "-1"}, {"epsilon", "1e-05"}};
  auto qattrs = base;
  qattrs.push_back({"quantize_dtype", c.is_signed ? "s8" : "u8"});
  char sbuf[32];
  std::snprintf(sbuf, sizeof sbuf, "%.9g", double(scale));
  qattrs.push_back({"quantize_scale", sbuf});
  qattrs.push_back({"quantize_zero_point", std::to_string(zp)});
  const int nin = c.beta ? 3 : 2;
  const Result one = run(ln_info(nin, 1, base), x, c.rows, c.n, g, c.beta ? &b : nullptr);
  const Result two = run(ln_info(nin, 2, qattrs), x, c.rows, c.n, g, c.beta ? &b : nullptr);
  EXPECT_EQ(two.qdt, c.is_signed ? DType::s8 : DType::u8);
  // Output 0: bitwise the unfused op's.
  ASSERT_EQ(one.y.size(), two.y.size());
  EXPECT_EQ(std::memcmp(one.y.data(), two.y.data(), one.y.size() * sizeof(float)), 0)
      << "output 0 differs from the 1-output LayerNorm";
  // Output 0 against the float64 reference.
  int bad = 0;
  for (int64_t r = 0; r < c.rows; ++r) {
    double mean = 0, var = 0;
    for (int64_t i = 0; i < c.n; ++i) mean += x[size_t(r * c.n + i)];
    mean /= double(c.n);
    for (int64_t i = 0; i < c.n; ++i) var += (x[size_t(r * c.n + i)] - mean) * (x[size_t(r * c.n + i)] - mean);
    var /= double(c.n);
    const double rstd = 1 / std::sqrt(var + eps);
    for (int64_t i = 0; i < c.n; ++i) {
      const size_t k = size_t(r * c.n + i), gi = c.broadcast ? 0 : size_t(i);
      const double z = (x[k] - mean) * rstd, ref = z * g[gi] + (c.beta ? b[gi] : 0);
      const double tol = 1e-5 * (std::fabs(g[gi]) * (std::fabs(z) + 1) + 1);
      if (!(std::fabs(two.y[k] - ref) <= tol) && ++bad <= 5)
        ADD_FAILURE() << "y[" << k << "] = " << two.y[k] << ", reference " << ref << " (tol " << tol << ")";
    }
  }
  EXPECT_EQ(bad, 0);
  // Output 1: exactly QuantizeLinear of the op's own output 0. Count both saturation ends and
  // exact ties so the case is known to exercise them.
  int qbad = 0, sat_lo = 0, sat_hi = 0;
  for (size_t k = 0; k < two.y.size(); ++k) {
    const int want = ref_quantize(two.y[k], scale, zp, c.is_signed);
    const int got = c.is_signed ? int(int8_t(two.q[k])) : int(two.q[k]);
    sat_lo += want == (c.is_signed ? -128 : 0);
    sat_hi += want == (c.is_signed ? 127 : 255);
    if (got != want && ++qbad <= 5)
      ADD_FAILURE() << "q[" << k << "] = " << got << ", QuantizeLinear(" << two.y[k] << ") = " << want;
  }
  EXPECT_EQ(qbad, 0);
  if (c.rows * c.n >= 5000 && !c.broadcast) {
    EXPECT_GT(sat_lo, 0) << "the case should saturate at the low end";
    EXPECT_GT(sat_hi, 0) << "the case should saturate at the high end";
  }
}

// The AVX-512 kernels (where the CPU has them) and the portable ones, both the LayerNorm rows and
// the quantization step.
class LayerNormQuant : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    ne::dense::force_portable(GetParam());
    ne::quant::force_portable(GetParam());
  }
  void TearDown() override {
    ne::dense::force_portable(false);
    ne::quant::force_portable(false);
  }
};
INSTANTIATE_TEST_SUITE_P(Isa, LayerNormQuant, ::testing::Values(false, true),
                         [](const auto& i) { return i.param ? "portable" : "native"; });

TEST_P(LayerNormQuant, MatchesReferenceAndQuantizeLinear) {
  uint32_t seed = 100;
  const int saved = omp_get_max_threads();
  for (int threads : {1, 3}) {
    omp_set_num_threads(threads);
    for (int64_t rows : {1, 7, 77})
      for (int64_t n : {5, 768, 1000})
        for (bool s8 : {false, true}) {
          check({rows, n, s8, false, true}, seed++);
          check({rows, n, s8, true, true}, seed++);
        }
    check({77, 768, false, false, false}, seed++);  // no beta
    check({7, 1000, true, true, false}, seed++);
  }
  omp_set_num_threads(saved);
}

// Exact half steps round to even (y / scale = k + 0.5): x built so that output 0 is a known set
// of values. With gamma 0 the row normalises to exactly beta.
TEST_P(LayerNormQuant, TiesRoundToEven) {
  const int64_t n = 40;
  std::vector<float> x(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) x[size_t(i)] = float(i);
  const std::vector<float> g(static_cast<size_t>(n), 0.f);
  std::vector<float> b(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) b[size_t(i)] = 0.5f * float(i - 20);  // -10 .. 9.5 in half steps
  const Result r = run(ln_info(3, 2, {{"quantize_dtype", "s8"}, {"quantize_scale", "1"}, {"quantize_zero_point", "0"}}),
                       x, 1, n, g, &b);
  for (int64_t i = 0; i < n; ++i) {
    ASSERT_EQ(r.y[size_t(i)], b[size_t(i)]);
    const int want = ref_quantize(b[size_t(i)], 1.f, 0, true);
    EXPECT_EQ(int(int8_t(r.q[size_t(i)])), want) << b[size_t(i)];
    EXPECT_EQ(std::fmod(double(want), 1.0), 0.0);
  }
  EXPECT_EQ(int(int8_t(r.q[size_t(20 + 1)])), 0);   // 0.5 -> 0
  EXPECT_EQ(int(int8_t(r.q[size_t(20 + 3)])), 2);   // 1.5 -> 2
  EXPECT_EQ(int(int8_t(r.q[size_t(20 - 1)])), 0);   // -0.5 -> -0
  EXPECT_EQ(int(int8_t(r.q[size_t(20 - 5)])), -2);  // -2.5 -> -2
}

// The kernel string says the quantizing path ran, on the tier the CPU (and NE_MAX_ISA) allows.
TEST(LayerNormQuantKernel, Selected) {
  const bool avx512 = ne::cpu::mayiuse(ne::cpu::Isa::avx512_core);
  const std::string isa = avx512 ? "avx512" : "portable";
  auto op = ne::create_op(ln_info(2, 2, {{"quantize_dtype", "u8"}, {"quantize_scale", "0.1"}}));
  EXPECT_EQ(op->kernel(), "layernorm:" + isa + "+quantize_" + isa);
  EXPECT_EQ(ne::create_op(ln_info(2, 1, {}))->kernel(), "layernorm:" + isa);
}

void expect_error(const ne::OpInfo& i, const std::string& what) {
  SCOPED_TRACE(what);
  try {
    ne::create_op(i);
    ADD_FAILURE() << "no error for " << what;
  } catch (const ne::Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("'ln_q'"), std::string::npos) << m;
    EXPECT_NE(m.find(what), std::string::npos) << m;
  }
}

TEST(LayerNormQuantErrors, BadAttributes) {
  using A = std::vector<std::pair<std::string, std::string>>;
  expect_error(ln_info(2, 2, {{"quantize_dtype", "u8"}}), "quantize_scale");                        // missing scale
  expect_error(ln_info(2, 2, {{"quantize_scale", "0.1"}}), "quantize_dtype");                       // missing dtype
  expect_error(ln_info(2, 2, {}), "2 outputs");                                                      // no attrs
  expect_error(ln_info(2, 2, A{{"quantize_dtype", "u8"}, {"quantize_scale", "0"}}), "quantize_scale 0");
  expect_error(ln_info(2, 2, A{{"quantize_dtype", "u8"}, {"quantize_scale", "-1"}}), "quantize_scale -1");
  expect_error(ln_info(2, 2, A{{"quantize_dtype", "u8"}, {"quantize_scale", "nan"}}), "quantize_scale");
  expect_error(ln_info(2, 2, A{{"quantize_dtype", "s32"}, {"quantize_scale", "0.1"}}), "quantize_dtype 's32'");
  expect_error(ln_info(2, 2, A{{"quantize_dtype", "u8"}, {"quantize_scale", "0.1"}, {"quantize_zero_point", "256"}}),
               "quantize_zero_point 256");
  expect_error(ln_info(2, 2, A{{"quantize_dtype", "u8"}, {"quantize_scale", "0.1"}, {"quantize_zero_point", "-1"}}),
               "quantize_zero_point -1");
  expect_error(ln_info(2, 2, A{{"quantize_dtype", "s8"}, {"quantize_scale", "0.1"}, {"quantize_zero_point", "128"}}),
               "quantize_zero_point 128");
  expect_error(ln_info(2, 1, A{{"quantize_dtype", "u8"}, {"quantize_scale", "0.1"}}), "no second output");
  expect_error(ln_info(2, 2, A{{"transpose_mode", "1,0"}, {"quantize_dtype", "u8"}, {"quantize_scale", "0.1"}}),
               "transpose_mode 1,0");
  ne::OpInfo three = ln_info(2, 2, A{{"quantize_dtype", "u8"}, {"quantize_scale", "0.1"}});
  three.outputs.push_back("extra");
  expect_error(three, "3 outputs");
  // s8 zero points -128 / 127 and u8 0 / 255 are fine.
  EXPECT_NO_THROW(ne::create_op(ln_info(2, 2, A{{"quantize_dtype", "s8"}, {"quantize_scale", "1"}, {"quantize_zero_point", "-128"}})));
  EXPECT_NO_THROW(ne::create_op(ln_info(2, 2, A{{"quantize_dtype", "u8"}, {"quantize_scale", "1"}, {"quantize_zero_point", "255"}})));
}

}  // namespace
