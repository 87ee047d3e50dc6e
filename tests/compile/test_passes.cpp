// Each pass: run the graph before and after it in the executor — same outputs, fewer operators.
#include <onnx/onnx_pb.h>

#include <functional>

#include "compile/onnx_import.hpp"
#include "compile/passes/passes.hpp"
#include "helpers.hpp"

namespace {

using PassFn = std::function<int(ne::Model&)>;

ne::Model lowered(const std::string& fixture) {
  std::string p = ne_test::fixture_dir(fixture) + "/model.onnx";
  ne::CompileOptions o;
  o.fuse = false;
  ne::Model m = ne::lower_onnx(ne::read_onnx_model(p), p, o);
  ne::validate(m);
  return m;
}

// Applies `p` (then dead-op removal) to a copy of `before`; checks it rewrote something, that
// the result is smaller and valid, and that outputs match on the fixture's inputs.
ne::Model check_pass(const ne::Model& before, const PassFn& p, const std::string& fixture,
                     double tol = 2e-5) {
  ne::Model after = before;
  int n = p(after);
  ne::pass::remove_dead_ops(after);
  EXPECT_GT(n, 0) << "the pass rewrote nothing";
  EXPECT_LT(after.ops.size(), before.ops.size()) << ne_test::counts_str(after);
  ne::validate(after);
  auto in = ne_test::fixture_inputs(fixture);
  auto a = ne_test::run_model(before, in);
  auto b = ne_test::run_model(after, in);
  EXPECT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size() && i < b.size(); ++i)
    EXPECT_LE(ne_test::max_abs_diff(a[i], b[i]), tol) << "output " << i;
  return after;
}

#define NEED(f) NE_REQUIRE_FIXTURE(f)

ne::Model shapes_folded(const std::string& f) {
  ne::Model m = lowered(f);
  ne::pass::fold_constants(m);
  ne::pass::fold_shapes(m);
  ne::pass::remove_dead_ops(m);
  return m;
}

TEST(Passes, ConstantFolding) {
  // y = x @ Transpose(W) + (b * 2): the Transpose and the Mul fold away.
  onnx::ModelProto mp;
  mp.set_ir_version(8);
  mp.add_opset_import()->set_version(14);
  auto* g = mp.mutable_graph();
  auto io = [](onnx::ValueInfoProto* v, const char* n) {
    v->set_name(n);
    auto* tt = v->mutable_type()->mutable_tensor_type();
    tt->set_elem_type(onnx::TensorProto::FLOAT);
    tt->mutable_shape()->add_dim()->set_dim_value(2);
    tt->mutable_shape()->add_dim()->set_dim_value(3);
  };
  io(g->add_input(), "x");
  io(g->add_output(), "y");
  auto* w = g->add_initializer();
  w->set_name("W");
  w->set_data_type(onnx::TensorProto::FLOAT);
  w->add_dims(3);
  w->add_dims(3);
  for (int i = 0; i < 9; ++i) w->add_float_data(float(i) - 4);
  auto* b = g->add_initializer();
  b->set_name("b");
  b->set_data_type(onnx::TensorProto::FLOAT);
  b->add_dims(3);
  for (int i = 0; i < 3; ++i) b->add_float_data(float(i));
  auto node = [&](const char* t, std::vector<const char*> in, const char* out) {
    auto* n = g->add_node();
    n->set_op_type(t);
    n->set_name(out);
    for (auto i : in) n->add_input(i);
    n->add_output(out);
    return n;
  };
  node("Transpose", {"W"}, "Wt");
  auto* two = node("Constant", {}, "two");
  auto* a = two->add_attribute();
  a->set_name("value_float");
  a->set_type(onnx::AttributeProto::FLOAT);
  a->set_f(2.f);
  node("Mul", {"b", "two"}, "b2");
  node("MatMul", {"x", "Wt"}, "xw");
  node("Add", {"xw", "b2"}, "y");
  ne::CompileOptions o;
  ne::Model m = ne::lower_onnx(mp, "synthetic.onnx", o);
  ne::validate(m);
  ne::Model after = m;
  EXPECT_EQ(ne::pass::fold_constants(after), 2);
  ne::pass::remove_dead_ops(after);
  EXPECT_EQ(ne_test::count_of(after, "Reorder"), 0);
  EXPECT_LT(after.ops.size(), m.ops.size());
  std::map<std::string, ne::HostTensor> in = {
      {"x", ne::HostTensor::make<float>(ne::DType::fp32, {2, 3}, {1, 2, 3, -1, 0.5f, 2})}};
  auto r0 = ne_test::run_model(m, in), r1 = ne_test::run_model(after, in);
  ASSERT_EQ(r0.size(), 1u);
  EXPECT_LE(ne_test::max_abs_diff(r0[0], r1[0]), 1e-6);
}

