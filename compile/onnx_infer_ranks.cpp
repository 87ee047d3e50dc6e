// Tensor ranks for the importer, from ONNX's shape inference and carried on through
// value-dependent ops: they decide how opset < 13 Softmax lowers.
#include "compile/onnx_import_internal.hpp"

#include <onnx/shape_inference/implementation.h>

#include <algorithm>
#include <map>
#include <set>

namespace ne::onnx_internal {

// Ranks of the graph's tensors from ONNX's own shape inference (on a copy without the big
// weights' bytes): they decide how opset < 13 Softmax lowers. A model shape inference cannot handle just
// leaves ranks unknown (the general lowering is then used).
void Lowerer::infer_ranks() {
  // The model without its initializers' bytes (copying a BERT-base's weights would cost ~440 MB),
  // then each initializer's name, type and dims, with the data only where it may be shape data.
  onnx::ModelProto copy;
  copy.set_ir_version(mp.ir_version());
  *copy.mutable_opset_import() = mp.opset_import();
  *copy.mutable_functions() = mp.functions();
  {
    const onnx::GraphProto& g = mp.graph();
    onnx::GraphProto* cg = copy.mutable_graph();
    cg->set_name(g.name());
    *cg->mutable_node() = g.node();
    *cg->mutable_input() = g.input();
    *cg->mutable_output() = g.output();
    *cg->mutable_value_info() = g.value_info();
  }
  for (auto& init : mp.graph().initializer()) {
    int64_t n = 1;
    for (auto d : init.dims()) n *= d;
    onnx::TensorProto* t = copy.mutable_graph()->add_initializer();
    if (n <= 64 && init.data_location() != onnx::TensorProto::EXTERNAL) {
      t->CopyFrom(init);  // small constants may be shape data; weights are not
      continue;
    }
    t->set_name(init.name());
    t->set_data_type(init.data_type());
    *t->mutable_dims() = init.dims();
  }
  try {
    onnx::shape_inference::InferShapes(copy);
  } catch (const std::exception&) {
  }
  auto take = [&](const onnx::ValueInfoProto& vi) {
    if (vi.type().has_tensor_type() && vi.type().tensor_type().has_shape())
      ranks[vi.name()] = vi.type().tensor_type().shape().dim_size();
  };
  for (auto& vi : copy.graph().value_info()) take(vi);
  for (auto& vi : copy.graph().input()) take(vi);
  for (auto& vi : copy.graph().output()) take(vi);
  for (auto& init : copy.graph().initializer()) ranks[init.name()] = init.dims_size();
  // ONNX's inference stops at ops whose output shape depends on values (opset-10 Slice with
  // computed starts, Reshape to a computed shape): carry ranks on through them. `len` holds
  // the lengths of 1-D shape-like tensors (Shape, Concat of them, constants).
  std::map<std::string, int> len;
  for (auto& init : copy.graph().initializer())
    if (init.dims_size() == 1) len[init.name()] = int(init.dims(0));
  auto R = [&](const std::string& t) { return rank_of(t); };
  auto L = [&](const std::string& t) {
    auto it = len.find(t);
    return it == len.end() ? -1 : it->second;
  };
  auto ints = [](const onnx::NodeProto& n, const char* name) -> int {
    for (auto& a : n.attribute())
      if (a.name() == name) return a.ints_size();
    return -1;
  };
  std::set<std::string> avail;
  for (auto& init : copy.graph().initializer()) avail.insert(init.name());
  for (auto& vi : copy.graph().input()) avail.insert(vi.name());
  // A node's k-th input, "" past its inputs (an older opset's form has fewer: Reshape-1).
  auto in_at = [](const onnx::NodeProto& n, int k) { return k < n.input_size() ? n.input(k) : std::string(); };
  for (auto* n : topo_order(copy.graph(), avail)) {
    const std::string& t = n->op_type();
    if (n->output_size() == 0) continue;
    const std::string& o = n->output(0);
    int r = -1;
    const int r0 = n->input_size() ? R(in_at(*n, 0)) : -1;
    if (t == "Constant") {
      for (auto& a : n->attribute())
        if (a.name() == "value") {
          r = a.t().dims_size();
          if (r == 1) len[o] = int(a.t().dims(0));
        } else if (a.name() == "value_ints" || a.name() == "value_floats") {
          r = 1;
          len[o] = a.name() == "value_ints" ? a.ints_size() : a.floats_size();
        } else if (a.name() == "value_int" || a.name() == "value_float") {
          r = 0;
        }
    } else if (t == "Shape") {
      r = 1;
      if (r0 >= 0) len[o] = r0;
    } else if (t == "Concat") {
      r = r0;
      int sum = 0;
      for (auto& i : n->input()) sum = (sum < 0 || L(i) < 0) ? -1 : sum + L(i);
      if (r == 1 && sum >= 0) len[o] = sum;
    } else if (t == "Unsqueeze") {
      int k = ints(*n, "axes");
      if (k < 0 && n->input_size() > 1) k = L(in_at(*n, 1));
      if (r0 >= 0 && k >= 0) r = r0 + k;
      if (r == 1 && r0 == 0 && k == 1) len[o] = 1;
    } else if (t == "Squeeze") {
      int k = ints(*n, "axes");
      if (k < 0 && n->input_size() > 1) k = L(in_at(*n, 1));
      if (r0 >= 0 && k >= 0) r = r0 - k;
    } else if (t == "Reshape" || t == "Expand" || t == "ConstantOfShape") {
      const int k = L(in_at(*n, t == "ConstantOfShape" ? 0 : 1));
      r = t == "Expand" ? (k >= 0 && r0 >= 0 ? std::max(k, r0) : -1) : k;
    } else if (t == "Gather") {
      const int ri = n->input_size() > 1 ? R(in_at(*n, 1)) : -1;
      if (r0 >= 0 && ri >= 0) r = r0 - 1 + ri;
      if (r == 1 && len.count(in_at(*n, 0)) && ri == 1) len[o] = L(in_at(*n, 1));
    } else if (t == "MatMul" || t == "Add" || t == "Sub" || t == "Mul" || t == "Div" || t == "Pow" ||
               t == "Equal" || t == "Where" || t == "And" || t == "Or" || t == "Less" || t == "Greater" ||
               t == "Max" || t == "Min" || t == "Sum") {
      r = 0;
      for (auto& i : n->input()) r = (r < 0 || R(i) < 0) ? -1 : std::max(r, R(i));
    } else if (t == "Gemm" || t == "Flatten") {
      r = 2;
    } else if (t == "Range") {
      r = 1;
    } else if (t.rfind("Reduce", 0) == 0) {
      int keep = 1;
      for (auto& a : n->attribute())
        if (a.name() == "keepdims") keep = int(a.i());
      const int k = ints(*n, "axes");
      r = keep ? r0 : (r0 >= 0 && k >= 0 ? r0 - k : -1);
    } else if (t == "Cast" || t == "Softmax" || t == "LogSoftmax" || t == "Erf" || t == "Sqrt" ||
               t == "Tanh" || t == "Relu" || t == "Sigmoid" || t == "Neg" || t == "Not" || t == "Identity" ||
               t == "Dropout" || t == "LayerNormalization" || t == "Transpose" || t == "Slice" ||
               t == "CumSum" || t == "Split" || t == "Exp" || t == "Log" || t == "Abs" || t == "Clip") {
      r = r0;
      if ((t == "Cast" || t == "Identity" || t == "Slice") && len.count(in_at(*n, 0)) && t != "Slice")
        len[o] = L(in_at(*n, 0));
    }
    for (auto& out : n->output())
      if (!out.empty() && !ranks.count(out) && r >= 0) ranks[out] = r;
  }
}

}  // namespace ne::onnx_internal
