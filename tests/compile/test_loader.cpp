// Loader: errors that name the file, unsupported-op listing, external data, Constant forms.
#include <onnx/onnx_pb.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "helpers.hpp"

namespace {

std::string tmp_dir(const std::string& name) {
  std::string d = ::testing::TempDir() + "ne_compile_" + name;
  ::mkdir(d.c_str(), 0755);
  return d;
}

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary);
  f << bytes;
}

void add_io(onnx::ValueInfoProto* v, const std::string& name, int dims) {
  v->set_name(name);
  auto* tt = v->mutable_type()->mutable_tensor_type();
  tt->set_elem_type(onnx::TensorProto::FLOAT);
  for (int i = 0; i < dims; ++i) tt->mutable_shape()->add_dim()->set_dim_value(4);
}

onnx::ModelProto base_model() {
  onnx::ModelProto mp;
  mp.set_ir_version(8);
  mp.add_opset_import()->set_version(14);
  auto* g = mp.mutable_graph();
  g->set_name("t");
  add_io(g->add_input(), "x", 1);
  add_io(g->add_output(), "y", 1);
  return mp;
}

std::string save(const onnx::ModelProto& mp, const std::string& dir) {
  std::string p = dir + "/model.onnx";
  std::string s;
  mp.SerializeToString(&s);
  write_file(p, s);
  return p;
}

std::string error_of(const std::string& path) {
  try {
    ne::compile_onnx(path);
  } catch (const ne::Error& e) {
    return e.what();
  }
  return "";
}

TEST(Loader, NotOnnxNamesFile) {
  std::string p = tmp_dir("notonnx") + "/model.onnx";
  write_file(p, "this is not a protobuf \xff\xff\xff\xff");
  std::string e = error_of(p);
  EXPECT_NE(e.find(p), std::string::npos) << e;
  EXPECT_NE(e.find("not a valid ONNX"), std::string::npos) << e;
}

TEST(Loader, MissingAndEmptyFile) {
  std::string e = error_of("/nonexistent/model.onnx");
  EXPECT_NE(e.find("/nonexistent/model.onnx"), std::string::npos) << e;
  std::string p = tmp_dir("empty") + "/model.onnx";
  write_file(p, "");
  e = error_of(p);
  EXPECT_NE(e.find(p), std::string::npos) << e;
}

TEST(Loader, TruncatedNamesFile) {
  NE_REQUIRE_FIXTURE("tiny");
  std::ifstream f(ne_test::fixture_dir("tiny") + "/model.onnx", std::ios::binary);
  std::string all((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  std::string p = tmp_dir("trunc") + "/model.onnx";
  write_file(p, all.substr(0, all.size() / 2));
  std::string e = error_of(p);
  EXPECT_NE(e.find(p), std::string::npos) << e;
}

TEST(Loader, UnsupportedOpsListedOnce) {
  auto mp = base_model();
  auto* g = mp.mutable_graph();
  auto* n1 = g->add_node();
  n1->set_op_type("FooOp");
  n1->set_name("foo_a");
  n1->add_input("x");
  n1->add_output("a");
  auto* n2 = g->add_node();
  n2->set_op_type("LSTM");
  n2->set_name("lstm_1");
  n2->add_input("a");
  n2->add_output("b");
  auto* n3 = g->add_node();
  n3->set_op_type("FooOp");
  n3->set_name("foo_b");
  n3->add_input("b");
  n3->add_output("y");
  std::string e = error_of(save(mp, tmp_dir("unsup")));
  for (auto s : {"unsupported", "FooOp", "foo_a", "foo_b", "LSTM", "lstm_1"})
    EXPECT_NE(e.find(s), std::string::npos) << s << " missing in: " << e;
  EXPECT_EQ(e.find("FooOp"), e.rfind("FooOp")) << "FooOp listed once: " << e;
}

void external_init(onnx::ModelProto* mp, const std::string& loc) {
  auto* g = mp->mutable_graph();
  auto* t = g->add_initializer();
  t->set_name("w");
  t->set_data_type(onnx::TensorProto::FLOAT);
  t->add_dims(4);
  t->set_data_location(onnx::TensorProto::EXTERNAL);
  auto* kv = t->add_external_data();
  kv->set_key("location");
  kv->set_value(loc);
  auto* n = g->add_node();
  n->set_op_type("Add");
  n->set_name("add");
  n->add_input("x");
  n->add_input("w");
  n->add_output("y");
}

TEST(Loader, ExternalDataPathEscapeRejected) {
  std::string d = tmp_dir("escape");
  write_file(d + "/../ne_evil.bin", std::string(16, '\0'));
  for (std::string loc : {"../ne_evil.bin", "sub/../../ne_evil.bin", "/etc/passwd"}) {
    auto mp = base_model();
    external_init(&mp, loc);
    std::string e = error_of(save(mp, d));
    EXPECT_NE(e.find(loc), std::string::npos) << e;
    EXPECT_TRUE(e.find("..") != std::string::npos || e.find("absolute") != std::string::npos) << e;
  }
}

TEST(Loader, ExternalDataReadAndChecked) {
  std::string d = tmp_dir("ext");
  float w[4] = {1, 2, 3, 4};
  write_file(d + "/w.bin", std::string(reinterpret_cast<char*>(w), 16));
  auto mp = base_model();
  external_init(&mp, "w.bin");
  ne::Model m = ne::compile_onnx(save(mp, d));
  auto out = ne_test::run_model(m, {{"x", ne::HostTensor::make<float>(ne::DType::fp32, {4}, {1, 1, 1, 1})}});
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].ptr<float>()[3], 5.f);
  // Too short a file is an error naming the tensor.
  write_file(d + "/w.bin", std::string(8, '\0'));
  std::string e = error_of(d + "/model.onnx");
  EXPECT_NE(e.find("'w'"), std::string::npos) << e;
}

