// Common subexpressions: an operator of a pure, cheap type whose type, inputs and attributes
// equal an earlier one's computes the same tensors; its readers read the earlier op's outputs
// and it becomes dead. Exports repeat such work per layer: DistilBERT builds its attention mask
// (Reshape of mask == 0, then the additive Where) in every layer; position / shape arithmetic
// is repeated per use. Only ops listed below (no state, no weights of their own) are merged.
#include <map>
#include <set>
#include <tuple>

#include "compile/passes/graph.hpp"
#include "compile/passes/passes.hpp"

namespace ne {
namespace pass {

int eliminate_common_subexpressions(Model& m) {
  static const std::set<std::string> pure = {"Reshape", "Where", "BinaryOp", "BinaryAdd", "Cast",
                                             "Shape",   "Gather", "Concat", "Slice",    "UnaryOp",
                                             "Unsqueeze", "Squeeze", "Expand", "Reorder", "Range",
                                             "ConstantOfShape", "CumSum"};
  Graph g(m);
  std::map<std::tuple<std::string, std::vector<std::string>, std::vector<std::pair<std::string, std::string>>, size_t>,
           size_t>
      seen;
  std::map<std::string, std::string> rename;
  // Small constants (<= 64 bytes) by value: two layers' copies of one fill value or shape are
  // the same input for the comparison (the op keeps reading its own).
  std::map<std::tuple<int, Shape, std::string>, std::string> by_value;
  auto canonical = [&](const std::string& t) -> std::string {
    const TensorInfo* w = m.find(t);
    if (!w || !w->is_weight || !w->data || w->nbytes > 64) return t;
    auto key = std::make_tuple(int(w->dtype), w->shape, std::string(reinterpret_cast<const char*>(w->data), w->nbytes));
    return by_value.emplace(key, t).first->second;
  };
  int n = 0;
  for (size_t k = 0; k < m.ops.size(); ++k) {
    OpInfo& op = m.ops[k];
    for (auto& i : op.inputs) {
      auto r = rename.find(i);
      if (r != rename.end()) i = r->second;
    }
    if (!pure.count(op.type) || op.outputs.empty()) continue;
    std::vector<std::string> ins;
    for (auto& i : op.inputs) ins.push_back(canonical(i));
    bool output = false;
    for (auto& o : op.outputs) output |= g.is_output(o);
    if (output) continue;
    auto key = std::make_tuple(op.type, ins, op.attrs, op.outputs.size());
    auto it = seen.find(key);
    if (it == seen.end()) {
      seen[key] = k;
      continue;
    }
    const OpInfo& first = m.ops[it->second];
    for (size_t i = 0; i < op.outputs.size(); ++i) rename[op.outputs[i]] = first.outputs[i];
    ++n;
  }
  // The merged ops' outputs have no readers now: remove_dead_ops drops them.
  return n;
}

}  // namespace pass
}  // namespace ne
