// Dead-operator removal, Identity bypass, unused-weight removal; finalize_inputs.
#include <set>

#include "compile/passes/graph.hpp"
#include "compile/passes/passes.hpp"

namespace ne {
namespace pass {

int remove_dead_ops(Model& m) {
  int n = 0;
  // Identity: readers use its input directly (unless its output is a model output).
  {
    Graph g(m);
    std::map<std::string, std::string> alias;
    for (auto& op : m.ops)
      if (op.type == "Identity" && op.inputs.size() == 1 && op.outputs.size() == 1 &&
          !g.is_output(op.outputs[0])) {
        std::string src = op.inputs[0];
        while (alias.count(src)) src = alias[src];
        alias[op.outputs[0]] = src;
      }
    if (!alias.empty())
      for (auto& op : m.ops)
        for (auto& in : op.inputs) {
          auto it = alias.find(in);
          if (it != alias.end()) in = it->second;
        }
  }
  // Liveness, backwards from the Output op.
  std::set<std::string> needed;
  std::vector<bool> live(m.ops.size(), false);
  for (size_t k = m.ops.size(); k-- > 0;) {
    const OpInfo& op = m.ops[k];
    bool l = op.type == "Input" || op.type == "Output";
    for (auto& o : op.outputs) l |= needed.count(o) > 0;
    if (!l) continue;
    live[k] = true;
    for (auto& i : op.inputs) needed.insert(i);
  }
  std::vector<OpInfo> kept;
  for (size_t k = 0; k < m.ops.size(); ++k) {
    if (live[k]) kept.push_back(std::move(m.ops[k]));
    else ++n;
  }
  m.ops.swap(kept);
  // Weights nobody reads.
  std::set<std::string> used;
  for (auto& op : m.ops) {
    for (auto& i : op.inputs) used.insert(i);
    if (op.type == "Input")
      for (auto& o : op.outputs) used.insert(o);
  }
  for (auto it = m.tensors.begin(); it != m.tensors.end();) {
    if (it->second.is_weight && !used.count(it->first)) it = m.tensors.erase(it);
    else ++it;
  }
  return n;
}

void finalize_inputs(Model& m) {
  remove_dead_ops(m);
  for (auto& op : m.ops) {
    if (op.type != "Input") continue;
    std::vector<std::string> outs;
    std::set<std::string> seen;
    for (auto& o : op.outputs)
      if (!m.is_weight(o) && seen.insert(o).second) outs.push_back(o);
    for (auto& other : m.ops)
      for (auto& i : other.inputs)
        if (m.is_weight(i) && seen.insert(i).second) outs.push_back(i);
    op.outputs = outs;
    break;
  }
}

}  // namespace pass
}  // namespace ne
