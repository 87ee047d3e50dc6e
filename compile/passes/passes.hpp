// Graph passes over an ne::Model. Each returns the number of rewrites it made; each keeps the
// model's outputs equal (tested by running the graph before and after it, tests/compile/).
#pragma once
#include <map>
#include <set>
#include <string>

#include "common/ir.hpp"

namespace ne {
namespace pass {

// Evaluates every operator whose inputs are all weights (via ne::Executor on a one-op model)
// and replaces it by a weight. Outputs larger than `max_bytes` are left alone.
int fold_constants(Model& m, size_t max_bytes = size_t(64) << 20);
// Shape -> Gather -> Unsqueeze -> Concat -> Reshape chains become Reshape `dst_shape` (0 = copy
// the input dim, -1 = infer); other shape values made of one tensor's dims become Shape(start,end).
int fold_shapes(Model& m);
// Pure cheap ops (Reshape, Where, BinaryOp, Shape, ...) equal to an earlier one in type, inputs
// and attributes: their readers read the earlier op's outputs (cse.cpp; remove_dead_ops drops them).
int eliminate_common_subexpressions(Model& m);
// Removes operators whose outputs nobody reads, Identity ops, and weights nobody uses.
int remove_dead_ops(Model& m);
// ReduceMean/Sub/Pow/ReduceMean/Add/Sqrt/Div/Mul/Add -> LayerNorm.
int fuse_layernorm(Model& m);
// x*0.5*(1+erf(x/sqrt2)) (any export order) -> Gelu gelu_erf; the tanh form -> Gelu gelu_tanh.
int fuse_gelu(Model& m);
// Matmul with a constant 2-D fp32 weight -> InnerProduct; + bias; + Gelu / Tanh / Relu /
// Sigmoid post-ops; + residual add (`sum`).
int fuse_inner_product(Model& m);
// Reorder into Matmul src perms, the scale into output_scale, the mask add, the Reorder after
// it into dst_perm.
int fuse_attention(Model& m);
// DistilBERT-style attention into the form above: the query's pre-scale into output_scale,
// masked_fill (Where(Expand(mask4), finfo.min, scores)) into an additive [B,1,1,S] mask, the
// mask's Reshape off the layer input's Shape (masked_attention.cpp).
int fuse_masked_attention(Model& m);
// Add(Gather(word, T), Gather(types, Expand(uniform c, Shape(T)))) -> Add(.., types[c]) (RoBERTa's
// token types from the zero buffer; token_type_fold.cpp).
int fold_uniform_token_types(Model& m);
// Matmul(Q, K[, mask]) -> Softmax(-1) -> Matmul(P, V) -> one Attention op (run last).
int fuse_attention_op(Model& m);
// The inverse (for passes that look for the three ops, e.g. slim on a compiled IR).
int unfuse_attention_op(Model& m);
// Unsqueeze chains of known rank (the attention mask's [B,S] -> [B,1,1,S]) -> one Reshape view.
int fold_unsqueeze(Model& m);
// Embeddings: Gather(position_table, Slice(arange, 0, seq)) -> Slice of the table itself.
int fuse_embeddings(Model& m);

// QOperator-format int8 MatMuls (QLinearMatMul, MatMulInteger -> Cast -> Mul with any zero points,
// com.microsoft QGemm / DynamicQuantizeMatMul / MatMulIntegerToFloat) with constant weights -> s8
// InnerProducts (+ bias Add, + Quantize of a quantized output); QLinearMatMul of two activations
// -> Dequantize / Matmul / Quantize. Run before import_qdq. See qop_import.cpp. Throws ne::Error
// naming the node for forms it cannot express.
int import_qop(Model& m);
// The com.microsoft operators import_qop lowers, with the attributes each accepts (onnx_import
// lowers them 1:1 under these type names and refuses any other attribute).
const std::map<std::string, std::set<std::string>>& qop_contrib_ops();

// ONNX quantization ops -> s8 InnerProducts (QDQ MatMul, MatMulInteger + DynamicQuantizeLinear;
// only when `fuse`), folded constants, and per-tensor Quantize / Dequantize fake-quant pairs.
// See qdq_import.cpp. Throws ne::Error for forms it cannot express.
int import_qdq(Model& m, bool fuse);

// Transposed mode (transpose.cpp): whole encoder layers -> feature-major chains ([H, B, S]
// activations, `layout: feature_major` InnerProducts, `transpose_mode: 1,0` LayerNorms, Matmul
// perms for Q/K/V in that layout, two Reorders per chain). Returns the layers rewritten; with
// `log`, says on stderr what it did or why it left the graph alone. Run after quantization.
int transpose_encoder(Model& m, bool log = true);

// int8 static: a Quantize reading the only output of a token-major LayerNorm becomes that
// LayerNorm's second output (attrs quantize_dtype / quantize_scale / quantize_zero_point, the
// Quantize's semantics; docs/OPS.md LayerNorm); the Quantize is removed. Run after
// share_src_quantization and transpose_encoder. Returns the count.
int fuse_layernorm_quantize(Model& m);
// The inverse: every LayerNorm with two outputs -> LayerNorm + Quantize (right after it).
int unfuse_layernorm_quantize(Model& m);

// Lists the weights in the Input op (after the model inputs), drops weights nobody uses.
void finalize_inputs(Model& m);

}  // namespace pass
}  // namespace ne
