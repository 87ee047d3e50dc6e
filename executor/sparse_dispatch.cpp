#include "executor/sparse_dispatch.hpp"

#include <cstdio>
#include <string>

#include "executor/env.hpp"

namespace ne {

float sparse_threshold_for(sparse::Pattern p, const OpConfig& cfg) {
  if (cfg.sparse_threshold >= 0) return cfg.sparse_threshold;
  if (const auto t = env::sparse_threshold()) return *t;
  return p == sparse::Pattern::p4x1 ? kDefaultThreshold4x1 : kDefaultThreshold1x4;
}

bool measured_dispatch(const OpConfig& cfg) {
  if (cfg.sparse_threshold >= 0 || !cfg.allow_sparse) return false;
  if (env::sparse_threshold()) return false;
  return env::dispatch() == env::Dispatch::timed;
}

SparseDecision decide_sparse(const void* W_in, sparse::DType dt, int K, int N, const OpConfig& cfg) {
  SparseDecision d;
  std::vector<uint8_t> canon;
  const void* W = sparse::canonical_zeros(W_in, dt, size_t(K) * size_t(N), &canon);
  for (int p = 0; p < sparse::kNumPatterns; ++p)
    d.sparsity[p] = sparse::block_sparsity(W, dt, K, N, sparse::Pattern(p));
  d.element_sparsity = sparse::element_sparsity(W, dt, size_t(K) * size_t(N));
  // Kernels exist for 1x4 and 4x1 (2:4 and channel weights run through the 1x4 packing). A 4x1
  // block feeds one dot product per activation load, a 1x4 block four: per non-zero block the
  // 4x1 kernels run at about half the rate (bench_sparse_gemm), so 4x1 is preferred only when
  // it leaves less than half the non-zero blocks of 1x4.
  double s14 = d.sparsity[int(sparse::Pattern::p1x4)], s41 = d.sparsity[int(sparse::Pattern::p4x1)];
  d.best = (1 - s41) * 2 < (1 - s14) ? sparse::Pattern::p4x1 : sparse::Pattern::p1x4;
  d.best_sparsity = d.best == sparse::Pattern::p4x1 ? s41 : s14;
  char buf[256];
  float thr = sparse_threshold_for(d.best, cfg);
  if (!cfg.allow_sparse) {
    d.reason = "sparse kernels disabled";
  } else if (d.best_sparsity > thr) {
    d.sparse = true;
    std::snprintf(buf, sizeof buf, "weight %.1f%% %s-sparse > %.0f%%", 100 * d.best_sparsity,
                  sparse::pattern_name(d.best), 100 * thr);
    d.reason = buf;
  } else {
    std::snprintf(buf, sizeof buf, "weight %.1f%% sparse (best %s) <= %.0f%%", 100 * d.best_sparsity,
                  sparse::pattern_name(d.best), 100 * thr);
    d.reason = buf;
  }
  if (d.sparse) {
    // Ask the kernel list which kernel runs this blocking here, without packing (the strategy
    // packs once, into the shared weight cache).
    sparse::GemmArgs a;
    a.M = 128;
    a.src_dtype = dt == sparse::DType::s8 ? sparse::DType::u8 : dt;
    auto ch = sparse::choose_kernel(a, dt, d.best);
    d.kernel = ch.kernel ? ch.kernel->name : "none";
    // Only the scalar reference kernel can run here (no AVX-512, or capped by NE_MAX_ISA): it
    // does 1/16 of the work per instruction of a SIMD kernel, so oneDNN dense is the better bet.
    if (!ch.kernel || ch.kernel->isa == cpu::Isa::generic) {
      d.sparse = false;
      d.reason += std::string(", but only the scalar reference sparse kernel runs on this CPU (") +
                  cpu::isa_name(cpu::max_isa()) + "): dense";
      d.kernel = "onednn";
    }
  } else {
    d.kernel = "onednn";
  }
  return d;
}

}  // namespace ne
