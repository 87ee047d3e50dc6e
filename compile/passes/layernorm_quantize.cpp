// LayerNorm -> Quantize (int8 static: the Quantize that Q, K, V share, share_src_quantization)
// becomes one LayerNorm with a second output, the quantized copy of output 0 (docs/OPS.md
// LayerNorm: quantize_dtype / quantize_scale / quantize_zero_point, the Quantize's semantics).
// The executor quantizes each thread's rows right after normalising them, so the fp32 output is
// not read back from memory by a separate pass.
//
//   x ─ LayerNorm ─ y ─┬─ Quantize(u8, s, zp) ─ y_u8 ─ Q / K / V      x ─ LayerNorm ─┬─ y ─ ...
//                      └─ ... (residual, ...)                   =>                   └─ y_u8 ─ Q / K / V
//
// Only token-major LayerNorms (no `transpose_mode: 1,0`): the executor's quantizing path is the
// row kernel. unfuse_layernorm_quantize is the inverse, for passes that match the two ops
// (transpose_encoder, unshare_src_quantization, emulate_fp32).
#include <set>
#include <string>

#include "compile/passes/graph.hpp"
#include "compile/passes/passes.hpp"

namespace ne {
namespace pass {

namespace {
const char* const kQuantAttrs[] = {"quantize_dtype", "quantize_scale", "quantize_zero_point"};

bool token_major(const OpInfo& ln) { return ln.attr("transpose_mode", "") != "1,0"; }
}  // namespace

int fuse_layernorm_quantize(Model& m) {
  Graph g(m);
  std::set<size_t> drop;
  int count = 0;
  for (size_t i = 0; i < m.ops.size(); ++i) {
    OpInfo& q = m.ops[i];
    if (q.type != "Quantize" || q.inputs.size() != 1 || q.outputs.size() != 1 || !q.has_attr("scale")) continue;
    const std::string dt = q.attr("output_dtype", "u8");
    if (dt != "u8" && dt != "s8") continue;
    OpInfo* ln = g.prod(q.inputs[0], "LayerNorm");
    if (!ln || ln->outputs.size() != 1 || ln->outputs[0] != q.inputs[0] || !token_major(*ln)) continue;
    bool has_q = false;
    for (const char* k : kQuantAttrs) has_q |= ln->has_attr(k);
    if (has_q) continue;
    ln->outputs.push_back(q.outputs[0]);
    ln->set_attr("quantize_dtype", dt);
    ln->set_attr("quantize_scale", q.attr("scale"));
    ln->set_attr("quantize_zero_point", q.attr("zero_point", "0"));
    drop.insert(i);
    ++count;
  }
  if (!count) return 0;
  std::vector<OpInfo> ops;
  ops.reserve(m.ops.size() - drop.size());
  for (size_t i = 0; i < m.ops.size(); ++i)
    if (!drop.count(i)) ops.push_back(std::move(m.ops[i]));
  m.ops = std::move(ops);
  return count;
}

int unfuse_layernorm_quantize(Model& m) {
  std::set<std::string> names;
  for (const auto& op : m.ops) names.insert(op.name);
  std::vector<OpInfo> ops;
  ops.reserve(m.ops.size() + 16);
  int count = 0;
  for (auto& op : m.ops) {
    if (op.type != "LayerNorm" || op.outputs.size() != 2) {
      ops.push_back(std::move(op));
      continue;
    }
    OpInfo q;
    q.name = op.name + "/quantize";
    for (int k = 1; names.count(q.name); ++k) q.name = op.name + "/quantize_" + std::to_string(k);
    names.insert(q.name);
    q.type = "Quantize";
    q.inputs = {op.outputs[0]};
    q.outputs = {op.outputs[1]};
    q.set_attr("output_dtype", op.attr("quantize_dtype", "u8"));
    q.set_attr("scale", op.attr("quantize_scale"));
    q.set_attr("zero_point", op.attr("quantize_zero_point", "0"));
    op.outputs.resize(1);
    for (const char* k : kQuantAttrs) op.erase_attr(k);
    ops.push_back(std::move(op));
    ops.push_back(std::move(q));
    ++count;
  }
  m.ops = std::move(ops);
  return count;
}

}  // namespace pass
}  // namespace ne
