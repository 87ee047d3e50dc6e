// Precision passes (compile/quantize.*, compile/passes/qdq_import.cpp): weight quantization,
// calibration, int8 / bf16 compiles of the tiny fixtures, QDQ and MatMulInteger import, and
// numerics: through the fp32 emulation (emulate_fp32: fake-quant chains of generic ops) and
// through the executor's own int8 / bf16 InnerProduct. The executor runs every precision the
// compiler emits on any x86-64 (sparse kernels, oneDNN, generic fallbacks), so its run is never
// skipped: a throw fails the test with the executor's message.
//
// Tolerances:
//  - weight round trip |q·s − w| ≤ s/2 (+1 ulp of w): round to nearest, |w/s| ≤ 127.
//  - int8 vs fp32: cosine per token ≥ 0.99 (issue 5's bar; the tiny models reach ≥ 0.999).
//  - bf16 vs fp32: max abs ≤ 0.05 on outputs of std ≈ 1 (bf16 has 8 mantissa bits: relative
//    rounding 2^-9 per operand, K ≤ 256 terms, two layers with LayerNorm).
//  - QDQ vs ONNX Runtime: the output (after the last LayerNorm) within one quantization step of
//    the last quantized activation feeding it (ffn2's src scale), see qdq_tolerance().
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <random>
#include <set>

#include "common/npy.hpp"
#include "compile/compile.hpp"
#include "compile/onnx_import.hpp"
#include "compile/quantize.hpp"
#include "executor/executor.hpp"
#include "../compile/helpers.hpp"

using namespace ne_test;

namespace {

std::vector<const ne::OpInfo*> ips(const ne::Model& m) {
  std::vector<const ne::OpInfo*> r;
  for (auto& op : m.ops)
    if (op.type == "InnerProduct") r.push_back(&op);
  return r;
}

const ne::OpInfo* op_named(const ne::Model& m, const std::string& n) {
  for (auto& op : m.ops)
    if (op.name == n) return &op;
  return nullptr;
}

// Per-token cosine similarity over the last dim: min and mean; both NaN (so that every EXPECT_GE
// on them fails) if either tensor holds a NaN or Inf (tests/core/test_util.hpp).
void cosine(const ne::HostTensor& a, const ne::HostTensor& b, double* mn, double* mean) {
  ne_test::row_cosines(a, b, mn, mean);
}

ne::Model compile(const std::string& fixture, const std::string& precision,
                  std::function<void(ne::CompileOptions&)> f = nullptr) {
  ne::CompileOptions o;
  o.precision = precision;
  o.calib_sets = 2;  // keep the tests fast; seq 128 batch 2
  if (f) f(o);
  return ne::compile_onnx(fixture_dir(fixture) + "/model.onnx", o);
}

// The executor's own run of a quantized model. A throw is a test failure naming `what` and the
// executor's message (issue 12: no test passes while the engine throws); the result is then empty
// and callers stop with ASSERT_FALSE(empty()).
std::vector<ne::HostTensor> executor_run(const ne::Model& m, const std::map<std::string, ne::HostTensor>& in,
                                         const std::string& what) {
  try {
    return run_model(m, in);
  } catch (const std::exception& e) {
    ADD_FAILURE() << what << ": the executor threw: " << e.what();
    return {};
  }
}

}  // namespace

