// Constant folding: an operator whose inputs are all weights is run once, through the
// executor's public interface on a one-operator model, and replaced by its result.
#include <set>

#include "compile/onnx_import.hpp"
#include "compile/passes/graph.hpp"
#include "compile/passes/passes.hpp"
#include "executor/executor.hpp"

namespace ne {
namespace pass {

namespace {
bool foldable(const Model& m, const OpInfo& op) {
  if (op.type == "Input" || op.type == "Output" || op.inputs.empty()) return false;
  for (auto& i : op.inputs)
    if (!i.empty() && !m.is_weight(i)) return false;
  return true;
}
}  // namespace

int fold_constants(Model& m, size_t max_bytes) {
  int n = 0;
  std::set<std::string> graph_outputs;
  for (auto& o : m.output_names()) graph_outputs.insert(o);
  std::vector<bool> drop(m.ops.size(), false);
  for (size_t k = 0; k < m.ops.size(); ++k) {
    const OpInfo& op = m.ops[k];
    if (!foldable(m, op)) continue;
    // Identity of a weight: remove_dead_ops() points its readers at the weight (one copy).
    if (op.type == "Identity" && op.outputs.size() == 1 && !graph_outputs.count(op.outputs[0])) continue;
    Model sub;
    sub.name = "fold_" + op.name;
    sub.source = m.source + " (constant folding of '" + op.name + "')";
    OpInfo in;
    in.name = "input_data";
    in.type = "Input";
    std::set<std::string> seen;
    for (auto& i : op.inputs)
      if (!i.empty() && seen.insert(i).second) {
        in.outputs.push_back(i);
        sub.tensors[i] = *m.find(i);
      }
    OpInfo out;
    out.name = "output_data";
    out.type = "Output";
    out.inputs = op.outputs;
    OpInfo body = op;
    if (body.name == "input_data" || body.name == "output_data") body.name += "_op";
    sub.ops = {in, body, out};
    std::vector<HostTensor> res;
    try {
      Executor ex(std::move(sub));
      res = ex.run({});
    } catch (const std::exception&) {
      continue;  // left to run time; the executor reports real errors there
    }
    size_t bytes = 0;
    for (auto& r : res) bytes += r.bytes.size();
    if (bytes > max_bytes || res.size() != op.outputs.size()) continue;
    for (size_t j = 0; j < res.size(); ++j)
      put_weight(m, op.outputs[j], res[j].dtype, res[j].shape, std::move(res[j].bytes));
    drop[k] = true;
    ++n;
  }
  if (n) {
    std::vector<OpInfo> kept;
    for (size_t k = 0; k < m.ops.size(); ++k)
      if (!drop[k]) kept.push_back(std::move(m.ops[k]));
    m.ops.swap(kept);
  }
  // A weight that is a model output must still be produced by someone: the executor reads
  // it from the weights, which validate() accepts.
  return n;
}

}  // namespace pass
}  // namespace ne
