// Model slim: removes structurally dead channels and attention heads from the fused IR.
//
//  FFN: InnerProduct ip1 -> [element-wise unary ops] -> InnerProduct ip2. Channel f of the
//    intermediate (column f of W1[K, F], b1[f], row f of W2[F, N]) is removed when row f of W2
//    is all zero (its activation never reaches the output), or when column f of W1 and b1[f]
//    are zero and every op on the path maps 0 to 0 (relu, gelu, tanh): then it contributes 0.
//  Attention: Q/K/V InnerProducts -> Reshape [.., .., H, D] -> Matmul(Q, K, mask) -> Softmax ->
//    Matmul(P, V) -> Reshape [.., .., H*D] -> output InnerProduct. Head h is removed when its V
//    output channels (W_v columns and b_v entries h*D..h*D+D-1) are all zero (its context is 0),
//    or when the output projection's input channels for it (W_o rows) are all zero. Its Q, K, V
//    columns, biases and W_o rows go; the Reshapes' head dim H and H*D are rewritten.
//  Heads are independent (softmax is per head; the mask must broadcast over heads), so the
//  outputs are unchanged up to float summation order. At least one channel / head is kept.
//  Patterns that do not match exactly (shared weights, non-fp32 weights, other perms, a
//  residual `sum` on ip1, ...) are left alone.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "common/ir.hpp"

namespace ne {

struct SlimStats {
  int ffn_blocks = 0;                  // FFN pairs matched
  int64_t ffn_channels = 0;            // intermediate channels in them, before
  int64_t ffn_channels_removed = 0;
  int attention_blocks = 0;            // attention blocks matched
  int64_t heads = 0, heads_removed = 0;
  int64_t weight_bytes_before = 0, weight_bytes_after = 0;    // all weights of the model
  int64_t ip_macs_per_token_before = 0, ip_macs_per_token_after = 0;  // sum of K*N of InnerProducts
  std::vector<std::string> log;        // one line per rewritten block
  std::string summary() const;
};

// Rewrites `m` in place (weights are replaced by new owned buffers; the old bytes are not
// touched, so a copy of the model made before keeps its weights).
void slim_model(Model& m, SlimStats* stats = nullptr);

// Replaces -0.0 by +0.0 in every fp32 / bf16 InnerProduct weight and returns how many elements
// changed. Pruning by multiplying with a 0/1 mask (torch.nn.utils.prune, gen_bert.py 1x4/4x1)
// leaves -0.0 where weights were negative, and the kernels' block_sparsity counts only bitwise
// zeros, so without this such a weight is judged dense. Outputs change at most in the sign of
// an exact-zero result.
int64_t canonicalize_zeros(Model& m);

}  // namespace ne
