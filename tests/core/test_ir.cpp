// IR reader/writer and .npy: round trips and every class of bad input (each names the file or
// tensor and what was expected).
#include <gtest/gtest.h>

#include "common/ir.hpp"
#include "common/npy.hpp"
#include "tests/core/test_util.hpp"

using ne_test::tmp_dir;
using ne_test::write_file;

namespace {

const char* kConf = R"(model:
  name: tiny
  operator:
    input_data:
      type: Input
      output:
        x: {dtype: fp32, shape: [-1, 4]}
        w: {dtype: fp32, shape: [4, 2], location: [0, 32]}
    fc:
      type: InnerProduct
      input: {x: {}, w: {}}
      output: {y: {}}
      attr: {append_op: relu, perm: [0, 2, 1, 3]}
    output_data:
      type: Output
      input: {y: {}}
)";

std::string make_ir(const std::string& tag, const std::string& conf, size_t bin_bytes = 32) {
  std::string d = tmp_dir(tag);
  write_file(d + "/conf.yaml", conf);
  write_file(d + "/model.bin", std::string(bin_bytes, '\1'));
  return d;
}

void expect_error(const std::string& conf, size_t bin_bytes, const std::string& substr1,
                  const std::string& substr2 = "") {
  std::string d = make_ir("bad", conf, bin_bytes);
  try {
    ne::load_ir(d + "/conf.yaml", d + "/model.bin");
    FAIL() << "expected an error containing '" << substr1 << "'";
  } catch (const ne::Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find(substr1), std::string::npos) << m;
    if (!substr2.empty()) {
      EXPECT_NE(m.find(substr2), std::string::npos) << m;
    }
  }
}

std::string replace(std::string s, const std::string& a, const std::string& b) {
  auto p = s.find(a);
  EXPECT_NE(p, std::string::npos) << a;
  if (p != std::string::npos) s.replace(p, a.size(), b);
  return s;
}

}  // namespace

TEST(IR, LoadsNeuralEngineSchemaWithoutVersion) {
  std::string d = make_ir("ok", kConf);
  ne::Model m = ne::load_ir(d + "/conf.yaml", d + "/model.bin");
  EXPECT_EQ(m.name, "tiny");
  ASSERT_EQ(m.ops.size(), 3u);
  EXPECT_EQ(m.ops[1].type, "InnerProduct");
  EXPECT_EQ(m.ops[1].attr("append_op"), "relu");
  EXPECT_EQ(m.ops[1].attr("perm"), "0,2,1,3");  // lists become comma-separated strings
  EXPECT_EQ(m.ops[1].attr_ints("perm"), (std::vector<int64_t>{0, 2, 1, 3}));
  EXPECT_EQ(m.input_names(), std::vector<std::string>{"x"});
  EXPECT_EQ(m.output_names(), std::vector<std::string>{"y"});
  ASSERT_TRUE(m.is_weight("w"));
  EXPECT_EQ(m.find("x")->shape, (ne::Shape{-1, 4}));
  EXPECT_EQ(m.find("w")->data[0], 1);
}

TEST(IR, RoundTripAligned) {
  ne::Model m;
  m.name = "rt";
  ne::OpInfo in{"input_data", "Input", {}, {"x", "a", "b"}, {}};
  m.tensors["x"].name = "x";
  m.tensors["x"].dtype = ne::DType::int64;
  m.tensors["x"].shape = {-1, -1};
  m.tensors["x"].has_shape = true;
  m.add_weight<float>("a", ne::DType::fp32, {3}, {1.f, 2.f, 3.f});
  m.add_weight<int8_t>("b", ne::DType::s8, {5}, {1, -2, 3, -4, 5});
  ne::OpInfo op{"op1", "BinaryOp", {"x", "a"}, {"y"}, {{"algorithm", "add"}}};
  ne::OpInfo out{"output_data", "Output", {"y"}, {}, {}};
  m.ops = {in, op, out};
  std::string d = tmp_dir("rt");
  ne::save_ir(m, d);
  ne::Model r = ne::load_ir(d + "/conf.yaml", d + "/model.bin");
  EXPECT_EQ(r.version, 1);
  ASSERT_EQ(r.ops.size(), 3u);
  EXPECT_EQ(r.ops[1].attr("algorithm"), "add");
  EXPECT_EQ(r.find("x")->dtype, ne::DType::int64);
  const ne::TensorInfo* a = r.find("a");
  const ne::TensorInfo* b = r.find("b");
  ASSERT_TRUE(a && b);
  EXPECT_EQ(a->offset % 64, 0u);
  EXPECT_EQ(b->offset % 64, 0u);
  EXPECT_EQ(a->as<float>()[2], 3.f);
  EXPECT_EQ(b->as<int8_t>()[3], -4);
  EXPECT_EQ(r.find("b")->dtype, ne::DType::s8);
}

