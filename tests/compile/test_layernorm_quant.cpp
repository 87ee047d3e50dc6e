// fuse_layernorm_quantize / unfuse_layernorm_quantize (compile/passes/layernorm_quantize.cpp):
// int8 static compiles of the tiny fixtures with and without the fusion run to bitwise equal
// outputs (the LayerNorm writes the very bytes the Quantize wrote), with fewer Quantize ops and
// LayerNorms with two outputs; the inverse restores the 2-op form; the passes that match the two
// ops on a compiled IR (transpose_encoder, unshare_src_quantization, emulate_fp32) still work on
// a fused IR; feature-major LayerNorms are never fused; the IR round trip keeps the attributes.
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>

#include "compile/passes/passes.hpp"
#include "compile/quantize.hpp"
#include "helpers.hpp"

namespace {

using namespace ne_test;

ne::Model compile_int8(const std::string& f, bool fusion, bool transpose = false, const std::string& src = "u8") {
  ne::CompileOptions o;
  o.precision = "int8";
  o.int8_src = src;
  o.calib_sets = 1;  // one small generated set: both compiles see the same calibration
  o.calib_batch = 2;
  o.calib_seq = 32;
  o.transpose = transpose;
  o.ln_quant_fusion = fusion;
  return ne::compile_onnx(fixture_dir(f) + "/model.onnx", o);
}

int quantizing_lns(const ne::Model& m) {
  int n = 0;
  for (auto& op : m.ops) n += op.type == "LayerNorm" && op.outputs.size() == 2;
  return n;
}

void expect_bitwise(const std::vector<ne::HostTensor>& a, const std::vector<ne::HostTensor>& b, const std::string& what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].shape, b[i].shape) << what;
    EXPECT_TRUE(all_finite(a[i])) << what << ": output " << i;  // two equal NaNs are bitwise equal
    EXPECT_TRUE(a[i].bytes == b[i].bytes) << what << ": output " << i << " differs (max abs diff "
                                          << max_abs_diff(a[i], b[i]) << ")";
  }
}

// Kernels chosen by threshold, not by a timing at load (NE_DISPATCH, executor/sparse_dispatch.cpp):
// two Executors of one model may otherwise pick a sparse kernel in one and oneDNN in the other,
// whose fp32 epilogues differ in the last bit, and these tests compare runs bitwise.
struct ScopedThresholdDispatch {
  std::string old;
  bool had = false;
  ScopedThresholdDispatch() {
    if (const char* e = std::getenv("NE_DISPATCH")) old = e, had = true;
    setenv("NE_DISPATCH", "threshold", 1);
  }
  ~ScopedThresholdDispatch() { had ? setenv("NE_DISPATCH", old.c_str(), 1) : unsetenv("NE_DISPATCH"); }
};

class LnQuantFusion : public ::testing::TestWithParam<std::string> {
 protected:
  ScopedThresholdDispatch dispatch_;
};
class LnQuantFusionIr : public ::testing::Test {
 protected:
  ScopedThresholdDispatch dispatch_;
};
INSTANTIATE_TEST_SUITE_P(Fixtures, LnQuantFusion, ::testing::Values("tiny", "tiny_1x4_90"));

TEST_P(LnQuantFusion, BitwiseEqualFewerQuantizeOps) {
  const std::string f = GetParam();
  NE_REQUIRE_FIXTURE(f);
  for (std::string src : {"u8", "s8"}) {
    SCOPED_TRACE(f + " " + src);
    const ne::Model off = compile_int8(f, false, false, src);
    const ne::Model on = compile_int8(f, true, false, src);
    // 2 layers: the embeddings' LayerNorm and layer 0's last one feed the next Q, K, V.
    EXPECT_EQ(count_of(off, "Quantize"), 2) << counts_str(off);
    EXPECT_EQ(count_of(on, "Quantize"), 0) << counts_str(on);
    EXPECT_EQ(quantizing_lns(off), 0);
    EXPECT_EQ(quantizing_lns(on), 2);
    EXPECT_EQ(on.ops.size() + 2, off.ops.size());
    for (auto& op : on.ops) {
      if (op.type != "LayerNorm" || op.outputs.size() != 2) continue;
      EXPECT_EQ(op.attr("quantize_dtype"), src) << op.name;
      int readers = 0;
      for (auto& ip : on.ops) readers += ip.type == "InnerProduct" && ip.inputs[0] == op.outputs[1];
      EXPECT_EQ(readers, 3) << op.name << ": Q, K, V read the quantized output";
      for (auto& ip : on.ops)
        if (ip.type == "InnerProduct" && ip.inputs[0] == op.outputs[1]) {
          EXPECT_EQ(ip.attr("src_scale"), op.attr("quantize_scale"));
          EXPECT_EQ(ip.attr("src_zero_point"), op.attr("quantize_zero_point"));
        }
    }
    auto in = fixture_inputs(f);
    const auto a = run_model(off, in), b = run_model(on, in);
    expect_bitwise(a, b, "fused vs unfused");
    // The pass alone, on the unfused IR, gives the fused one; its inverse gives the unfused one back.
    ne::Model p = off;
    EXPECT_EQ(ne::pass::fuse_layernorm_quantize(p), 2);
    ne::validate(p);
    EXPECT_EQ(counts_str(p), counts_str(on));
    EXPECT_EQ(ne::pass::fuse_layernorm_quantize(p), 0);  // nothing left to fuse
    expect_bitwise(run_model(p, in), a, "pass on the unfused IR");
    EXPECT_EQ(ne::pass::unfuse_layernorm_quantize(p), 2);
    ne::validate(p);
    EXPECT_EQ(counts_str(p), counts_str(off));
    expect_bitwise(run_model(p, in), a, "unfused again");
  }
}