TEST(Loader, ConstantForms) {
  auto mp = base_model();
  auto* g = mp.mutable_graph();
  auto* c = g->add_node();
  c->set_op_type("Constant");
  c->add_output("c");
  auto* a = c->add_attribute();
  a->set_name("value_floats");
  a->set_type(onnx::AttributeProto::FLOATS);
  for (float f : {10.f, 20.f, 30.f, 40.f}) a->add_floats(f);
  auto* s = g->add_node();
  s->set_op_type("Constant");
  s->add_output("s");
  auto* b = s->add_attribute();
  b->set_name("value_float");
  b->set_type(onnx::AttributeProto::FLOAT);
  b->set_f(2.f);
  auto* n = g->add_node();
  n->set_op_type("Mul");
  n->add_input("x");
  n->add_input("s");
  n->add_output("xs");
  auto* n2 = g->add_node();
  n2->set_op_type("Add");
  n2->add_input("xs");
  n2->add_input("c");
  n2->add_output("y");
  ne::CompileOptions o;
  o.fuse = false;
  ne::Model m = ne::compile_onnx(save(mp, tmp_dir("const")), o);
  auto out = ne_test::run_model(m, {{"x", ne::HostTensor::make<float>(ne::DType::fp32, {4}, {1, 2, 3, 4})}});
  ASSERT_EQ(out.size(), 1u);
  std::vector<float> want = {12, 24, 36, 48};
  for (int i = 0; i < 4; ++i) EXPECT_EQ(out[0].ptr<float>()[i], want[i]);
}

TEST(Loader, RefusesUnknownPrecisions) {
  // int8 / int8_dynamic / bf16 are compiled (tests/quant); anything else is refused by name.
  ne::CompileOptions o;
  o.precision = "int4";
  try {
    ne::compile_onnx("whatever.onnx", o);
    FAIL();
  } catch (const ne::Error& e) {
    EXPECT_NE(std::string(e.what()).find("int4"), std::string::npos);
  }
}

