// Output-channel grouping for AMX (issue 14): permutes output channels so that channels whose
// non-zero k rows overlap share a 16-channel group, raising z16 (the share of (16-output-channel
// group, k) rows that are all zero: the k rows an AMX K-gather kernel skips), and undoes each
// permutation where that is free, so the model's outputs are unchanged (up to float summation
// order; the permuted products are the same numbers):
//
//  FFN    ip1 -> [Gelu / element-wise] -> ip2: ip1's columns and bias permuted, ip2's rows the same.
//  V / O  V's columns and bias permuted within each head (the context keeps its head layout),
//         the output projection's rows the same.
//  Q / K  one permutation per head shared by Q and K (Q·Kᵀ is invariant under a common
//         permutation of a head's channels), their columns and biases.
//  O and FFN2 outputs feed the residual / LayerNorm: left alone.
//
// Grouping is greedy on support sets (per unit of `unit` consecutive output channels, the k rows
// where any of its columns is non-zero, as bitsets): seed a group with the unassigned unit of the
// largest support, add the units that add the fewest new rows to the group's union, until the
// group holds 16 channels; then swap units between groups while that lowers the two groups'
// non-zero rows (refine_passes passes); within a head (V, Q/K) units stay inside it. A permutation is kept only
// where it raises the zero-row count (Q/K: the sum over both, neither lower), so z16 never drops.
// unit = 4 moves 1x4 blocks (and 4x1 / 2:4 row quads of the consumer) whole: the AVX-512 sparse
// kernels see the same block sparsity. Cost: O(U² · K / 64) per weight and pass for U units
// (BERT-base: about 3 s for the whole model on one Zen 5 core, most of it the swaps).
//
// Works on fp32 weights (run it before quantize_int8 / convert_bf16: the quantized per-channel
// scales are then computed on the permuted weights). Blocks whose weights are not fp32 or are
// shared are left alone (pass::match_ffn / match_attention).
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "common/ir.hpp"

namespace ne {

struct ChannelGroupOptions {
  int group = 16;  // output channels per AMX tile
  int unit = 4;    // consecutive output channels moved together (1: single channels)
  int refine_passes = 10;  // passes of pairwise swaps between groups after the greedy grouping
};

struct ChannelGroupStats {
  struct Kind {
    int weights = 0;                  // weights of this kind matched
    int permuted = 0;                 // of them, permuted
    int64_t rows = 0;                 // (16-channel group, k) rows in them
    int64_t zero_before = 0, zero_after = 0;  // all-zero rows among them
    double z16_before() const { return rows ? double(zero_before) / double(rows) : 0.0; }
    double z16_after() const { return rows ? double(zero_after) / double(rows) : 0.0; }
  };
  Kind ffn1, q, k, v;
  int ffn_blocks = 0, attention_blocks = 0;
  double seconds = 0;                 // the pass's own time
  // The permutations applied: (weight whose columns were permuted, perm); new column j = old
  // column perm[j]. One entry per permuted weight.
  std::vector<std::pair<std::string, std::vector<int64_t>>> perms;
  std::vector<std::string> log;       // one line per block rewritten or left alone, and why
  std::string summary() const;
};

// Rewrites `m` in place (permuted weights get new owned buffers).
void group_channels(Model& m, ChannelGroupStats* stats = nullptr, const ChannelGroupOptions& opt = {});

namespace pass {
// The greedy grouping of `units` units whose supports are `words` uint64 words each in `bits`
// (unit u: bits[u * words, (u + 1) * words)), `per_group` units to a group. Returns the new order
// (a permutation of 0..units-1: position i holds old unit order[i]).
std::vector<int64_t> greedy_group_order(const std::vector<uint64_t>& bits, int64_t units, int64_t words,
                                        int64_t per_group);
// Local search after the greedy grouping: swaps a unit of one group with a unit of another when
// that lowers the two groups' non-zero rows, over all group pairs, up to `max_passes` passes (or
// until a pass makes no swap). O(U² · K / 64) per pass. Returns the swaps made.
int64_t refine_group_order(const std::vector<uint64_t>& bits, int64_t units, int64_t words, int64_t per_group,
                           std::vector<int64_t>* order, int max_passes);
}  // namespace pass

}  // namespace ne
