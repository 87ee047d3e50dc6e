// InnerProduct strategy: block-sparse kernels (kernels/sparse_gemm) for weights whose best
// pattern is sparser than the threshold. Registered above the dense oneDNN strategy; it declines
// with the reason otherwise. The packed weight lives in the shared weight cache
// (executor/weight_cache.hpp), so instances with WEIGHT_SHARING=1 map one copy.
#include <glog/logging.h>

#include "executor/ops/dense_inner_product.hpp"
#include "executor/sparse_dispatch.hpp"
#include "executor/weight_cache.hpp"

namespace ne {
namespace {

class SparseIp : public IpStrategy {
 public:
  SparseIp(const IpProblem& p, const SparseDecision& d, sparse::Act act, bool sum)
      : p_(p), act_(act), sum_(sum) {
    const int K = int(p.K), N = int(p.N);
    std::vector<uint8_t> canon;
    const float* W = static_cast<const float*>(
        canonical_zeros(p.weight, sparse::DType::f32, size_t(p.K) * size_t(p.N), &canon));
    std::string key = "bsgemm:f32:" + std::string(sparse::pattern_name(d.best)) + ":" + std::to_string(K) +
                      "x" + std::to_string(N) + ":" +
                      hex64(hash_bytes(W, size_t(p.K) * size_t(p.N) * sizeof(float)));
    buf_ = find_packed(key);
    if (!buf_) {
      sparse::PackedWeight tmp = sparse::PackedWeight::pack(W, K, N, d.best);
      buf_ = get_packed(key, tmp.pack_size(),
                        [&](uint8_t* dst) { std::memcpy(dst, tmp.pack_bytes(), tmp.pack_size()); });
    }
    w_ = sparse::PackedWeight::from_bytes(buf_->data(), buf_->size());
    sparse::GemmArgs a = args(nullptr, 128, nullptr, nullptr);
    auto ch = sparse::choose_kernel(a, w_);
    NE_CHECK(ch.kernel, "operator '", p.op_name, "': no sparse kernel can run: ", ch.summary());
    kernel_ = std::string(ch.kernel->name);
  }
  void forward(const float* src, int64_t M, const float*, const float* bias, float* dst) override {
    if (M == 0) return;
    sparse::gemm(args(src, M, bias, dst), w_);
  }
  std::string kernel() const override { return kernel_; }
  bool native_feature_major() const override { return true; }

 private:
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
  std::shared_ptr<const PackedBuffer> buf_;
  sparse::PackedWeight w_;
  std::string kernel_;
};

const bool g_sparse_registered = register_ip_strategy(
    "sparse", 100,
    [](const IpProblem& p, const OpConfig& cfg, std::string* why) -> std::unique_ptr<IpStrategy> {
      if (!p.weight_const || !p.weight) {
        *why = "weight is not a constant";
        return nullptr;
      }
      // The kernel epilogue: [activation] then [+ residual]. Other orders stay dense.
      sparse::Act act = sparse::Act::none;
      bool sum = false;
      for (IpPostKind k : p.post) {
        if (k == IpPostKind::sum) {
          if (sum) { *why = "two sum post-ops"; return nullptr; }
          sum = true;
          continue;
        }
        if (sum || act != sparse::Act::none) {
          *why = std::string("post-op order not supported by the sparse epilogue (") + ip_post_name(k) + ")";
          return nullptr;
        }
        switch (k) {
          case IpPostKind::relu: act = sparse::Act::relu; break;
          case IpPostKind::gelu_erf: act = sparse::Act::gelu_erf; break;
          case IpPostKind::gelu_tanh: act = sparse::Act::gelu_tanh; break;
          case IpPostKind::tanh: act = sparse::Act::tanh; break;
          default:
            *why = std::string("post-op ") + ip_post_name(k) + " not in the sparse epilogue";
            return nullptr;
        }
      }
      SparseDecision d = decide_sparse(p.weight, sparse::DType::f32, int(p.K), int(p.N), cfg);
      if (cfg.verbose)
        LOG(INFO) << "InnerProduct '" << p.op_name << "' [" << p.K << "x" << p.N << "]: "
                  << (d.sparse ? "sparse " + d.kernel : std::string("dense")) << " (" << d.reason << ")";
      if (!d.sparse) {
        *why = d.reason;
        return nullptr;
      }
      auto s = std::make_unique<SparseIp>(p, d, act, sum);
      *why = d.reason;
      return s;
    });

}  // namespace
}  // namespace ne