TEST(Loader, ShapeInputsAndBinding) {
  // Reshape(x, shape) with `shape` a graph input: reported by onnx_shape_inputs, bindable.
  auto mp = base_model();
  auto* g = mp.mutable_graph();
  auto* si = g->add_input();
  si->set_name("shape");
  si->mutable_type()->mutable_tensor_type()->set_elem_type(onnx::TensorProto::INT64);
  g->mutable_output(0)->mutable_type()->mutable_tensor_type()->clear_shape();
  auto* n = g->add_node();
  n->set_op_type("Reshape");
  n->add_input("x");
  n->add_input("shape");
  n->add_output("y");
  std::string p = save(mp, tmp_dir("bind"));
  auto names = ne::onnx_shape_inputs(p);
  ASSERT_EQ(names, std::vector<std::string>{"shape"});
  ne::CompileOptions o;
  ne::BoundTensor b;
  b.dtype = ne::DType::int64;
  b.shape = {2};
  std::vector<int64_t> v = {2, 2};
  b.bytes.assign(reinterpret_cast<uint8_t*>(v.data()), reinterpret_cast<uint8_t*>(v.data()) + 16);
  o.bound_inputs["shape"] = b;
  ne::Model m = ne::compile_onnx(p, o);
  EXPECT_EQ(m.input_names(), std::vector<std::string>{"x"});
  auto out = ne_test::run_model(m, {{"x", ne::HostTensor::make<float>(ne::DType::fp32, {4}, {1, 2, 3, 4})}});
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].shape, (ne::Shape{2, 2}));
}

// ------------------------------------------------------------------ ONNX schema check (issue 24)

onnx::NodeProto* add_node(onnx::ModelProto* mp, const std::string& type, const std::string& name,
                          const std::vector<std::string>& ins, const std::vector<std::string>& outs) {
  auto* n = mp->mutable_graph()->add_node();
  n->set_op_type(type);
  if (!name.empty()) n->set_name(name);
  for (auto& i : ins) n->add_input(i);
  for (auto& o : outs) n->add_output(o);
  return n;
}

void add_ints(onnx::NodeProto* n, const std::string& name, const std::vector<int64_t>& v) {
  auto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INTS);
  for (auto x : v) a->add_ints(x);
}

onnx::ModelProto model_with_opset(int opset) {
  auto mp = base_model();
  mp.mutable_opset_import(0)->set_version(opset);
  return mp;
}

// An op the model's opset does not define yet used to skip the schema check (the schema lookup for
// (op, opset) is null); it is an error naming the node, the op, the opset and the op's first opset.
TEST(Loader, OpNewerThanTheOpsetIsAnErrorNamingNodeOpAndOpset) {
  {
    auto mp = model_with_opset(13);
    add_node(&mp, "CastLike", "cl", {"x", "x"}, {"y"});
    std::string p = save(mp, tmp_dir("castlike13"));
    std::string e = error_of(p);
    EXPECT_NE(e.find(p), std::string::npos) << e;
    EXPECT_NE(e.find("node 'cl' (CastLike): not defined in opset 13 of ai.onnx (since opset 15)"), std::string::npos)
        << e;
  }
  {
    auto mp = model_with_opset(14);
    add_node(&mp, "LayerNormalization", "ln", {"x", "x"}, {"y"});
    std::string e = error_of(save(mp, tmp_dir("ln14")));
    EXPECT_NE(e.find("node 'ln' (LayerNormalization): not defined in opset 14 of ai.onnx (since opset 17)"),
              std::string::npos) << e;
  }
  {  // an unnamed node is named by its type and first output
    auto mp = model_with_opset(13);
    add_node(&mp, "CastLike", "", {"x", "x"}, {"y"});
    std::string e = error_of(save(mp, tmp_dir("castlike13u")));
    EXPECT_NE(e.find("node 'CastLike(y)' (CastLike): not defined in opset 13"), std::string::npos) << e;
  }
  {  // the control: CastLike where the opset defines it compiles and runs
    auto mp = model_with_opset(15);
    add_node(&mp, "CastLike", "cl", {"x", "x"}, {"y"});
    ne::Model m = ne::compile_onnx(save(mp, tmp_dir("castlike15")));
    auto out = ne_test::run_model(m, {{"x", ne::HostTensor::make<float>(ne::DType::fp32, {4}, {1, 2, 3, 4})}});
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0].ptr<float>()[3], 4.f);
  }
}

// CastLike with one input read in[1] past the node's inputs (its opset skipped the check).
TEST(Loader, CastLikeWithOneInputIsAnErrorNamingTheNode) {
  for (int opset : {13, 15, 17}) {
    auto mp = model_with_opset(opset);
    add_node(&mp, "CastLike", "cl", {"x"}, {"y"});
    std::string e = error_of(save(mp, tmp_dir("castlike1_" + std::to_string(opset))));
    EXPECT_NE(e.find("node 'cl' (CastLike)"), std::string::npos) << e;
    if (opset >= 15) EXPECT_NE(e.find("does not match the ONNX schema of opset " + std::to_string(opset)),
                               std::string::npos) << e;
  }
}

