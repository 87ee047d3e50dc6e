// The BERT layer structure on the fused IR, found once for the passes that rewrite weights
// across it while keeping the outputs (slim.cpp: remove dead channels / heads; channel_group.cpp:
// permute output channels).
//
//  FFN: InnerProduct ip1 -> [element-wise unary ops] -> InnerProduct ip2, ip1 without a residual
//    `sum`, both weights fp32 [K, N] used once, ip1's bias (if any) fp32 [F] used once.
//  Attention: Q/K/V InnerProducts (no post-ops) -> Reshape [.., .., H, D] -> Matmul(Q, K[, mask])
//    -> Softmax(-1) -> Matmul(P, V) -> Reshape [.., .., H*D] -> output InnerProduct (src), the
//    mask broadcasting over heads, every weight and bias fp32 and used once.
//  Run on the 3-op attention form (pass::unfuse_attention_op first).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "common/ir.hpp"
#include "compile/passes/graph.hpp"

namespace ne {
namespace pass {

// An InnerProduct's post-ops (attr append_op, comma-separated).
std::vector<std::string> post_ops(const OpInfo& ip);
bool has_sum(const OpInfo& ip);
// Index of the bias input, or -1.
int bias_index(const OpInfo& ip);
// A fp32 weight used only once in the graph, with the given rank; nullptr otherwise.
const TensorInfo* own_f32(Graph& g, const std::string& name, size_t rank);
// A Reshape's target shape (attr dst_shape, or a constant shape input).
bool reshape_dims(Graph& g, const OpInfo& r, std::vector<int64_t>* d);

// Keeps the listed rows of a [R, C] fp32 weight (or the listed entries of a [R] vector), in the
// listed order (a permutation of all rows permutes them). The weight gets a new owned buffer.
void keep_rows(Model& m, const std::string& name, const std::vector<int64_t>& rows);
// Keeps the listed columns of a [R, C] fp32 weight, in the listed order.
void keep_cols(Model& m, const std::string& name, const std::vector<int64_t>& cols);

struct FfnMatch {
  OpInfo* ip1 = nullptr;
  OpInfo* ip2 = nullptr;
  std::vector<std::string> chain;  // tensors between ip1 and ip2 (ip1's output first)
  bool zero_to_zero = true;        // every op on the path and ip1's post-ops map 0 to 0
  int b1_index = -1;               // ip1's bias input, or -1
  const TensorInfo* w1 = nullptr;  // [K, F]
  const TensorInfo* w2 = nullptr;  // [F, N]
  const TensorInfo* b1 = nullptr;  // [F] or nullptr
  int64_t F = 0;
};
// `ip2` is the second InnerProduct of an FFN pair.
bool match_ffn(Graph& g, OpInfo& ip2, FfnMatch* f);

struct AttentionMatch {
  enum { Q = 0, K = 1, V = 2 };
  OpInfo* pv = nullptr;                        // Matmul(P, V)
  OpInfo* qk = nullptr;                        // Matmul(Q, K[, mask])
  OpInfo* ip[3] = {nullptr, nullptr, nullptr};  // Q, K, V InnerProducts
  OpInfo* split[3] = {nullptr, nullptr, nullptr};  // their head-split Reshapes
  OpInfo* merge = nullptr;                     // Reshape [.., .., H*D]
  OpInfo* ipo = nullptr;                       // output InnerProduct
  std::string merged;                          // its src
  std::vector<int64_t> split_dims, merge_dims;  // the Reshapes' targets
  int64_t D = 0, H = 0, HD = 0;                // head dim, heads, H*D
  const TensorInfo* w[3] = {nullptr, nullptr, nullptr};     // [hidden, HD]
  const TensorInfo* bias[3] = {nullptr, nullptr, nullptr};  // [HD] or nullptr
  int bias_idx[3] = {-1, -1, -1};
  const TensorInfo* wo = nullptr;              // [HD, hidden]
};
// `pv` is the Matmul(P, V) of an attention block.
bool match_attention(Graph& g, OpInfo& pv, AttentionMatch* a);

}  // namespace pass
}  // namespace ne