// ------------------------------------------------------------------ weight quantization
TEST(WeightQuant, PerChannelScalesZerosAndRoundTrip) {
  const unsigned seed = 7;
  std::mt19937 rng(seed);
  const int64_t K = 37, N = 13;  // awkward sizes
  std::vector<float> w(static_cast<size_t>(K * N));
  std::normal_distribution<float> nd(0, 1);
  for (int64_t k = 0; k < K; ++k)
    for (int64_t n = 0; n < N; ++n) {
      float v = nd(rng) * float(n + 1);  // a different range per output channel
      if ((k + n) % 3 == 0) v = 0;       // sparsity
      if (n == 5) v = 0;                 // an all-zero channel
      if (n == 6 && k == 2) v = -0.0f;
      w[size_t(k * N + n)] = v;
    }
  std::vector<int8_t> q;
  std::vector<float> s;
  ne::quantize_weight_s8(w.data(), K, N, &q, &s);
  ASSERT_EQ(s.size(), size_t(N));
  for (int64_t n = 0; n < N; ++n) {
    float mx = 0;
    for (int64_t k = 0; k < K; ++k) mx = std::max(mx, std::fabs(w[size_t(k * N + n)]));
    if (mx == 0) {
      EXPECT_EQ(s[n], 1.f) << "all-zero channel " << n;
    } else {
      EXPECT_FLOAT_EQ(s[n], mx / 127.f) << "channel " << n << " seed " << seed;
    }
    for (int64_t k = 0; k < K; ++k) {
      float v = w[size_t(k * N + n)];
      int8_t qv = q[size_t(k * N + n)];
      EXPECT_GE(qv, -127);
      if (v == 0) { EXPECT_EQ(qv, 0) << "zero not kept at " << k << "," << n; }
      EXPECT_LE(std::fabs(qv * s[n] - v), s[n] / 2 + 1e-6f * std::fabs(v))
          << k << "," << n << " seed " << seed;
    }
  }
}

TEST(WeightQuant, HalfStepsRoundToEven) {
  // Column max 127 -> scale 1: 2.5 -> 2, 3.5 -> 4, -2.5 -> -2.
  std::vector<float> w = {127, 2.5f, 3.5f, -2.5f};
  std::vector<int8_t> q;
  std::vector<float> s;
  ne::quantize_weight_s8(w.data(), 4, 1, &q, &s);
  EXPECT_EQ(s[0], 1.f);
  EXPECT_EQ(q, (std::vector<int8_t>{127, 2, 4, -2}));
}

TEST(ActQuant, OrtStyleScaleAndZeroPoint) {
  float s;
  int zp;
  ne::act_qparams({-1.f, 3.f}, ne::DType::u8, &s, &zp);
  EXPECT_FLOAT_EQ(s, 4.f / 255.f);
  EXPECT_EQ(zp, 64);  // round(1 / (4/255)) = round(63.75)
  ne::act_qparams({0.5f, 2.f}, ne::DType::u8, &s, &zp);  // widened to include 0
  EXPECT_FLOAT_EQ(s, 2.f / 255.f);
  EXPECT_EQ(zp, 0);
  ne::act_qparams({-4.f, -1.f}, ne::DType::u8, &s, &zp);
  EXPECT_EQ(zp, 255);
  ne::act_qparams({-1.f, 3.f}, ne::DType::s8, &s, &zp);
  EXPECT_FLOAT_EQ(s, 3.f / 127.f);
  EXPECT_EQ(zp, 0);
  ne::act_qparams({0.f, 0.f}, ne::DType::u8, &s, &zp);
  EXPECT_EQ(s, 1.f);
  EXPECT_EQ(zp, 0);
}

// ------------------------------------------------------------------ calibration
TEST(Calibration, RangesMatchTheTensorsOfARun) {
  NE_REQUIRE_FIXTURE("tiny");
  ne::Model m = compile("tiny", "fp32");
  auto srcs = ne::quantizable_srcs(m);
  // Per layer: Q/K/V share one src; attn_out, ffn1, ffn2 one each.
  EXPECT_EQ(srcs.size(), 8u);
  auto sets = ne::load_calib_sets(fixture_dir("tiny") + "/inputs", m);
  ASSERT_EQ(sets.size(), 1u);
  auto r = ne::calibrate(m, sets, srcs);
  ASSERT_EQ(r.size(), srcs.size());
  // Reference: the same tensors as outputs, min / max computed here.
  ne::Model c = m;
  for (auto& op : c.ops)
    if (op.type == "Output") op.inputs = srcs;
  auto outs = run_model(c, sets[0]);
  for (size_t i = 0; i < srcs.size(); ++i) {
    ASSERT_TRUE(all_finite(outs[i])) << srcs[i];  // std::min / std::max below would skip a NaN
    float mn = outs[i].ptr<float>()[0], mx = mn;
    for (int64_t k = 0; k < outs[i].numel(); ++k)
      mn = std::min(mn, outs[i].ptr<float>()[k]), mx = std::max(mx, outs[i].ptr<float>()[k]);
    EXPECT_EQ(r[srcs[i]].min, mn) << srcs[i];
    EXPECT_EQ(r[srcs[i]].max, mx) << srcs[i];
  }
}

