// InnerProduct (docs/OPS.md): dst[..., N] = post(src[..., K] · W[K, N] + bias).
//
// Structure: InnerProductOp owns the IR-level work (attributes, shapes, residual handling) and
// delegates the GEMM to IpStrategy candidates built once in init() from the fp32 entries of the
// InnerProduct candidate list (ip_candidates.hpp: the same list machinery, selection and
// timing as the s8 / bf16 ops). Each entry builds a candidate or says why it declines; the
// dense oneDNN entry ("dense", priority 0) never declines. With several candidates the faster
// one per M class is chosen at plan time (reshape), timed on this CPU.
//
// Adding a path: in its own file, define `class MyIp : public ne::IpStrategy` and
//   static const bool reg = ne::FpIpList::add("my_path", 100,
//       [](const ne::IpProblem& p, const ne::OpConfig& cfg) {
//         ne::IpOffer<ne::IpStrategy> o;
//         if (!p.weight_const) { o.note = "weight is not a constant"; return o; }
//         o.impl = std::make_unique<MyIp>(p);
//         return o;
//       });
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <dnnl.hpp>

#include "executor/operator.hpp"
#include "executor/ops/ip_candidates.hpp"

namespace ne {

// One post-op of `append_op`, applied in order after the bias.
enum class IpPostKind { relu, gelu_erf, gelu_tanh, tanh, sigmoid, sum };
const char* ip_post_name(IpPostKind k);
// Appends post[0 .. count) to a oneDNN post-op chain (eltwise kinds and `sum`).
void append_onednn_post_ops(dnnl::post_ops& po, const std::vector<IpPostKind>& post, size_t count);

// What a strategy must compute, fixed at init().
struct IpProblem {
  std::string op_name;
  int64_t K = 0, N = 0;
  bool has_bias = false;
  std::vector<IpPostKind> post;  // in order; at most one `sum`
  // The weight [K, N] row-major, fp32; valid during init() only (strategies pack or copy it).
  // weight_const is false when the weight is an activation: then `weight` is null at init and
  // forward() receives the weight pointer on every call.
  bool weight_const = true;
  const float* weight = nullptr;
  uint64_t weight_hash = 0;  // hash_bytes of the weight (weight_const), for cache keys
  int num_threads_hint = 0;  // omp_get_max_threads() at init
  // `layout: feature_major`: the op's src is Xt [K, M] and dst Yt [N, M] (docs/OPS.md). A
  // strategy that returns true from native_feature_major() is called with them as they are;
  // others get token-major copies (the op transposes around them).
  bool feature_major = false;
};

class IpStrategy {
 public:
  virtual ~IpStrategy() = default;
  // dst[M, N] = post(src[M, K] · W + bias). The `sum` post-op adds dst's previous content at
  // its point in the list (the op has already put the residual there). `weight` is the weight
  // [K, N] for non-constant weights (null when it was packed at creation).
  virtual void forward(const float* src, int64_t M, const float* weight, const float* bias,
                       float* dst) = 0;
  // For --profile: e.g. "onednn:brg:avx512_core".
  virtual std::string kernel() const = 0;
  // The kernel that runs M rows (default: kernel()).
  virtual std::string kernel_for(int64_t M) { (void)M; return kernel(); }
  // True: forward() takes src [K, M] and dst [N, M] when IpProblem::feature_major is set.
  virtual bool native_feature_major() const { return false; }
};

// The fp32 InnerProduct candidate list.
using FpIpList = IpList<IpProblem, IpStrategy>;

class InnerProductOp : public Operator {
 public:
  explicit InnerProductOp(const OpInfo& info);

  void init(const TensorList& in) override;
  void reshape(const TensorList& in, const TensorList& out) override;
  void forward(const TensorList& in, const TensorList& out) override;
  int inplace_input() const override { return residual_index(); }
  std::string kernel() const override;
  std::string reason() const override;

  const IpProblem& problem() const { return prob_; }

 private:
  int residual_index() const;  // -1 without `sum`
  void check_shapes(const TensorList& in) const;
  void setup(const TensorList& in);  // K, N, bias checks from the weight's shape
  void choose_strategy();
  // The candidate for M (plan-time choice per M class; timed when there are several).
  IpStrategy* strategy_for(int64_t M);
  // Candidate i once on synthetic data of M rows (seconds).
  double time_candidate(int i, int64_t M);
  // The GEMM through `st` (feature-major transposes around a token-major strategy); the
  // residual is already in dst.
  void run_strategy(IpStrategy* st, const float* src, int64_t M, const float* w, const float* bias, float* dst);

  IpProblem prob_;
  bool has_sum_ = false;
  // Feature-major through a token-major strategy: transposed src, dst (with the residual).
  std::vector<float> fm_src_, fm_dst_;
  std::vector<float> tsrc_, tbias_, tdst_;  // timing scratch
  std::vector<std::unique_ptr<IpStrategy>> cands_;
  IpChooser chooser_;
};

}  // namespace ne