// Each op the compiler reads, with fewer inputs than it reads: a schema error naming the node, never
// an out-of-range read (the schema check runs for every node before any is read; rank inference,
// which runs first for opset < 13 models with a Softmax, included).
TEST(Loader, TooFewInputsIsAnErrorForEveryOpRead) {
  struct C { const char* op; int opset; int inputs; };
  for (C c : {C{"MatMul", 14, 1}, C{"Gemm", 14, 1}, C{"Reshape", 14, 1}, C{"Expand", 14, 1}, C{"Where", 14, 2},
              C{"Gather", 14, 1}, C{"Slice", 14, 2}, C{"Concat", 14, 0}, C{"Identity", 14, 0}, C{"Add", 14, 1},
              C{"Sub", 14, 1}, C{"Sqrt", 14, 0}, C{"Softmax", 14, 0}, C{"QuantizeLinear", 14, 1},
              C{"DequantizeLinear", 14, 1}, C{"MatMulInteger", 14, 1}, C{"QLinearMatMul", 14, 7},
              C{"LayerNormalization", 17, 1}, C{"CastLike", 15, 1}, C{"Range", 14, 2}, C{"Tile", 14, 1},
              C{"Reshape", 11, 1}, C{"Expand", 11, 1}, C{"Unsqueeze", 14, 1}, C{"CumSum", 14, 1},
              C{"Sum", 14, 0}, C{"Mean", 14, 0}, C{"Max", 14, 0}}) {
    auto mp = model_with_opset(c.opset);
    std::vector<std::string> ins(size_t(c.inputs), "x");
    add_node(&mp, c.op, "n1", ins, {"h"});
    add_node(&mp, "Softmax", "sm", {"h"}, {"y"});  // opset < 13: rank inference runs first
    std::string e = error_of(save(mp, tmp_dir(std::string("few_") + c.op + std::to_string(c.opset))));
    EXPECT_NE(e.find(std::string("node 'n1' (") + c.op + "): does not match the ONNX schema of opset " +
                     std::to_string(c.opset)), std::string::npos) << c.op << ": " << e;
  }
}

// Older opsets' attribute forms of ops the compiler lowers in their input form: listed as unsupported
// (they were lowered as the input form, the attributes dropped), never misread or read past.
TEST(Loader, LegacyAttributeFormsAreListedAsUnsupported) {
  {
    auto mp = model_with_opset(9);
    auto* n = add_node(&mp, "Slice", "sl", {"x"}, {"y"});
    add_ints(n, "starts", {0});
    add_ints(n, "ends", {2});
    std::string e = error_of(save(mp, tmp_dir("slice1")));
    EXPECT_NE(e.find("Slice ('starts' / 'ends' attributes (opset < 10)): sl"), std::string::npos) << e;
  }
  {  // Reshape-1 (one input) before a Softmax at opset 4: rank inference must not read input 1
    auto mp = model_with_opset(4);
    auto* n = add_node(&mp, "Reshape", "rs", {"x"}, {"h"});
    add_ints(n, "shape", {2, 2});
    add_node(&mp, "Softmax", "sm", {"h"}, {"y"});
    std::string e = error_of(save(mp, tmp_dir("reshape1")));
    EXPECT_NE(e.find("Reshape ('shape' attribute (opset < 5)): rs"), std::string::npos) << e;
  }
}

// ------------------------------------------------------- external data through symlinks (issue 24)

namespace fs = std::filesystem;

std::string floats_bytes(std::vector<float> v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float));
}

fs::path fresh_dir(const std::string& name) {
  fs::path d = fs::path(::testing::TempDir()) / ("ne_compile_" + name);
  fs::remove_all(d);
  fs::create_directories(d);
  return fs::canonical(d);
}