TEST(Calibration, GeneratedInputsGiveSaneRanges) {
  NE_REQUIRE_FIXTURE("tiny");
  ne::Model m = compile("tiny", "fp32");
  auto sets = ne::generated_calib_sets(m, 2, 2, 128);
  ASSERT_EQ(sets.size(), 2u);
  EXPECT_EQ(sets[0].at("input_ids").shape, (ne::Shape{2, 128}));
  for (int64_t i = 0; i < 256; ++i) {
    EXPECT_LT(sets[0].at("input_ids").ptr<int64_t>()[i], 100);  // tiny's vocabulary
    EXPECT_EQ(sets[0].at("attention_mask").ptr<int64_t>()[i], 1);
    EXPECT_EQ(sets[0].at("token_type_ids").ptr<int64_t>()[i], 0);
  }
  for (std::string method : {"minmax", "percentile"}) {
    ne::QuantOptions q;
    q.calib_method = method;
    auto r = ne::calibrate(m, sets, ne::quantizable_srcs(m), q);
    for (auto& kv : r) {
      SCOPED_TRACE(method + " " + kv.first);
      EXPECT_TRUE(std::isfinite(kv.second.min) && std::isfinite(kv.second.max));
      EXPECT_LT(kv.second.min, 0.f);  // LayerNorm outputs and GELU (min ≈ -0.17) go below 0
      EXPECT_GT(kv.second.max, 0.f);
      EXPECT_LT(kv.second.max - kv.second.min, 200.f);
    }
  }
}

TEST(Calibration, DirectoryOfSets) {
  NE_REQUIRE_FIXTURE("tiny");
  ne::Model m = compile("tiny", "fp32");
  // Two subdirectories holding the fixture's inputs.
  char tmpl[] = "/tmp/ne_calib_XXXXXX";
  ASSERT_TRUE(mkdtemp(tmpl));
  std::string d = tmpl;
  auto in = fixture_inputs("tiny");
  for (std::string set : {"a", "b"}) {
    ASSERT_EQ(system(("mkdir -p " + d + "/" + set).c_str()), 0);
    for (auto& kv : in)
      ne::write_npy(d + "/" + set + "/" + kv.first + ".npy", kv.second.dtype, kv.second.shape,
                    kv.second.bytes.data());
  }
  auto sets = ne::load_calib_sets(d, m);
  EXPECT_EQ(sets.size(), 2u);
  EXPECT_THROW(ne::load_calib_sets(d + "/none", m), ne::Error);
  ASSERT_EQ(system(("rm -rf " + d).c_str()), 0);
}

