// ONNX -> IR: the graph walk (schema checks, weights, graph inputs, nodes in dependency order,
// one error listing every unsupported node). Reading: onnx_read.cpp; one node: onnx_lower_node.cpp.
#include "compile/onnx_import.hpp"
#include "compile/onnx_import_internal.hpp"
#include "compile/ms_import.hpp"
#include "compile/passes/passes.hpp"

#include <functional>
#include <map>
#include <set>

namespace ne::onnx_internal {

std::vector<const onnx::NodeProto*> topo_order(const onnx::GraphProto& g,
                                               const std::set<std::string>& available) {
  std::set<std::string> have = available;
  std::vector<const onnx::NodeProto*> order, pending;
  for (auto& n : g.node()) pending.push_back(&n);
  bool progress = true;
  while (!pending.empty() && progress) {
    progress = false;
    std::vector<const onnx::NodeProto*> rest;
    for (auto* n : pending) {
      bool ready = true;
      for (auto& i : n->input())
        if (!i.empty() && !have.count(i)) ready = false;
      if (ready) {
        order.push_back(n);
        for (auto& o : n->output()) have.insert(o);
        progress = true;
      } else {
        rest.push_back(n);
      }
    }
    pending.swap(rest);
  }
  for (auto* n : pending) order.push_back(n);  // unresolved: validate() will name the tensor
  return order;
}

void Lowerer::run() {
  const onnx::GraphProto& g = mp.graph();
  for (auto& o : mp.opset_import())
    if (o.domain().empty() || o.domain() == "ai.onnx") opset = o.version();
  NE_CHECK(opset > 0, path, ": the model imports no default-domain opset");
  // Every default-domain node the compiler reads, checked against ONNX's schema first (rank
  // inference and the com.microsoft lowering read the graph's nodes too). Ops it does not read are
  // listed as unsupported below.
  for (auto& n : g.node())
    if ((n.domain().empty() || n.domain() == "ai.onnx") && is_lowered(n.op_type()))
      check_schema(n, node_name_of(n));
  m.name = g.name().empty() ? "model" : g.name();
  m.source = path;
  for (auto& o : g.output()) graph_outputs.insert(o.name());
  for (auto& n : g.node())
    if (n.op_type() == "Softmax" || n.op_type() == "LogSoftmax") {
      if (opset < 13) infer_ranks();
      break;
    }

  // Weights: initializers, then bound inputs.
  std::set<std::string> available;
  for (auto& init : g.initializer()) {
    add_weight(init.name(), onnx_tensor_value(init, dir, path + ": initializer", path));
    available.insert(init.name());
  }
  OpInfo input;
  input.name = "input_data";
  input.type = "Input";
  for (auto& vi : g.input()) {
    const std::string& name = vi.name();
    available.insert(name);
    if (m.is_weight(name) && !opt.bound_inputs.count(name)) continue;  // old-style initializer input
    auto b = opt.bound_inputs.find(name);
    if (b != opt.bound_inputs.end()) {
      add_weight(name, b->second);
      continue;
    }
    NE_CHECK(vi.type().has_tensor_type(), path, ": graph input '", name, "' is not a tensor");
    auto& tt = vi.type().tensor_type();
    TensorInfo ti;
    ti.name = name;
    if (!onnx_dtype(tt.elem_type(), &ti.dtype))
      unsupported[std::string("input dtype ") + onnx_dtype_name(tt.elem_type())].push_back(name);
    if (tt.has_shape()) {
      ti.has_shape = true;
      for (auto& d : tt.shape().dim()) ti.shape.push_back(d.has_dim_value() ? d.dim_value() : -1);
    }
    m.tensors[name] = ti;
    input.outputs.push_back(name);
  }
  m.ops.push_back(input);
  op_names.insert("input_data");

  // com.microsoft ops (ONNX Runtime's transformer optimizer): compile/ms_import.cpp.
  MsOpLowerer ms(m, g, [this](const std::string& nm, const std::string& type, std::vector<std::string> in,
                              std::vector<std::string> out) -> OpInfo& { return emit(nm, type, in, out); },
                 [this](const std::string& base) { return tmp(base); });
  for (auto* n : topo_order(g, available)) {
    const std::string node_name = node_name_of(*n);
    if (n->domain() == "com.microsoft" && pass::qop_contrib_ops().count(n->op_type())) {
      lower_qop_contrib(*n, node_name);  // QOperator int8 MatMuls: pass::import_qop
      continue;
    }
    if (!(n->domain().empty() || n->domain() == "ai.onnx")) {
      std::string why;
      if (MsOpLowerer::is_ms_domain(n->domain()) && ms.lower(*n, &why)) continue;
      unsupported[n->domain() + "::" + n->op_type() + (why.empty() ? "" : " (" + why + ")")].push_back(node_name);
      continue;
    }
    const std::string& t = n->op_type();
    if (!is_lowered(t)) {
      unsupported[t].push_back(node_name);
      continue;
    }
    std::string why;
    if (!lower_node(*n, &why)) unsupported[t + (why.empty() ? "" : " (" + why + ")")].push_back(node_name);
  }

  if (!unsupported.empty()) {
    std::string msg = path + ": unsupported ONNX operators (opset " + std::to_string(opset) + "):";
    for (auto& kv : unsupported) {
      msg += "\n  " + kv.first + ": ";
      for (size_t i = 0; i < kv.second.size(); ++i) msg += (i ? ", " : "") + kv.second[i];
    }
    fail(msg);
  }

  OpInfo output;
  output.name = "output_data";
  output.type = "Output";
  for (auto& o : g.output()) output.inputs.push_back(o.name());
  m.ops.push_back(output);
  op_names.insert("output_data");
}

}  // namespace ne::onnx_internal

namespace ne {

Model lower_onnx(const onnx::ModelProto& mp, const std::string& path, const CompileOptions& opt) {
  onnx_internal::Lowerer l(mp, path, opt);
  l.run();
  return std::move(l.m);
}

}  // namespace ne
