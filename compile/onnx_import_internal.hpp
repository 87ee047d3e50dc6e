// Internal to compile/onnx_*.cpp: what the ONNX importer's pieces share. The importer is
//   onnx_read.cpp        model file, initializers, TensorProto values, external data
//   onnx_schema.cpp      the ops it lowers, and each node checked against ONNX's schema
//   onnx_import.cpp      the graph walk (weights, graph inputs, nodes in order, unsupported list)
//   onnx_lower_node.cpp  one node -> IR ops
//   onnx_infer_ranks.cpp tensor ranks for opset < 13 Softmax
#pragma once
#include <onnx/onnx_pb.h>

#include <map>
#include <set>
#include <string>
#include <vector>

#include "compile/onnx_import.hpp"

namespace ne::onnx_internal {

// The directory part of a path ("." for a bare file name).
std::string dir_of(const std::string& p);

// ONNX TensorProto data type name ("FLOAT16"), or the number if ONNX has no name for it.
const char* onnx_dtype_name(int t);

// Default-domain ops lowered: ONNX name -> IR BinaryOp / UnaryOp algorithm, and the rest.
const std::map<std::string, std::string>& binary_ops();
const std::map<std::string, std::string>& unary_ops();
const std::set<std::string>& simple_ops();
bool is_lowered(const std::string& t);

// A node's name in messages: its name, or "Type(first output)" for an unnamed node.
std::string node_name_of(const onnx::NodeProto& n);

// The graph's nodes in an order where each one's inputs are in `available` or made before it;
// nodes whose inputs are never made come last (validate() names the tensor).
std::vector<const onnx::NodeProto*> topo_order(const onnx::GraphProto& g,
                                               const std::set<std::string>& available);

// One ONNX model being lowered to a Model.
struct Lowerer {
  const onnx::ModelProto& mp;
  std::string path, dir;
  const CompileOptions& opt;
  int64_t opset = 0;
  Model m;
  std::set<std::string> op_names;
  std::map<std::string, std::vector<std::string>> unsupported;  // "Type (why)" -> node names
  std::map<std::string, int> ranks;  // tensor ranks known from ONNX shape inference
  int tmp_counter = 0;
  // Identity of a weight (torch's reads of a shared parameter: ALBERT's one layer used by every
  // layer) -> its readers read the weight itself, so it is stored once (not folded into copies).
  std::map<std::string, std::string> weight_alias;
  std::set<std::string> graph_outputs;

  Lowerer(const onnx::ModelProto& mp_, const std::string& p, const CompileOptions& o)
      : mp(mp_), path(p), dir(dir_of(p)), opt(o) {}

  std::string unique_op_name(std::string n, const std::string& type) {
    if (n.empty()) n = type;
    std::string base = n;
    for (int i = 1; op_names.count(n) || n == "input_data" || n == "output_data"; ++i)
      n = base + "_" + std::to_string(i);
    op_names.insert(n);
    return n;
  }
  std::string tmp(const std::string& base) { return base + "__ne" + std::to_string(tmp_counter++); }

  const std::string& resolve(const std::string& t) const {
    auto it = weight_alias.find(t);
    return it == weight_alias.end() ? t : it->second;
  }
  // Identity (or inference Dropout) of in -> out: an alias when `in` is a weight.
  void identity(const std::string& nm, const std::string& in, const std::string& out) {
    if (m.is_weight(in) && !graph_outputs.count(out)) weight_alias[out] = resolve(in);
    else emit(nm, "Identity", {in}, {out});
  }

  OpInfo& emit(const std::string& name, const std::string& type, std::vector<std::string> in,
               std::vector<std::string> out) {
    for (auto& i : in) i = resolve(i);
    while (!in.empty() && in.back().empty()) in.pop_back();  // trailing optional inputs
    OpInfo op;
    op.name = unique_op_name(name, type);
    op.type = type;
    op.inputs = std::move(in);
    op.outputs = std::move(out);
    m.ops.push_back(std::move(op));
    return m.ops.back();
  }

  void add_weight(const std::string& name, const BoundTensor& b) {
    put_weight(m, name, b.dtype, b.shape, b.bytes);
  }
  template <class T>
  std::string const_tensor(const std::string& base, DType dt, const Shape& s, std::vector<T> v) {
    std::string n = tmp(base);
    m.add_weight(n, dt, s, v);
    return n;
  }

  // attributes
  std::map<std::string, const onnx::AttributeProto*> attrs_of(const onnx::NodeProto& n) {
    std::map<std::string, const onnx::AttributeProto*> a;
    for (auto& x : n.attribute()) a[x.name()] = &x;
    return a;
  }

  bool lower_node(const onnx::NodeProto& n, std::string* why);
  void check_schema(const onnx::NodeProto& n, const std::string& node_name) const;
  void infer_ranks();
  int rank_of(const std::string& t) const {
    auto it = ranks.find(t);
    return it == ranks.end() ? -1 : it->second;
  }
  // Softmax (log: LogSoftmax) with opset < 13 semantics: the input is coerced to 2-D at `axis`
  // ([d0..d(axis-1), d(axis)..d(r-1)]) and normalised per row. On the last axis that is the
  // per-axis softmax of opset 13 (emitted as one Softmax); otherwise Flatten(axis) -> Softmax
  // (last axis) -> Reshape to the input's shape.
  void lower_softmax_v1(const std::string& nm, const std::string& x, const std::string& y,
                        int64_t axis, bool log);
  void lower_qop_contrib(const onnx::NodeProto& n, const std::string& node_name);
  void run();
};

}  // namespace ne::onnx_internal