// ------------------------------------------------------------------ int8 compile
void check_int8_ir(const std::string& fixture, bool dynamic) {
  ne::Model f = compile(fixture, "fp32");
  ne::Model q = compile(fixture, dynamic ? "int8_dynamic" : "int8");
  // Same operators, same order; only InnerProducts changed, plus (static) one quantization per
  // layer that the layer's Q, K and V InnerProducts share (share_src_quantization), written by the
  // LayerNorm before them as its second output (fuse_layernorm_quantize) or by a Quantize op.
  std::vector<const ne::OpInfo*> qops;
  int quantize_ops = 0;
  for (const auto& op : q.ops) {
    const bool ln_q = op.type == "LayerNorm" && op.outputs.size() == 2;
    if (op.type == "Quantize" || ln_q) {
      ++quantize_ops;
      int readers = 0;
      for (auto* ip : ips(q)) readers += ip->inputs[0] == op.outputs.back();
      EXPECT_EQ(readers, 3) << op.name;  // Q, K, V
      if (!ln_q) continue;
    }
    qops.push_back(&op);
  }
  EXPECT_EQ(quantize_ops, dynamic ? 0 : 2) << counts_str(q);
  ASSERT_EQ(f.ops.size(), qops.size()) << counts_str(q);
  for (size_t i = 0; i < f.ops.size(); ++i) EXPECT_EQ(f.ops[i].type, qops[i]->type) << i;
  EXPECT_EQ(ips(q).size(), 12u);
  for (auto* ip : ips(q)) {
    SCOPED_TRACE(ip->name);
    const ne::OpInfo* fp = op_named(f, ip->name);
    ASSERT_TRUE(fp);
    ASSERT_EQ(ip->inputs.size(), fp->inputs.size() + 1);  // + weight_scale
    // src: the same tensor, or (static) the shared Quantize of it
    const ne::OpInfo* qz = nullptr;
    const ne::OpInfo* lnq = nullptr;
    for (const auto& op : q.ops) {
      if (op.type == "Quantize" && op.outputs[0] == ip->inputs[0]) qz = &op;
      if (op.type == "LayerNorm" && op.outputs.size() == 2 && op.outputs[1] == ip->inputs[0]) lnq = &op;
    }
    EXPECT_EQ(qz ? qz->inputs[0] : lnq ? lnq->outputs[0] : ip->inputs[0], fp->inputs[0]);
    if (qz) {
      EXPECT_EQ(qz->attr("scale"), ip->attr("src_scale"));
      EXPECT_EQ(qz->attr("zero_point"), ip->attr("src_zero_point"));
    }
    if (lnq) {
      EXPECT_EQ(lnq->attr("quantize_scale"), ip->attr("src_scale"));
      EXPECT_EQ(lnq->attr("quantize_zero_point"), ip->attr("src_zero_point"));
      EXPECT_EQ(lnq->attr("quantize_dtype"), ip->attr("src_dtype"));
    }
    for (size_t k = 2; k < fp->inputs.size(); ++k) EXPECT_EQ(ip->inputs[k + 1], fp->inputs[k]);
    EXPECT_EQ(ip->attr("append_op"), fp->attr("append_op"));
    const ne::TensorInfo* w = q.find(ip->inputs[1]);
    const ne::TensorInfo* ws = q.find(ip->inputs[2]);
    const ne::TensorInfo* wf = f.find(fp->inputs[1]);
    ASSERT_TRUE(w && ws && wf);
    EXPECT_EQ(w->dtype, ne::DType::s8);
    EXPECT_EQ(w->shape, wf->shape);
    EXPECT_EQ(ws->dtype, ne::DType::fp32);
    EXPECT_EQ(ws->shape, (ne::Shape{wf->shape[1]}));
    // Zeros (the sparsity) exactly kept; round trip within half a step.
    int64_t K = wf->shape[0], N = wf->shape[1], zf = 0, zq = 0;
    for (int64_t i = 0; i < K * N; ++i) {
      float v = wf->as<float>()[i];
      int8_t qv = w->as<int8_t>()[i];
      zf += v == 0, zq += qv == 0;
      if (v == 0) { EXPECT_EQ(qv, 0); }
      float s = ws->as<float>()[i % N];
      EXPECT_LE(std::fabs(qv * s - v), s / 2 + 1e-6f);
    }
    if (fixture == "tiny_1x4_90") { EXPECT_GE(double(zf) / double(K * N), 0.89); }
    EXPECT_GE(zq, zf);
    EXPECT_EQ(ip->attr("src_dtype"), "u8");
    if (dynamic) {
      EXPECT_EQ(ip->attr("src_scale"), "dynamic");
    } else {
      EXPECT_GT(ip->attr_float("src_scale", 0), 0.f);
      EXPECT_LT(ip->attr_float("src_scale", 0), 1.f);
      int64_t zp = ip->attr_int("src_zero_point", -1);
      EXPECT_GE(zp, 0);
      EXPECT_LE(zp, 255);
    }
  }
  // Every other op stays fp32: no s8/u8/bf16 tensor outside the InnerProduct weights.
  for (auto& kv : q.tensors)
    if (kv.second.dtype == ne::DType::s8) { EXPECT_NE(kv.first.find("_s8"), std::string::npos); }
}

