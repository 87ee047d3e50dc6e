// Unsqueeze chains of known input rank -> one Reshape view with dst_shape. For the attention
// mask: attention_mask [B,S] -> Unsqueeze(1) -> Unsqueeze(2) -> [B,1,1,S] becomes
// Reshape dst_shape 0,1,1,-1 (dims kept at their position copy with 0; one moved dim is -1).
#include "compile/passes/graph.hpp"
#include "compile/passes/passes.hpp"

namespace ne {
namespace pass {

namespace {
bool axes_of(Graph& g, const OpInfo& op, std::vector<int64_t>* axes) {
  if (op.has_attr("axes")) {
    *axes = op.attr_ints("axes");
    return true;
  }
  return op.inputs.size() > 1 && g.const_ints(op.inputs[1], axes);
}
// Applies Unsqueeze(axes) to a list of labels (input dim index, or -1 for a new 1).
bool unsqueeze_labels(std::vector<int>* labels, std::vector<int64_t> axes) {
  int r = int(labels->size() + axes.size());
  std::vector<bool> is_new(size_t(r), false);
  for (auto a : axes) {
    if (a < 0) a += r;
    if (a < 0 || a >= r || is_new[size_t(a)]) return false;
    is_new[size_t(a)] = true;
  }
  std::vector<int> out;
  size_t j = 0;
  for (int i = 0; i < r; ++i) out.push_back(is_new[size_t(i)] ? -1 : (*labels)[j++]);
  *labels = out;
  return true;
}
}  // namespace

int fold_unsqueeze(Model& m) {
  int n = 0;
  Graph g(m);
  for (size_t k = 0; k < m.ops.size(); ++k) {
    OpInfo& op = m.ops[k];
    if (op.type != "Unsqueeze") continue;
    // An Unsqueeze feeding only another Unsqueeze is merged when that one is visited.
    if (g.single_use(op.outputs[0]) && !g.is_output(op.outputs[0]) &&
        g.consumers(op.outputs[0])[0]->type == "Unsqueeze")
      continue;
    // Walk back through single-use Unsqueezes.
    std::vector<const OpInfo*> chain{&op};
    while (true) {
      OpInfo* p = g.prod(chain.back()->inputs[0], "Unsqueeze");
      if (!p || !g.single_use(p->outputs[0]) || g.is_output(p->outputs[0])) break;
      chain.push_back(p);
    }
    const std::string& src = chain.back()->inputs[0];
    int r = g.rank_of(src);
    if (r < 0) continue;
    std::vector<int> labels;
    for (int i = 0; i < r; ++i) labels.push_back(i);
    bool ok = true;
    for (size_t i = chain.size(); i-- > 0 && ok;) {
      std::vector<int64_t> axes;
      ok = axes_of(g, *chain[i], &axes) && unsqueeze_labels(&labels, axes);
    }
    if (!ok) continue;
    std::string dst;
    int moved = 0;
    for (size_t i = 0; i < labels.size(); ++i) {
      std::string d = labels[i] < 0 ? "1" : labels[i] == int(i) ? "0" : "-1";
      if (d == "-1") ++moved;
      dst += (i ? "," : "") + d;
    }
    if (moved > 1) continue;
    OpInfo re;
    re.name = op.name;
    re.type = "Reshape";
    re.inputs = {src};
    re.outputs = op.outputs;
    re.set_attr("dst_shape", dst);
    op = re;
    ++n;
    g.rebuild();
  }
  return n;
}

}  // namespace pass
}  // namespace ne