TEST(IR, UnalignedOffsetsAreRead) {
  std::string c = replace(kConf, "location: [0, 32]", "location: [3, 32]");
  std::string d = make_ir("unal", c, 40);
  ne::Model m = ne::load_ir(d + "/conf.yaml", d + "/model.bin");
  EXPECT_EQ(m.find("w")->offset, 3u);
}

TEST(IRBadInput, MissingFile) {
  try {
    ne::load_ir("/nonexistent/conf.yaml", "/nonexistent/model.bin");
    FAIL();
  } catch (const ne::Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/conf.yaml"), std::string::npos);
  }
}

TEST(IRBadInput, MissingBin) {
  std::string d = make_ir("nobin", kConf);
  try {
    ne::load_ir(d + "/conf.yaml", d + "/nothere.bin");
    FAIL();
  } catch (const ne::Error& e) {
    EXPECT_NE(std::string(e.what()).find("nothere.bin"), std::string::npos) << e.what();
  }
}

TEST(IRBadInput, YamlDoesNotParse) {
  expect_error("model:\n  operator: {a: [1, 2\n", 32, "conf.yaml", "YAML does not parse");
}
TEST(IRBadInput, NoModelKey) { expect_error("foo: 1\n", 32, "conf.yaml", "'model:'"); }
TEST(IRBadInput, OperatorWithoutType) {
  expect_error(replace(kConf, "      type: InnerProduct\n", ""), 32, "'fc'", "no 'type'");
}
TEST(IRBadInput, TensorNeverProduced) {
  expect_error(replace(kConf, "input: {x: {}, w: {}}", "input: {x: {}, ghost: {}}"), 32, "ghost",
               "no earlier operator produces");
}
TEST(IRBadInput, LocationPastEnd) {
  expect_error(replace(kConf, "location: [0, 32]", "location: [16, 32]"), 32, "'w'", "past the end");
}
TEST(IRBadInput, SizeDoesNotMatchShape) {
  expect_error(replace(kConf, "location: [0, 32]", "location: [0, 28]"), 32, "'w'",
               "does not match shape");
}
TEST(IRBadInput, TruncatedBin) { expect_error(kConf, 20, "model.bin", "truncated"); }
TEST(IRBadInput, UnknownDtype) {
  expect_error(replace(kConf, "x: {dtype: fp32", "x: {dtype: float128"), 32, "float128", "unknown dtype");
}
TEST(IRBadInput, HugeClaimedTensorOnTinyFile) {
  expect_error(replace(kConf, "shape: [4, 2], location: [0, 32]",
                       "shape: [1000000, 1000000], location: [0, 4000000000000]"),
               32, "'w'");
}
TEST(IRBadInput, DuplicateOperatorName) {
  std::string c = std::string(kConf);
  // YAML maps with duplicate keys: yaml-cpp keeps both; we must refuse.
  c = replace(c, "    output_data:", "    fc:\n      type: Softmax\n      input: {y: {}}\n      output: {z: {}}\n    output_data:");
  expect_error(c, 32, "'fc'", "twice");
}
TEST(IRBadInput, BadLocationForm) {
  expect_error(replace(kConf, "location: [0, 32]", "location: [0]"), 32, "'w'", "location");
}

TEST(Npy, RoundTripAndErrors) {
  std::string d = tmp_dir("npy");
  std::vector<int64_t> v = {1, 2, 3, 4, 5, 6};
  ne::write_npy(d + "/a.npy", ne::DType::int64, {2, 3}, v.data());
  ne::NpyArray a = ne::read_npy(d + "/a.npy");
  EXPECT_EQ(a.dtype, ne::DType::int64);
  EXPECT_EQ(a.shape, (ne::Shape{2, 3}));
  EXPECT_EQ(reinterpret_cast<int64_t*>(a.bytes.data())[5], 6);
  float s = 2.5f;
  ne::write_npy(d + "/s.npy", ne::DType::fp32, {}, &s);
  EXPECT_EQ(ne::read_npy(d + "/s.npy").shape.size(), 0u);

  write_file(d + "/bad.npy", "this is not numpy");
  EXPECT_THROW(ne::read_npy(d + "/bad.npy"), ne::Error);
  std::string full = ne_test::read_file(d + "/a.npy");
  write_file(d + "/trunc.npy", full.substr(0, full.size() - 8));
  try {
    ne::read_npy(d + "/trunc.npy");
    FAIL();
  } catch (const ne::Error& e) {
    EXPECT_NE(std::string(e.what()).find("trunc.npy"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("truncated"), std::string::npos);
  }
  EXPECT_THROW(ne::read_npy(d + "/missing.npy"), ne::Error);
}