TEST(Int8Compile, TinyStatic) {
  NE_REQUIRE_FIXTURE("tiny");
  check_int8_ir("tiny", false);
}
TEST(Int8Compile, Tiny1x4Static) {
  NE_REQUIRE_FIXTURE("tiny_1x4_90");
  check_int8_ir("tiny_1x4_90", false);
}
TEST(Int8Compile, TinyDynamic) {
  NE_REQUIRE_FIXTURE("tiny");
  check_int8_ir("tiny", true);
}

TEST(Int8Compile, S8SymmetricActivations) {
  NE_REQUIRE_FIXTURE("tiny");
  ne::Model q = compile("tiny", "int8", [](ne::CompileOptions& o) { o.int8_src = "s8"; });
  for (auto* ip : ips(q)) {
    EXPECT_EQ(ip->attr("src_dtype"), "s8");
    EXPECT_EQ(ip->attr_int("src_zero_point", -1), 0);
  }
}

TEST(Int8Compile, UnknownPrecisionIsAnError) {
  NE_REQUIRE_FIXTURE("tiny");
  EXPECT_THROW(compile("tiny", "int4"), ne::Error);
  EXPECT_THROW(compile("tiny", "int8", [](ne::CompileOptions& o) { o.int8_mode = "x"; }), ne::Error);
}

// chain_int8: FFN1 (s8, gelu) writes FFN2's src already quantized, with FFN2's scale and zero
// point; the executor's result stays close to the fp32 emulation (where the requantization is
// the consumer's fake-quant); dynamic mode chains nothing.
TEST(Int8Compile, ChainsFfnIntoU8) {
  NE_REQUIRE_FIXTURE("tiny_1x4_90");
  ne::Model q = compile("tiny_1x4_90", "int8");
  int chained = 0;
  for (auto* ip : ips(q)) {
    if (ip->attr("output_dtype", "fp32") == "fp32") continue;
    ++chained;
    EXPECT_EQ(ip->attr("output_dtype"), "u8");
    const ne::OpInfo* next = nullptr;
    for (auto* c : ips(q))
      if (c->inputs[0] == ip->outputs[0]) next = c;
    ASSERT_NE(next, nullptr) << ip->name;
    EXPECT_EQ(ip->attr("dst_scale"), next->attr("src_scale"));
    EXPECT_EQ(ip->attr("dst_zero_point"), next->attr("src_zero_point"));
  }
  EXPECT_GE(chained, 1);
  const ne::Model dyn = compile("tiny_1x4_90", "int8_dynamic");  // (ips() points into it: keep it alive)
  for (auto* ip : ips(dyn)) { EXPECT_EQ(ip->attr("output_dtype", "fp32"), "fp32"); }
  auto in = fixture_inputs("tiny_1x4_90");
  const auto real = executor_run(q, in, "tiny_1x4_90 int8 (chained FFN)");
  ASSERT_FALSE(real.empty());
  auto emu = run_model(ne::emulate_fp32(q), in);
  double mn, mean;
  cosine(emu[0], real[0], &mn, &mean);
  EXPECT_GE(mn, 0.999) << "executor vs emulation, max abs " << max_abs_diff(emu[0], real[0]);
}

// Numerics through the fp32 emulation of the int8 model (and the IR written and read back).
void check_int8_numerics(const std::string& fixture, const std::string& precision) {
  auto in = fixture_inputs(fixture);
  ne::Model f = compile(fixture, "fp32");
  ne::Model q = compile(fixture, precision);
  auto ref = run_model(f, in);
  auto emu = run_model(ne::emulate_fp32(q), in);
  double mn, mean;
  cosine(ref[0], emu[0], &mn, &mean);
  std::printf("[%s %s emulated] cosine per token vs fp32: min %.5f mean %.5f, max abs %.4f\n",
              fixture.c_str(), precision.c_str(), mn, mean, max_abs_diff(ref[0], emu[0]));
  EXPECT_GE(mn, 0.99);
  // The executor's own int8 InnerProduct: the same cosine bar.
  const auto real = executor_run(q, in, fixture + " " + precision);
  ASSERT_FALSE(real.empty());
  cosine(ref[0], real[0], &mn, &mean);
  std::printf("[%s %s executor] cosine per token vs fp32: min %.5f mean %.5f\n", fixture.c_str(),
              precision.c_str(), mn, mean);
  EXPECT_GE(mn, 0.99);
}