TEST(Loader, ExternalDataResolvingOutsideTheModelDirectoryIsRefused) {
  const fs::path root = fresh_dir("ext_symlink"), m = root / "m";
  fs::create_directories(m / "dir");
  write_file((root / "outside.bin").string(), floats_bytes({9, 9, 9, 9}));
  write_file((m / "inside.bin").string(), floats_bytes({1, 2, 3, 4}));
  fs::create_symlink("inside.bin", m / "alias.bin");                  // stays inside: fine
  fs::create_symlink("../outside.bin", m / "escape.bin");             // a file outside
  fs::create_symlink(root / "outside.bin", m / "absolute.bin");       // absolute target outside
  fs::create_symlink("..", m / "up");                                 // a directory outside
  fs::create_symlink("escape.bin", m / "chain.bin");                  // a link to a link outside
  for (std::string loc : {"escape.bin", "absolute.bin", "up/outside.bin", "chain.bin"}) {
    auto mp = base_model();
    external_init(&mp, loc);
    std::string e = error_of(save(mp, m.string()));
    EXPECT_NE(e.find("tensor 'w'"), std::string::npos) << loc << ": " << e;
    EXPECT_NE(e.find("location '" + loc + "' resolves to '" + (root / "outside.bin").string() + "'"),
              std::string::npos) << loc << ": " << e;
    EXPECT_NE(e.find("outside the model's directory '" + m.string() + "'"), std::string::npos) << loc << ": " << e;
  }
  {
    auto mp = base_model();
    external_init(&mp, "dir");
    std::string e = error_of(save(mp, m.string()));
    EXPECT_NE(e.find("is not a regular file"), std::string::npos) << e;
  }
  for (std::string loc : {"inside.bin", "alias.bin", "./alias.bin"}) {
    auto mp = base_model();
    external_init(&mp, loc);
    ne::Model model = ne::compile_onnx(save(mp, m.string()));
    auto out = ne_test::run_model(model, {{"x", ne::HostTensor::make<float>(ne::DType::fp32, {4}, {1, 1, 1, 1})}});
    ASSERT_EQ(out.size(), 1u) << loc;
    EXPECT_EQ(out[0].ptr<float>()[3], 5.f) << loc;
  }
}

// Hugging Face's hub cache links a snapshot's files into blobs/: the data resolves inside the
// directory the model file itself resolves to, which is accepted; anything else still is not.
TEST(Loader, ExternalDataOfALinkedModelMayResolveBesideTheModelFile) {
  const fs::path root = fresh_dir("ext_hub");
  fs::create_directories(root / "blobs");
  fs::create_directories(root / "snapshots" / "rev");
  write_file((root / "blobs" / "data").string(), floats_bytes({1, 2, 3, 4}));
  write_file((root / "outside.bin").string(), floats_bytes({9, 9, 9, 9}));
  const fs::path snap = root / "snapshots" / "rev";
  fs::create_symlink("../../blobs/data", snap / "w.bin");
  fs::create_symlink("../../outside.bin", snap / "o.bin");
  for (std::string loc : {"w.bin", "o.bin"}) {
    auto mp = base_model();
    external_init(&mp, loc);
    std::string bytes;
    mp.SerializeToString(&bytes);
    write_file((root / "blobs" / ("model_" + loc)).string(), bytes);
    fs::remove(snap / "model.onnx");
    fs::create_symlink("../../blobs/model_" + loc, snap / "model.onnx");
    const std::string p = (snap / "model.onnx").string();
    if (loc == "w.bin") {
      ne::Model model = ne::compile_onnx(p);
      auto out = ne_test::run_model(model, {{"x", ne::HostTensor::make<float>(ne::DType::fp32, {4}, {1, 1, 1, 1})}});
      ASSERT_EQ(out.size(), 1u);
      EXPECT_EQ(out[0].ptr<float>()[3], 5.f);
    } else {
      std::string e = error_of(p);
      EXPECT_NE(e.find("outside the model's directory"), std::string::npos) << e;
    }
  }
}

// The fixture with external data still loads (its data file sits beside it).
TEST(Loader, ExternalDataFixtureLoads) {
  NE_REQUIRE_FIXTURE("tiny_extdata");
  EXPECT_NO_THROW(ne::compile_onnx(ne_test::fixture_dir("tiny_extdata") + "/model.onnx"));
}

}  // namespace
