// The sparse-or-dense decision for an InnerProduct weight W[K, N], made once at load.
// Shared by the executor (sparse InnerProduct strategy) and by the inspection tool, so the
// report shows exactly the decision the executor makes.
#pragma once
#include <string>
#include <vector>

#include "executor/operator.hpp"
#include "kernels/sparse_gemm/sparse_gemm.hpp"
#include "kernels/sparse_gemm/sparsity.hpp"

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

// -0.0 -> +0.0 before a weight is measured or packed: sparse::canonical_zeros
// (kernels/sparse_gemm/sparsity.hpp), also reachable as ne::canonical_zeros (tests/core use it).
using sparse::canonical_zeros;

// Default thresholds per pattern, from the break-even sparsity measured by
// `bench_sparse_gemm --breakeven` (kernels/bench/RESULTS.md): 1x4 kernels beat oneDNN dense from
// 5-20% sparsity (f32/bf16/int8), 4x1 kernels from 50-65%; the defaults add a margin.
constexpr float kDefaultThreshold1x4 = 0.3f;
constexpr float kDefaultThreshold4x1 = 0.7f;
// Threshold for a pattern: cfg.sparse_threshold when set (>= 0), else NE_SPARSE_THRESHOLD when
// set, else the pattern's default.
float sparse_threshold_for(sparse::Pattern p, const OpConfig& cfg);

// Whether an int8/bf16 InnerProduct whose weight passes the threshold times its sparse kernel
// against oneDNN dense at plan time, per M class, and runs the faster (the default). Off when a
// threshold was given (cfg.sparse_threshold >= 0 or NE_SPARSE_THRESHOLD: the user forces the
// rule), or with NE_DISPATCH=threshold.
bool measured_dispatch(const OpConfig& cfg);

}  // namespace ne