TEST(Int8Numerics, TinyStaticEmulated) {
  NE_REQUIRE_FIXTURE("tiny");
  check_int8_numerics("tiny", "int8");
}
TEST(Int8Numerics, Tiny1x4StaticEmulated) {
  NE_REQUIRE_FIXTURE("tiny_1x4_90");
  check_int8_numerics("tiny_1x4_90", "int8");
}
TEST(Int8Numerics, TinyDynamicEmulated) {
  NE_REQUIRE_FIXTURE("tiny");
  check_int8_numerics("tiny", "int8_dynamic");
}

// Calibrating on the fixture's own inputs through --calib_dir.
TEST(Int8Numerics, CalibDirOfFixtureInputs) {
  NE_REQUIRE_FIXTURE("tiny");
  auto in = fixture_inputs("tiny");
  ne::Model f = compile("tiny", "fp32");
  ne::Model q = compile("tiny", "int8", [](ne::CompileOptions& o) {
    o.calib_dir = fixture_dir("tiny") + "/inputs";
  });
  double mn, mean;
  cosine(run_model(f, in)[0], run_model(ne::emulate_fp32(q), in)[0], &mn, &mean);
  EXPECT_GE(mn, 0.995);
}

// ------------------------------------------------------------------ bf16
TEST(Bf16, TinyWeightsRoundedAndOutputsClose) {
  NE_REQUIRE_FIXTURE("tiny");
  ne::Model f = compile("tiny", "fp32");
  ne::Model b = compile("tiny", "bf16");
  ASSERT_EQ(f.ops.size(), b.ops.size());
  EXPECT_EQ(ips(b).size(), 12u);
  for (auto* ip : ips(b)) {
    const ne::OpInfo* fp = op_named(f, ip->name);
    ASSERT_TRUE(fp);
    EXPECT_EQ(ip->inputs.size(), fp->inputs.size());
    const ne::TensorInfo* w = b.find(ip->inputs[1]);
    const ne::TensorInfo* wf = f.find(fp->inputs[1]);
    ASSERT_EQ(w->dtype, ne::DType::bf16);
    for (int64_t i = 0; i < wf->numel(); ++i)
      ASSERT_EQ(w->as<uint16_t>()[i], ne::fp32_to_bf16(wf->as<float>()[i])) << ip->name << " " << i;
  }
  for (auto& kv : b.tensors) EXPECT_NE(kv.second.dtype, ne::DType::s8);
  auto in = fixture_inputs("tiny");
  auto ref = run_model(f, in);
  auto emu = run_model(ne::emulate_fp32(b), in);
  double d = max_abs_diff(ref[0], emu[0]);
  std::printf("[tiny bf16 emulated] max abs vs fp32: %.4f\n", d);
  EXPECT_LE(d, 0.05);
  const auto real = executor_run(b, in, "tiny bf16");
  ASSERT_FALSE(real.empty());
  d = max_abs_diff(ref[0], real[0]);
  std::printf("[tiny bf16 executor] max abs vs fp32: %.4f\n", d);
  EXPECT_LE(d, 0.05);
}

