// fp32 InnerProduct candidate "sparse": the block-sparse AVX-512F kernels (kernels/sparse_gemm)
// for weights whose best pattern is sparser than the threshold (sparse_dispatch.hpp); it declines
// with the reason otherwise. Above the threshold it is a candidate beside oneDNN dense, timed per
// M class (ip_candidates.hpp), unless a threshold was given. The packed weight lives in the
// shared weight cache (executor/weight_cache.hpp), so instances with WEIGHT_SHARING=1 map one copy.
#include <glog/logging.h>

#include <cstdio>

#include "executor/ops/dense_inner_product.hpp"
#include "executor/ops/sparse_core.hpp"
#include "executor/sparse_dispatch.hpp"

namespace ne {
namespace {

class SparseIp : public IpStrategy {
 public:
  SparseIp(const IpProblem& p, const SparseDecision& d, sparse::Act act, bool sum)
      : p_(p), act_(act), sum_(sum), core_(make_core(p, d)) {
    kernel_ = core_.kernel_for(args(nullptr, 128, nullptr, nullptr)).name;
  }
  void forward(const float* src, int64_t M, const float*, const float* bias, float* dst) override {
    if (M == 0) return;
    core_.run(args(src, M, bias, dst));
  }
  std::string kernel() const override { return kernel_; }
  std::string kernel_for(int64_t M) override { return core_.kernel_for(args(nullptr, M, nullptr, nullptr)).name; }
  bool native_feature_major() const override { return true; }

 private:
  static SparseGemmCore make_core(const IpProblem& p, const SparseDecision& d) {
    std::vector<uint8_t> canon;
    const void* W = sparse::canonical_zeros(p.weight, sparse::DType::f32, size_t(p.K) * size_t(p.N), &canon);
    return SparseGemmCore(p.op_name, W, sparse::DType::f32, int(p.K), int(p.N), d.best, sparse::Blocking::standard,
                          p.weight_hash);
  }
  sparse::GemmArgs args(const float* src, int64_t M, const float* bias, float* dst) const {
    sparse::GemmArgs a;
    a.layout = p_.feature_major ? sparse::Layout::feature_major : sparse::Layout::token_major;
    a.M = int(M);
    a.src = src;
    a.src_dtype = sparse::DType::f32;
    a.dst = dst;
    a.post.bias = p_.has_bias ? bias : nullptr;
    a.post.act = act_;
    // `sum`: the op has put the residual in dst; the kernel's epilogue reads each element of
    // the residual before it writes the same element, so residual may alias dst.
    a.post.residual = sum_ ? dst : nullptr;
    a.post.dst_dtype = sparse::DType::f32;
    return a;
  }
  IpProblem p_;
  sparse::Act act_;
  bool sum_;
  SparseGemmCore core_;
  std::string kernel_;
};

constexpr double kFp32SureSparse1x4 = 0.7, kFp32SureSparse4x1 = 0.9;

const bool g_sparse_registered = FpIpList::add("sparse", 100, [](const IpProblem& p, const OpConfig& cfg) {
  IpOffer<IpStrategy> o;
  if (!p.weight_const || !p.weight) {
    o.note = "weight is not a constant";
    return o;
  }
  sparse::Act act = sparse::Act::none;
  bool sum = false;
  if (!sparse_epilogue(p.post, &act, &sum, &o.note)) return o;
  SparseDecision d = decide_sparse(p.weight, sparse::DType::f32, int(p.K), int(p.N), cfg);
  if (cfg.verbose)
    LOG(INFO) << "InnerProduct '" << p.op_name << "' [" << p.K << "x" << p.N << "]: "
              << (d.sparse ? "sparse " + d.kernel : std::string("dense")) << " (" << d.reason << ")";
  o.note = d.reason;
  if (!d.sparse) return o;
  o.impl = std::make_unique<SparseIp>(p, d, act, sum);
  // A given threshold forces the choice. Timed otherwise, except far above the break-even for
  // M >= 16: oneDNN has no AMX fp32, and there the fp32 sparse kernels beat its dense fp32
  // (bench_ops_quant --rule on Zen 5: from 70% 1x4 / 90% 4x1 at M >= 16), so the timing (tens of ms
  // per op at BERT shapes) would only confirm it. At M < 16 (GEMV-like; oneDNN's dense fp32
  // beats the 1x4 kernel up to ~80% there) and nearer the break-even both are timed.
  o.exclusive = !measured_dispatch(cfg);
  const double sure = d.best == sparse::Pattern::p4x1 ? kFp32SureSparse4x1 : kFp32SureSparse1x4;
  if (!o.exclusive && d.best_sparsity >= sure) {
    o.sure_from_m = 16;
    char b[96];
    std::snprintf(b, sizeof b, "sure for M >= 16: >= %.0f%%, far above the fp32 break-even", 100 * sure);
    o.note += std::string("; ") + b;
  }
  return o;
});

}  // namespace
}  // namespace ne
