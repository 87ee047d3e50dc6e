// The sparse-or-dense decision for an InnerProduct weight W[K, N], made once at load.
// Shared by the executor (sparse InnerProduct strategy) and by the inspection tool, so the
// report shows exactly the decision the executor makes.
#pragma once
#include <string>
#include <vector>

#include "executor/operator.hpp"
#include "kernels/sparse_gemm/sparse_gemm.hpp"

namespace ne {

struct SparseDecision {
  double sparsity[sparse::kNumPatterns] = {0, 0, 0, 0};  // indexed by sparse::Pattern
  double element_sparsity = 0;
  sparse::Pattern best = sparse::Pattern::p1x4;  // best pattern the kernels can run (1x4/4x1)
  double best_sparsity = 0;
  bool sparse = false;      // goes to a block-sparse kernel
  std::string kernel;       // the kernel that would run (sparse), or "onednn" (dense)
  std::string reason;       // e.g. "weight 91.2% 1x4-sparse > 70%" / "weight 61% sparse <= 70%"
};

// `W` row-major [K, N] of dtype `dt` (f32, bf16 as uint16, s8). `m_hint` is a typical M for the
// kernel choice (it does not change the decision).
SparseDecision decide_sparse(const void* W, sparse::DType dt, int K, int N, const OpConfig& cfg);

// Pruning tools (torch's prune, mask multiplication) leave -0.0 where negative weights were
// zeroed; the block-sparse packing counts only bitwise zeros. Returns W itself when it holds no
// -0.0, else a copy in *storage with every -0.0 made +0.0 (the product is the same).
const void* canonical_zeros(const void* W, sparse::DType dt, size_t n, std::vector<uint8_t>* storage);

// The default threshold (0.7 unless NE_SPARSE_THRESHOLD says otherwise).
float default_sparse_threshold();

}  // namespace ne
