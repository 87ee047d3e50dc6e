// Embeddings: position ids are a slice of a constant arange, so
//   Gather(table [P, H], Slice(arange [1, P] or [P], 0, seq, axis last))
// equals the first `seq` rows of the table: Slice(table, 0, seq, axis 0), [seq, H]. When the
// gather had a leading 1 ([1, seq, H]) and every reader is an element-wise op whose other
// operand has at least that rank, the broadcast makes the leading 1 unnecessary; otherwise a
// Reshape view restores it. Word / token-type Gathers, their BinaryAdds and the LayerNorm stay.
#include "compile/passes/graph.hpp"
#include "compile/passes/passes.hpp"

namespace ne {
namespace pass {

int fuse_embeddings(Model& m) {
  int n = 0;
  Graph g(m);
  std::vector<std::pair<size_t, OpInfo>> inserts;
  for (size_t k = 0; k < m.ops.size(); ++k) {
    OpInfo& op = m.ops[k];
    if (op.type != "Gather" || op.attr_int("axis", 0) != 0 || op.inputs.size() != 2) continue;
    const TensorInfo* table = m.find(op.inputs[0]);
    if (!table || !table->is_weight || table->shape.size() != 2) continue;
    OpInfo* sl = g.prod(op.inputs[1], "Slice");
    if (!sl || sl->inputs.size() < 3) continue;
    std::vector<int64_t> ids, st, ax, sp{1};
    const TensorInfo* ar = m.find(sl->inputs[0]);
    if (!g.const_ints(sl->inputs[0], &ids) || ar->shape.empty() || ar->shape.size() > 2) continue;
    if (ar->shape.size() == 2 && ar->shape[0] != 1) continue;
    bool arange = true;
    for (size_t i = 0; i < ids.size(); ++i) arange &= ids[i] == int64_t(i);
    if (!arange || int64_t(ids.size()) > table->shape[0]) continue;
    int last = int(ar->shape.size()) - 1;
    if (!g.const_ints(sl->inputs[1], &st) || st.size() != 1 || st[0] != 0) continue;
    if (sl->inputs.size() > 3 && !sl->inputs[3].empty()) {
      if (!g.const_ints(sl->inputs[3], &ax) || ax.size() != 1 || (ax[0] != last && ax[0] != -1)) continue;
    } else if (last != 0) {
      continue;
    }
    if (sl->inputs.size() > 4 && !sl->inputs[4].empty() && (!g.const_ints(sl->inputs[4], &sp) || sp != std::vector<int64_t>{1}))
      continue;
    // Slice(table, starts [0], ends, axes [0]).
    std::string starts = g.add_const(op.name + "_starts", DType::int64, {1}, std::vector<int64_t>{0});
    std::string axes = g.add_const(op.name + "_axes", DType::int64, {1}, std::vector<int64_t>{0});
    bool need_view = ar->shape.size() == 2;
    if (need_view) {
      bool all_bcast = true;
      for (OpInfo* c : g.consumers(op.outputs[0])) {
        if (!(c->type == "BinaryAdd" || c->type == "BinaryOp") || c->inputs.size() != 2) { all_bcast = false; break; }
        const std::string& other = c->inputs[0] == op.outputs[0] ? c->inputs[1] : c->inputs[0];
        all_bcast &= g.rank_of(other) >= 3;
      }
      if (all_bcast && !g.is_output(op.outputs[0])) need_view = false;
    }
    OpInfo s;
    s.name = op.name;
    s.type = "Slice";
    s.inputs = {op.inputs[0], starts, sl->inputs[2], axes};
    if (!need_view) {
      s.outputs = op.outputs;
      op = s;
    } else {
      std::string rows = g.new_name(op.outputs[0] + "_rows");
      s.outputs = {rows};
      OpInfo view;
      view.name = g.new_op_name(op.name + "_view");
      view.type = "Reshape";
      view.inputs = {rows};
      view.outputs = op.outputs;
      view.set_attr("dst_shape", "1,-1," + std::to_string(table->shape[1]));
      op = s;
      inserts.emplace_back(k + 1, view);
    }
    ++n;
    g.rebuild();
  }
  for (size_t i = inserts.size(); i-- > 0;)
    m.ops.insert(m.ops.begin() + long(inserts[i].first), inserts[i].second);
  return n;
}

}  // namespace pass
}  // namespace ne
