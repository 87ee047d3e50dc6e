// The block-sparse GEMM behind every sparse InnerProduct candidate (fp32, s8, bf16; standard
// or AMX K-gather blocking): the weight packed once into the shared weight cache, and the
// kernel that runs each M chosen once (kernels/sparse_gemm's list) and then called directly, so
// the kernel the profile names is the kernel that ran.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "executor/ops/dense_inner_product.hpp"
#include "executor/weight_cache.hpp"
#include "kernels/sparse_gemm/sparse_gemm.hpp"

namespace ne {

class SparseGemmCore {
 public:
  // W row-major [K, N] of dtype `wdt` (its -0.0 already made +0.0, see canonical_zeros);
  // `weight_hash` names the source weight's bytes (for the cache key).
  SparseGemmCore(const std::string& op_name, const void* W, sparse::DType wdt, int K, int N, sparse::Pattern p,
                 sparse::Blocking b, uint64_t weight_hash);
  const sparse::PackedWeight& weight() const { return w_; }
  // The kernel that runs these args (memoised per M: the op's other arguments do not change).
  const sparse::KernelInfo& kernel_for(const sparse::GemmArgs& a);
  void run(const sparse::GemmArgs& a) {
    if (a.M == 0) return;
    sparse::gemm_with(kernel_for(a), a, w_);
  }

 private:
  std::string op_name_;
  std::shared_ptr<const PackedBuffer> buf_;
  sparse::PackedWeight w_;
  std::map<int64_t, const sparse::KernelInfo*> by_m_;
  std::mutex mu_;
};

// The sparse kernels' epilogue runs [activation] then [+ residual]: maps `post` onto it, or
// returns false with why (another order, sigmoid, two sums).
bool sparse_epilogue(const std::vector<IpPostKind>& post, sparse::Act* act, bool* sum, std::string* why);

}  // namespace ne
