// End to end on the generated fixtures: compile (fused), run, compare with the torch reference;
// the fused op list of a BERT layer; save_ir -> load_ir gives identical outputs.
#include <sys/stat.h>

#include "helpers.hpp"

namespace {

struct Case {
  const char* name;
};

class Fixture : public ::testing::TestWithParam<std::string> {};

void check_against_ref(const std::string& f, const ne::Model& m) {
  auto in = ne_test::fixture_inputs(f);
  auto out = ne_test::run_model(m, in);
  ASSERT_EQ(out.size(), 1u);
  auto ref = ne_test::to_host(ne::read_npy(ne_test::fixture_dir(f) + "/ref/last_hidden_state.npy"));
  EXPECT_LE(ne_test::max_abs_diff(out[0], ref), 1e-4) << f << ": " << ne_test::counts_str(m);
}

TEST_P(Fixture, MatchesReference) {
  const std::string f = GetParam();
  NE_REQUIRE_FIXTURE(f);
  ne::Model m = ne::compile_onnx(ne_test::fixture_dir(f) + "/model.onnx");
  check_against_ref(f, m);
  // No shape arithmetic left at run time.
  for (auto t : {"Concat", "Unsqueeze", "Squeeze", "Reorder", "ReduceMean", "Erf", "Tanh", "Pow", "Sqrt"})
    EXPECT_EQ(ne_test::count_of(m, t), 0) << f << " still has " << t << ": " << ne_test::counts_str(m);
  EXPECT_LE(ne_test::count_of(m, "Shape"), 1) << ne_test::counts_str(m);
}

INSTANTIATE_TEST_SUITE_P(Models, Fixture,
                         ::testing::Values("tiny", "tiny_notok", "distil_small", "heads16", "tiny_1x4_90",
                                           "tiny_4x1_90", "tiny_1x16_90", "tiny_opset17", "tiny_gelu_tanh",
                                           "tiny_extdata", "heads2_1x4_90"));

TEST(EndToEnd, UnfusedMatchesReference) {
  NE_REQUIRE_FIXTURE("tiny");
  ne::CompileOptions o;
  o.fuse = false;
  ne::Model m = ne::compile_onnx(ne_test::fixture_dir("tiny") + "/model.onnx", o);
  check_against_ref("tiny", m);
}

TEST(EndToEnd, TinyBertOpList) {
  NE_REQUIRE_FIXTURE("tiny");
  ne::Model m = ne::compile_onnx(ne_test::fixture_dir("tiny") + "/model.onnx");
  // 2 layers: 6 InnerProduct, 1 Attention (Matmul, Softmax, Matmul), 2 LayerNorm each; +
  // embeddings LayerNorm.
  EXPECT_EQ(ne_test::count_of(m, "InnerProduct"), 12) << ne_test::counts_str(m);
  EXPECT_EQ(ne_test::count_of(m, "Attention"), 2);
  EXPECT_EQ(ne_test::count_of(m, "Matmul"), 0);
  EXPECT_EQ(ne_test::count_of(m, "Softmax"), 0);
  EXPECT_EQ(ne_test::count_of(m, "LayerNorm"), 5);
  EXPECT_EQ(ne_test::count_of(m, "Gather"), 2);  // word + token type; positions are a Slice
  EXPECT_EQ(ne_test::count_of(m, "Gelu"), 0);     // fused into the InnerProduct
  EXPECT_EQ(ne_test::count_of(m, "BinaryAdd"), 2);  // embeddings
  std::cout << "tiny fused: " << ne_test::counts_str(m) << "\n";
}

TEST(EndToEnd, SaveLoadIdentical) {
  NE_REQUIRE_FIXTURE("tiny");
  ne::Model m = ne::compile_onnx(ne_test::fixture_dir("tiny") + "/model.onnx");
  std::string dir = ::testing::TempDir() + "ne_compile_saved";
  ne::save_ir(m, dir);
  ne::Model r = ne::load_ir(dir + "/conf.yaml", dir + "/model.bin");
  auto in = ne_test::fixture_inputs("tiny");
  auto a = ne_test::run_model(m, in), b = ne_test::run_model(r, in);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].shape, b[i].shape);
    EXPECT_TRUE(ne_test::all_finite(a[i])) << "output " << i;  // two equal NaNs are bitwise equal
    EXPECT_EQ(a[i].bytes, b[i].bytes) << "outputs differ after save/load";
  }
}

TEST(EndToEnd, OtherShapes) {
  // Batch and sequence follow the inputs: batch 1, seq 7 from the fixture's inputs' prefix.
  NE_REQUIRE_FIXTURE("tiny");
  ne::Model fused = ne::compile_onnx(ne_test::fixture_dir("tiny") + "/model.onnx");
  ne::CompileOptions o;
  o.fuse = false;
  ne::Model plain = ne::compile_onnx(ne_test::fixture_dir("tiny") + "/model.onnx", o);
  auto in = ne_test::fixture_inputs("tiny");
  std::map<std::string, ne::HostTensor> small;
  for (auto& kv : in) {
    ne::HostTensor h = kv.second;
    int64_t S = h.shape[1], s = 7;
    size_t es = ne::dtype_size(h.dtype);
    ne::HostTensor t;
    t.dtype = h.dtype;
    t.shape = {1, s};
    t.bytes.assign(h.bytes.begin() + long(S * es), h.bytes.begin() + long(S * es + s * es));  // row 1
    small[kv.first] = t;
  }
  auto a = ne_test::run_model(fused, small), b = ne_test::run_model(plain, small);
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].shape, (ne::Shape{1, 7, 64}));
  EXPECT_LE(ne_test::max_abs_diff(a[0], b[0]), 1e-4);
}

}  // namespace