// Written to disk and read back: the second output and its attributes survive the IR.
TEST_F(LnQuantFusionIr, IrRoundTrip) {
  NE_REQUIRE_FIXTURE("tiny_1x4_90");
  const ne::Model on = compile_int8("tiny_1x4_90", true);
  char dir[] = "/tmp/ne_lnq_XXXXXX";
  ASSERT_TRUE(mkdtemp(dir));
  ne::save_ir(on, dir);
  ne::Model back = ne::load_ir(std::string(dir) + "/conf.yaml", std::string(dir) + "/model.bin");
  EXPECT_EQ(quantizing_lns(back), 2);
  auto in = fixture_inputs("tiny_1x4_90");
  expect_bitwise(run_model(back, in), run_model(on, in), "read back");
  std::remove((std::string(dir) + "/conf.yaml").c_str());
  std::remove((std::string(dir) + "/model.bin").c_str());
  rmdir(dir);
}

// --no_ln_quant_fusion's other spelling: the environment variable.
TEST_F(LnQuantFusionIr, EnvironmentSwitch) {
  NE_REQUIRE_FIXTURE("tiny");
  setenv("NE_NO_LN_QUANT_FUSION", "1", 1);
  const ne::Model m = compile_int8("tiny", true);
  unsetenv("NE_NO_LN_QUANT_FUSION");
  EXPECT_EQ(quantizing_lns(m), 0);
  EXPECT_EQ(count_of(m, "Quantize"), 2);
}

// --transpose: the fusion runs after the rewrite and leaves the feature-major LayerNorms alone;
// transpose_encoder on a fused compiled IR unfuses first and gives the same model as on the
// unfused IR.
TEST_F(LnQuantFusionIr, TransposeKeepsWorking) {
  NE_REQUIRE_FIXTURE("tiny_1x4_90");
  auto in = fixture_inputs("tiny_1x4_90");
  const ne::Model t_on = compile_int8("tiny_1x4_90", true, true), t_off = compile_int8("tiny_1x4_90", false, true);
  EXPECT_EQ(count_of(t_on, "Reorder"), 2) << counts_str(t_on);
  for (auto& op : t_on.ops)
    if (op.type == "LayerNorm" && op.attr("transpose_mode") == "1,0") {
      EXPECT_EQ(op.outputs.size(), 1u) << op.name << ": feature-major LayerNorm fused";
    }
  expect_bitwise(run_model(t_on, in), run_model(t_off, in), "--transpose, fused vs unfused");
  // transpose_encoder on compiled (token-major, fused) IRs.
  const ne::Model on = compile_int8("tiny_1x4_90", true), off = compile_int8("tiny_1x4_90", false);
  ne::Model a = on, b = off;
  EXPECT_EQ(ne::pass::transpose_encoder(a, false), 2);
  EXPECT_EQ(ne::pass::transpose_encoder(b, false), 2);
  for (ne::Model* m : {&a, &b}) {
    ne::pass::remove_dead_ops(*m);
    ne::pass::finalize_inputs(*m);
    ne::validate(*m);
  }
  EXPECT_EQ(count_of(a, "Reorder"), 2) << counts_str(a);
  EXPECT_EQ(count_of(a, "LayerNorm"), count_of(on, "LayerNorm"));
  for (auto& op : a.ops)
    if (op.type == "LayerNorm" && op.outputs.size() == 2) {
      EXPECT_NE(op.attr("transpose_mode"), "1,0") << op.name;
    }
  const auto ra = run_model(a, in);
  expect_bitwise(ra, run_model(b, in), "transpose_encoder on the fused vs the unfused IR");
  // and close to the token-major model (the tolerance of tests/compile/test_transpose.cpp for
  // int8 static: one quantization step may flip after the reordered fp32 sums)
  EXPECT_LE(max_abs_diff(ra[0], run_model(on, in)[0]), 0.05);
}

// unshare_src_quantization and emulate_fp32 on a fused IR.
TEST_F(LnQuantFusionIr, UnshareAndEmulate) {
  NE_REQUIRE_FIXTURE("tiny");
  auto in = fixture_inputs("tiny");
  const ne::Model on = compile_int8("tiny", true), off = compile_int8("tiny", false);
  ne::Model u = on;
  EXPECT_EQ(ne::unshare_src_quantization(u), 2);
  ne::validate(u);
  EXPECT_EQ(quantizing_lns(u), 0);
  EXPECT_EQ(count_of(u, "Quantize"), 0);
  ne::Model u_off = off;
  EXPECT_EQ(ne::unshare_src_quantization(u_off), 2);
  EXPECT_EQ(counts_str(u), counts_str(u_off));
  // Shared again (and run twice: the second finds nothing), then fused: the compiled IR again.
  EXPECT_EQ(ne::share_src_quantization(u), 2);
  EXPECT_EQ(ne::share_src_quantization(u), 0);
  EXPECT_EQ(ne::pass::fuse_layernorm_quantize(u), 2);
  expect_bitwise(run_model(u, in), run_model(on, in), "unshared, shared, fused again");
  const ne::Model e_on = ne::emulate_fp32(on), e_off = ne::emulate_fp32(off);
  EXPECT_EQ(quantizing_lns(e_on), 0);
  expect_bitwise(run_model(e_on, in), run_model(e_off, in), "emulation of the fused vs the unfused IR");
}

}  // namespace