TEST(Passes, ShapeFolding) {
  NEED("tiny");
  ne::Model m = lowered("tiny");
  ne::pass::fold_constants(m);
  ne::pass::remove_dead_ops(m);
  ne::Model after = check_pass(m, [](ne::Model& x) { return ne::pass::fold_shapes(x); }, "tiny");
  EXPECT_EQ(ne_test::count_of(after, "Concat"), 0) << ne_test::counts_str(after);
  EXPECT_LE(ne_test::count_of(after, "Shape"), 1) << ne_test::counts_str(after);
  for (auto& op : after.ops)
    if (op.type == "Reshape") EXPECT_EQ(op.inputs.size(), 1u) << op.name;
}

TEST(Passes, DeadOpRemoval) {
  NEED("tiny");
  ne::Model m = shapes_folded("tiny");
  // Add a dead chain and an Identity.
  ne::OpInfo dead;
  dead.name = "dead_softmax";
  dead.type = "Softmax";
  dead.inputs = {m.ops[m.ops.size() - 2].outputs[0]};
  dead.outputs = {"dead_out"};
  m.ops.insert(m.ops.end() - 1, dead);
  check_pass(m, [](ne::Model& x) { return ne::pass::remove_dead_ops(x); }, "tiny");
}

TEST(Passes, LayerNormFusion) {
  NEED("tiny");
  ne::Model after = check_pass(shapes_folded("tiny"),
                               [](ne::Model& x) { return ne::pass::fuse_layernorm(x); }, "tiny", 1e-4);
  EXPECT_EQ(ne_test::count_of(after, "LayerNorm"), 5);
  EXPECT_EQ(ne_test::count_of(after, "ReduceMean"), 0);
}

TEST(Passes, GeluErfFusion) {
  NEED("tiny");
  ne::Model after = check_pass(shapes_folded("tiny"),
                               [](ne::Model& x) { return ne::pass::fuse_gelu(x); }, "tiny", 1e-4);
  EXPECT_EQ(ne_test::count_of(after, "Gelu"), 2);
}

TEST(Passes, GeluTanhFusion) {
  NEED("tiny_gelu_tanh");
  ne::Model after = check_pass(shapes_folded("tiny_gelu_tanh"),
                               [](ne::Model& x) { return ne::pass::fuse_gelu(x); }, "tiny_gelu_tanh", 1e-4);
  EXPECT_EQ(ne_test::count_of(after, "Gelu"), 2);
  for (auto& op : after.ops)
    if (op.type == "Gelu") EXPECT_EQ(op.attr("algorithm"), "gelu_tanh");
}

ne::Model before_ip(const std::string& f) {
  ne::Model m = shapes_folded(f);
  ne::pass::fuse_layernorm(m);
  ne::pass::fuse_gelu(m);
  ne::pass::remove_dead_ops(m);
  return m;
}

TEST(Passes, InnerProductFusion) {
  NEED("tiny");
  ne::Model m = before_ip("tiny");
  for (auto& op : m.ops)
    if (op.type == "InnerProduct") op.type = "Matmul";  // start from plain Matmuls
  ne::Model after = check_pass(m, [](ne::Model& x) {
    int n = 0, k;
    while ((k = ne::pass::fuse_inner_product(x)) > 0) n += k;
    return n;
  }, "tiny", 1e-4);
  EXPECT_EQ(ne_test::count_of(after, "InnerProduct"), 12) << ne_test::counts_str(after);
  EXPECT_EQ(ne_test::count_of(after, "Gelu"), 0);
  int sums = 0, gelus = 0;
  for (auto& op : after.ops) {
    sums += op.attr("append_op").find("sum") != std::string::npos;
    gelus += op.attr("append_op").find("gelu_erf") != std::string::npos;
  }
  EXPECT_EQ(sums, 4);
  EXPECT_EQ(gelus, 2);
}

TEST(Passes, AttentionFusion) {
  NEED("tiny");
  ne::Model m = before_ip("tiny");
  ne::Model after = check_pass(m, [](ne::Model& x) {
    int n = 0, k;
    while ((k = ne::pass::fuse_attention(x)) > 0) n += k;
    return n;
  }, "tiny", 1e-4);
  EXPECT_EQ(ne_test::count_of(after, "Reorder"), 0) << ne_test::counts_str(after);
  EXPECT_EQ(ne_test::count_of(after, "Matmul"), 4);
  int masked = 0;
  for (auto& op : after.ops) masked += op.type == "Matmul" && op.inputs.size() == 3;
  EXPECT_EQ(masked, 2);
}

TEST(Passes, UnsqueezeFold) {
  NEED("tiny");
  ne::Model after = check_pass(shapes_folded("tiny"),
                               [](ne::Model& x) { return ne::pass::fold_unsqueeze(x); }, "tiny");
  EXPECT_EQ(ne_test::count_of(after, "Unsqueeze"), 0) << ne_test::counts_str(after);
}

TEST(Passes, EmbeddingFusion) {
  NEED("tiny");
  ne::Model after = check_pass(shapes_folded("tiny"),
                               [](ne::Model& x) { return ne::pass::fuse_embeddings(x); }, "tiny");
  EXPECT_EQ(ne_test::count_of(after, "Gather"), 2) << ne_test::counts_str(after);
}

}  // namespace
