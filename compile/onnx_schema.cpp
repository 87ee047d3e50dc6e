// The ONNX ops the importer lowers, and each default-domain node it reads checked against
// ONNX's schema of it for the model's opset.
#include "compile/onnx_import_internal.hpp"
#include "compile/ms_import.hpp"

#include <onnx/defs/schema.h>

#include <algorithm>
#include <map>
#include <set>

namespace ne::onnx_internal {

const std::map<std::string, std::string>& binary_ops() {
  static const std::map<std::string, std::string> t = {
      {"Sub", "sub"},         {"Mul", "mul"},         {"Div", "div"},
      {"Pow", "pow"},         {"Equal", "equal"},     {"Greater", "greater"},
      {"GreaterOrEqual", "greater_equal"},            {"Less", "less"},
      {"LessOrEqual", "less_equal"},                  {"And", "and"},
      {"Or", "or"},           {"Xor", "xor"},         {"Mod", "mod"}};
  return t;
}
const std::map<std::string, std::string>& unary_ops() {
  static const std::map<std::string, std::string> t = {
      {"Sqrt", "sqrt"},   {"Exp", "exp"},           {"Log", "log"},       {"Erf", "erf"},
      {"Tanh", "tanh"},   {"Relu", "relu"},         {"Sigmoid", "sigmoid"}, {"Neg", "neg"},
      {"Abs", "abs"},     {"Reciprocal", "reciprocal"}, {"Floor", "floor"}, {"Ceil", "ceil"},
      {"Round", "round"}, {"Sin", "sin"},           {"Cos", "cos"},       {"Not", "not"},
      {"Sign", "sign"},   {"Softplus", "softplus"}, {"LeakyRelu", "leaky_relu"},
      {"Elu", "elu"},     {"HardSigmoid", "hard_sigmoid"}, {"Selu", "selu"}};
  return t;
}
const std::set<std::string>& simple_ops() {
  static const std::set<std::string> t = {
      "Add",      "MatMul",    "Gemm",      "Softmax",   "LayerNormalization", "Clip",
      "Where",    "Cast",      "Reshape",   "Flatten",   "Squeeze",  "Unsqueeze", "Transpose",
      "Concat",   "Split",     "Slice",     "Gather",    "Expand",   "Tile",      "Shape",
      "ConstantOfShape",       "Range",     "Identity",  "Dropout",  "ReduceMean", "ReduceSum",
      "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL2", "ReduceSumSquare", "ArgMax", "ArgMin",
      "Constant", "Sum",       "Max",       "Min",       "Mean",     "LogSoftmax", "Size",
      "CastLike", "ReduceL1",  "ReduceLogSum", "ReduceLogSumExp", "QuantizeLinear",
      "DequantizeLinear", "MatMulInteger", "DynamicQuantizeLinear", "QLinearMatMul", "CumSum"};
  return t;
}

bool is_lowered(const std::string& t) {
  return simple_ops().count(t) || binary_ops().count(t) || unary_ops().count(t);
}

std::string node_name_of(const onnx::NodeProto& n) {
  return n.name().empty() ? n.op_type() + "(" + (n.output_size() ? n.output(0) : "") + ")" : n.name();
}

// A default-domain node the compiler reads, against ONNX's schema of it for the model's opset
// (input and output counts, attribute names and types): before anything reads the node's inputs,
// outputs or attributes. An op the opset does not define yet (CastLike in an opset-13 model) or no
// longer defines is an error naming the node, the op and the opset, never a skipped check.
void Lowerer::check_schema(const onnx::NodeProto& n, const std::string& node_name) const {
  const std::string& t = n.op_type();
  auto where = [&] { return str_cat(path, ": node '", node_name, "' (", t, "): "); };
  const onnx::OpSchema* s = onnx::OpSchemaRegistry::Schema(t, int(std::min<int64_t>(opset, INT32_MAX)), "");
  if (!s) {
    const onnx::OpSchema* latest = onnx::OpSchemaRegistry::Schema(t, "");
    NE_CHECK(latest, where(), "not an operator of ai.onnx (no ONNX schema)");
    int since = latest->since_version();  // the earliest version: the first opset that finds one
    for (int v = int(opset) + 1; v <= latest->since_version(); ++v)
      if (const onnx::OpSchema* e = onnx::OpSchemaRegistry::Schema(t, v, "")) {
        since = e->since_version();
        break;
      }
    fail(where(), "not defined in opset ", opset, " of ai.onnx (since opset ", since, ")");
  }
  NE_CHECK(!s->deprecated(), where(), "deprecated in opset ", opset, " of ai.onnx (since opset ",
           s->since_version(), ")");
  try {
    s->Verify(n);
  } catch (const std::exception& e) {
    // A model newer than this build's ONNX library is checked against the newest schema it knows.
    const auto& range = onnx::OpSchemaRegistry::DomainToVersionRange::Instance().Map();
    auto it = range.find(onnx::ONNX_DOMAIN);
    std::string note;
    if (it != range.end() && opset > it->second.second)
      note = str_cat(" (checked against ", t, "-", s->since_version(), ": the model's opset ", opset,
                     " is newer than the ", it->second.second, " this build's ONNX library knows)");
    fail(where(), "does not match the ONNX schema of opset ", opset, ": ", e.what(), note);
  }
}

}  // namespace ne::onnx_internal

namespace ne {

std::vector<std::string> supported_onnx_ops() {
  std::set<std::string> s = onnx_internal::simple_ops();
  for (auto& kv : onnx_internal::binary_ops()) s.insert(kv.first);
  for (auto& kv : onnx_internal::unary_ops()) s.insert(kv.first);
  for (auto& t : MsOpLowerer::supported()) s.insert(t);
  return std::vector<std::string>(s.begin(), s.end());
}

}  // namespace ne