// ------------------------------------------------------------------ QDQ import
namespace {
// Initializer values of an ONNX model, by name, as floats.
std::map<std::string, std::vector<double>> onnx_inits(const std::string& path) {
  std::map<std::string, std::vector<double>> r;
  auto mp = ne::read_onnx_model(path);
  for (auto& t : mp.graph().initializer()) {
    if (t.name().find("_scale") == std::string::npos && t.name().find("_zero_point") == std::string::npos)
      continue;
    auto b = ne::onnx_tensor_value(t, ".", "test");
    std::vector<double> v;
    for (int64_t i = 0; i < ne::shape_numel(b.shape); ++i) {
      if (b.dtype == ne::DType::fp32) v.push_back(reinterpret_cast<const float*>(b.bytes.data())[i]);
      else if (b.dtype == ne::DType::u8) v.push_back(b.bytes[size_t(i)]);
      else if (b.dtype == ne::DType::s8) v.push_back(int8_t(b.bytes[size_t(i)]));
    }
    r[t.name()] = v;
  }
  return r;
}

// Max abs of (ours − ORT) allowed: one step of the largest activation scale in the model
// (ORT and we quantize every activation identically up to float rounding of x/scale; a value
// on a rounding boundary may land one step apart, and LayerNorm keeps that at most one step
// of its input's scale on the output, whose std ≈ 1).
double qdq_tolerance(const std::map<std::string, std::vector<double>>& inits) {
  double t = 0;
  for (auto& kv : inits)
    if (kv.first.size() > 6 && kv.first.substr(kv.first.size() - 6) == "_scale" && kv.second.size() == 1 &&
        kv.first.find("onnx::MatMul") == std::string::npos)
      t = std::max(t, kv.second[0]);
  return t;
}
}  // namespace

TEST(QdqImport, StaticPerChannelToInt8InnerProducts) {
  NE_REQUIRE_FIXTURE("tiny_qdq");
  std::string path = fixture_dir("tiny_qdq") + "/model.onnx";
  ne::Model m = ne::compile_onnx(path);
  auto inits = onnx_inits(path);
  auto list = ips(m);
  ASSERT_EQ(list.size(), 12u) << counts_str(m);
  for (auto* ip : list) {
    SCOPED_TRACE(ip->name);
    const ne::TensorInfo* w = m.find(ip->inputs[1]);
    const ne::TensorInfo* ws = m.find(ip->inputs[2]);
    ASSERT_TRUE(w && ws);
    EXPECT_EQ(w->dtype, ne::DType::s8);
    ASSERT_EQ(ws->shape, (ne::Shape{w->shape[1]}));  // per channel
    // Exactly the ONNX scales: weight `<W>_quantized` with `<W>_scale`; src `<x>_scale`.
    std::string wbase = ip->inputs[1].substr(0, ip->inputs[1].size() - std::string("_quantized").size());
    ASSERT_TRUE(inits.count(wbase + "_scale")) << ip->inputs[1];
    auto& wsv = inits[wbase + "_scale"];
    for (int64_t n = 0; n < w->shape[1]; ++n) EXPECT_EQ(ws->as<float>()[n], float(wsv[size_t(n)]));
    ASSERT_TRUE(inits.count(ip->inputs[0] + "_scale")) << ip->inputs[0];
    EXPECT_EQ(ip->attr_float("src_scale", 0), float(inits[ip->inputs[0] + "_scale"][0]));
    EXPECT_EQ(ip->attr_int("src_zero_point", -1), int64_t(inits[ip->inputs[0] + "_zero_point"][0]));
    EXPECT_EQ(ip->attr("src_dtype"), "u8");
    EXPECT_EQ(ip->inputs.size(), ip->attr("append_op").find("sum") != std::string::npos ? 5u : 4u)
        << "bias not fused";
  }
  // Post-ops still fused: the FFN1 GELU and the residual adds.
  int gelu = 0, sum = 0;
  for (auto* ip : list) {
    gelu += ip->attr("append_op").find("gelu") != std::string::npos;
    sum += ip->attr("append_op").find("sum") != std::string::npos;
  }
  EXPECT_EQ(gelu, 2);
  EXPECT_EQ(sum, 4);
  // Attention Matmuls keep their fake-quant pairs: 2 Matmuls x 2 inputs x 2 layers.
  EXPECT_EQ(count_of(m, "Quantize"), 8) << counts_str(m);
  EXPECT_EQ(count_of(m, "Dequantize"), 8);
  EXPECT_EQ(count_of(m, "Matmul"), 4);
  for (auto& op : m.ops)
    if (op.type == "Quantize") {
      EXPECT_EQ(op.inputs.size(), 1u);
      EXPECT_EQ(op.attr("output_dtype"), "u8");
      EXPECT_TRUE(op.has_attr("scale") && op.has_attr("zero_point"));
    }
  // The IR survives a save / load.
  std::string yaml = ne::ir_to_yaml(m);
  EXPECT_NE(yaml.find("src_scale"), std::string::npos);
}

