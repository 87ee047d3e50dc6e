// --transpose (compile/passes/transpose.cpp): for every BERT-like fixture, the feature-major
// graph against the token-major one, fp32 / int8 static / int8 dynamic / bf16; the rewrite's
// shape (2 Reorders per chain, LayerNorm transpose_mode, feature-major InnerProducts); the
// `layernorm_ba` kernel in the profile; graphs it does not recognise left alone.
//
// Tolerances: fp32 1e-5 (only the summation order differs). int8 static: the same quantized
// GEMMs in another layout: equal up to fp32 rounding, unless a rounding flips one activation's
// quantization step: 0.05 (a few steps of the calibrated scales, after LayerNorm) and the per-token
// cosine vs fp32 >= 0.99 as the int8 tests require. int8 dynamic: 0.1 (scales per call). bf16:
// 0.05 (as the bf16 tests against fp32).
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include "compile/passes/passes.hpp"
#include "helpers.hpp"
#include "kernels/cpu_features.hpp"

namespace {

using namespace ne_test;

ne::Model compile(const std::string& f, const std::string& precision, bool transpose) {
  ne::CompileOptions o;
  o.precision = precision;
  // One small generated calibration set: this compares two layouts of the same quantized model,
  // not calibration quality (tests/quant does that).
  o.calib_sets = 1;
  o.calib_batch = 2;
  o.calib_seq = 32;
  o.transpose = transpose;
  return ne::compile_onnx(fixture_dir(f) + "/model.onnx", o);
}

// The token-major model through the pass (what --transpose does after quantization).
ne::Model transposed(const ne::Model& m, int* layers) {
  ne::Model t = m;
  *layers = ne::pass::transpose_encoder(t, false);
  ne::pass::remove_dead_ops(t);
  ne::pass::finalize_inputs(t);
  ne::validate(t);
  return t;
}

int count_attr(const ne::Model& m, const std::string& type, const std::string& k, const std::string& v) {
  int n = 0;
  for (auto& op : m.ops) n += op.type == type && op.attr(k) == v;
  return n;
}

struct Case {
  std::string fixture;
  int layers;  // encoder layers of the fixture
};

class Transpose : public ::testing::TestWithParam<Case> {};

TEST_P(Transpose, AllPrecisionsMatchTokenMajor) {
  const Case c = GetParam();
  NE_REQUIRE_FIXTURE(c.fixture);
  auto in = fixture_inputs(c.fixture);
  ne::HostTensor fp32_out;
  for (std::string p : {"fp32", "int8", "int8_dynamic", "bf16"}) {
    SCOPED_TRACE(c.fixture + " " + p);
    ne::Model m = compile(c.fixture, p, false);
    int layers = 0;
    ne::Model t = transposed(m, &layers);
    EXPECT_EQ(layers, c.layers);
    EXPECT_EQ(count_of(t, "Reorder") - count_of(m, "Reorder"), 2) << counts_str(t);
    EXPECT_EQ(count_attr(t, "LayerNorm", "transpose_mode", "1,0"), 2 * c.layers);
    EXPECT_EQ(count_attr(t, "InnerProduct", "layout", "feature_major"), 6 * c.layers);
    EXPECT_EQ(count_of(t, "InnerProduct"), count_of(m, "InnerProduct"));
    auto a = run_model(m, in), b = run_model(t, in);
    const double d = max_abs_diff(a[0], b[0]);
    const double tol = p == "fp32" ? 1e-5 : p == "int8_dynamic" ? 0.1 : 0.05;
    std::printf("[%s %s] --transpose vs token-major: max abs %.3g (tolerance %.3g)\n", c.fixture.c_str(), p.c_str(),
                d, tol);
    EXPECT_LE(d, tol);
    if (p == "fp32") fp32_out = a[0];
    else if (p != "bf16") EXPECT_GE(min_cosine(fp32_out, b[0]), 0.99);
  }
}

// The BERT-like fixtures (tiny_qdq / tiny_dynq: QDQ imports, checked separately below).
INSTANTIATE_TEST_SUITE_P(Fixtures, Transpose,
                         ::testing::Values(Case{"tiny", 2}, Case{"tiny_1x4_90", 2}, Case{"tiny_4x1_90", 2},
                                           Case{"tiny_channel_50", 2}, Case{"tiny_gelu_tanh", 2},
                                           Case{"tiny_notok", 2}, Case{"tiny_opset17", 2}, Case{"tiny_extdata", 2},
                                           Case{"heads16", 1}, Case{"distil_small", 6}),
                         [](const ::testing::TestParamInfo<Case>& i) { return i.param.fixture; });

// QDQ-imported int8 models: s8 InnerProducts with the model's own scales.
TEST(Transpose, QdqImportsMatchTokenMajor) {
  for (std::string f : {"tiny_qdq", "tiny_dynq"}) {
    NE_REQUIRE_FIXTURE(f);
    SCOPED_TRACE(f);
    auto in = fixture_inputs(f);
    ne::Model m = compile(f, "fp32", false);
    int layers = 0;
    ne::Model t = transposed(m, &layers);
    std::printf("[%s] --transpose rewrote %d layers\n", f.c_str(), layers);
    auto a = run_model(m, in), b = run_model(t, in);
    EXPECT_LE(max_abs_diff(a[0], b[0]), 0.1);
  }
}

// Through compile_onnx (the CLI path), and the profile names the column LayerNorm.
TEST(Transpose, CompileOptionProfileAndReorders) {
  NE_REQUIRE_FIXTURE("tiny_1x4_90");
  ne::Model t = compile("tiny_1x4_90", "fp32", true);
  EXPECT_EQ(count_of(t, "Reorder"), 2) << counts_str(t);
  ne::ExecOptions o;
  o.profile = true;
  ne::Executor ex(t, o);
  auto in = fixture_inputs("tiny_1x4_90");
  auto out = ex.run(inputs_for(t, in));
  int ln_ba = 0, sparse_fm = 0;
  for (auto& p : ex.profile()) {
    ln_ba += p.kernel == "layernorm_ba";
    sparse_fm += p.type == "InnerProduct" && p.kernel.find("bsgemm") != std::string::npos;
  }
  EXPECT_EQ(ln_ba, 4);
  // fp32 sparse weights run the block-sparse kernels where AVX-512 is usable; below it (no CPU,
  // or capped) only the scalar reference kernel could, so they go to oneDNN (README).
  const bool avx512 = ne::cpu::mayiuse(ne::cpu::Isa::avx512_core);
  EXPECT_EQ(sparse_fm, avx512 ? 12 : 0) << (avx512 ? "" : ne::cpu::why_not(ne::cpu::Isa::avx512_core));
  ne::Model ref = compile("tiny_1x4_90", "fp32", false);
  EXPECT_LE(max_abs_diff(run_model(ref, in)[0], out[0]), 1e-5);
  // Written and read back: the attributes survive the IR.
  char dir[] = "/tmp/ne_transpose_XXXXXX";
  ASSERT_TRUE(mkdtemp(dir));
  ne::save_ir(t, dir);
  ne::Model back = ne::load_ir(std::string(dir) + "/conf.yaml", std::string(dir) + "/model.bin");
  EXPECT_LE(max_abs_diff(run_model(back, in)[0], out[0]), 0.0);
  std::remove((std::string(dir) + "/conf.yaml").c_str());
  std::remove((std::string(dir) + "/model.bin").c_str());
  rmdir(dir);
}

// Other batch / sequence shapes on one compiled model (the head split shapes follow at plan time).
TEST(Transpose, OtherShapes) {
  NE_REQUIRE_FIXTURE("tiny");
  ne::Model m = compile("tiny", "fp32", false);
  int layers = 0;
  ne::Model t = transposed(m, &layers);
  ne::Executor a(m), b(t);
  for (auto bs : {std::pair<int64_t, int64_t>{1, 1}, {1, 7}, {4, 33}, {2, 128}}) {
    const int64_t n = bs.first * bs.second;
    std::vector<int64_t> ids(static_cast<size_t>(n)), mask(static_cast<size_t>(n), 1), tt(static_cast<size_t>(n), 0);
    for (int64_t i = 0; i < n; ++i) ids[size_t(i)] = (i * 37) % 100;
    if (bs.second > 3) mask[size_t(n - 1)] = 0;  // padding
    std::map<std::string, ne::HostTensor> in = {
        {"input_ids", ne::HostTensor::make(ne::DType::int64, {bs.first, bs.second}, ids)},
        {"attention_mask", ne::HostTensor::make(ne::DType::int64, {bs.first, bs.second}, mask)},
        {"token_type_ids", ne::HostTensor::make(ne::DType::int64, {bs.first, bs.second}, tt)}};
    EXPECT_LE(max_abs_diff(a.run(in)[0], b.run(in)[0]), 1e-5) << bs.first << "x" << bs.second;
  }
}

// Graphs without the whole encoder-layer pattern are left alone.
TEST(Transpose, LeavesOtherGraphsAlone) {
  NE_REQUIRE_FIXTURE("tiny");
  ne::CompileOptions o;
  o.fuse = false;
  ne::Model unfused = ne::compile_onnx(fixture_dir("tiny") + "/model.onnx", o);
  ne::Model u = unfused;
  EXPECT_EQ(ne::pass::transpose_encoder(u, false), 0);
  EXPECT_EQ(u.ops.size(), unfused.ops.size());
  // Already transposed: nothing more to do.
  ne::Model m = compile("tiny", "fp32", true);
  const size_t n = m.ops.size();
  EXPECT_EQ(ne::pass::transpose_encoder(m, false), 0);
  EXPECT_EQ(m.ops.size(), n);
  // One layer broken (its Softmax not on the last axis): only the other layer is rewritten.
  ne::Model b = compile("tiny", "fp32", false);
  int layers = 0;
  ne::Model bt = b;
  ne::pass::unfuse_attention_op(bt);  // the compiled IR has one Attention op per layer
  for (auto& op : bt.ops)
    if (op.type == "Softmax") {
      op.set_attr("axis", "1");  // not the last axis: the layer is not recognised
      break;
    }
  ne::Model bt2 = transposed(bt, &layers);
  EXPECT_EQ(layers, 1);
  EXPECT_EQ(count_of(bt2, "Reorder"), 2);
  // And with --no_fuse, --transpose is refused with a message.
  o.transpose = true;
  try {
    ne::compile_onnx(fixture_dir("tiny") + "/model.onnx", o);
    ADD_FAILURE() << "expected an error";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("--transpose"), std::string::npos) << e.what();
  }
}

}  // namespace
