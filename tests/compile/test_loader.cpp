// Loader: errors that name the file, unsupported-op listing, external data, Constant forms.
#include <onnx/onnx_pb.h>
#include <sys/stat.h>

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

}  // namespace