void check_vs_ort(const std::string& fixture) {
  std::string path = fixture_dir(fixture) + "/model.onnx";
  ne::Model m = ne::compile_onnx(path);
  auto in = fixture_inputs(fixture);
  auto ort = ne::read_npy(fixture_dir(fixture) + "/ref_ort/last_hidden_state.npy");
  double tol = qdq_tolerance(onnx_inits(path));
  if (tol == 0) tol = 0.05;  // dynamic: scales computed at run time (≈ range/255 of each src)
  auto emu = run_model(ne::emulate_fp32(m), in);
  double d = max_abs_diff(emu[0], to_host(ort));
  std::printf("[%s emulated] max abs vs ONNX Runtime: %.5f (tolerance %.5f)\n", fixture.c_str(), d, tol);
  EXPECT_LE(d, tol);
  const auto real = executor_run(m, in, fixture);
  ASSERT_FALSE(real.empty());
  d = max_abs_diff(real[0], to_host(ort));
  std::printf("[%s executor] max abs vs ONNX Runtime: %.5f (tolerance %.5f)\n", fixture.c_str(), d, tol);
  EXPECT_LE(d, tol);
}

TEST(QdqImport, StaticMatchesOrt) {
  NE_REQUIRE_FIXTURE("tiny_qdq");
  check_vs_ort("tiny_qdq");
}

TEST(QdqImport, DynamicMatMulIntegerToInt8InnerProducts) {
  NE_REQUIRE_FIXTURE("tiny_dynq");
  std::string path = fixture_dir("tiny_dynq") + "/model.onnx";
  ne::Model m = ne::compile_onnx(path);
  auto list = ips(m);
  ASSERT_EQ(list.size(), 12u) << counts_str(m);
  for (auto* ip : list) {
    EXPECT_EQ(ip->attr("src_scale"), "dynamic");
    EXPECT_EQ(m.find(ip->inputs[1])->dtype, ne::DType::s8);
    EXPECT_EQ(m.find(ip->inputs[2])->numel(), 1);  // per-tensor weight scale
    EXPECT_EQ(ip->inputs.size(), ip->attr("append_op").find("sum") != std::string::npos ? 5u : 4u);
  }
  EXPECT_EQ(count_of(m, "Quantize"), 0);
  EXPECT_EQ(count_of(m, "MatMulInteger"), 0);
  EXPECT_EQ(count_of(m, "DynamicQuantizeLinear"), 0);
}

TEST(QdqImport, DynamicMatchesOrt) {
  NE_REQUIRE_FIXTURE("tiny_dynq");
  check_vs_ort("tiny_dynq");
}

TEST(QdqImport, NoFuseKeepsOneToOneSemantics) {
  NE_REQUIRE_FIXTURE("tiny_qdq");
  ne::CompileOptions o;
  o.fuse = false;
  ne::Model m = ne::compile_onnx(fixture_dir("tiny_qdq") + "/model.onnx", o);
  // Weights dequantized to fp32 constants; activation pairs kept as Quantize / Dequantize.
  EXPECT_EQ(count_of(m, "Quantize"), 16) << counts_str(m);
  for (auto& op : m.ops)
    if (op.type == "InnerProduct") { EXPECT_EQ(m.find(op.inputs[1])->dtype, ne::DType::fp32); }
  auto in = fixture_inputs("tiny_qdq");
  auto ort = ne::read_npy(fixture_dir("tiny_qdq") + "/ref_ort/last_hidden_state.npy");
  auto emu = run_model(ne::emulate_fp32(m), in);
  EXPECT_LE(max_abs_diff(emu[0], to_host(ort)), qdq_tolerance(onnx_inits(fixture_dir("tiny_qdq") + "/model.onnx")));
}
