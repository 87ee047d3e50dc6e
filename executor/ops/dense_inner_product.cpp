// InnerProduct: the op (attributes, shapes, residual) and the dense oneDNN strategy.
// See dense_inner_product.hpp for the strategy list (where a sparse path plugs in).
#include "executor/ops/shape_cache.hpp"
#include "executor/ops/dense_inner_product.hpp"

#include <omp.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <chrono>
#include <deque>
#include <map>
#include <mutex>
#include <unordered_map>

#include "executor/ops/dense_common.hpp"
#include "executor/ops/feature_major.hpp"
#include "executor/sparse_dispatch.hpp"
#include "executor/weight_cache.hpp"
#include "kernels/eltwise/eltwise.hpp"

namespace ne {

const char* ip_post_name(IpPostKind k) {
  switch (k) {
    case IpPostKind::relu: return "relu";
    case IpPostKind::gelu_erf: return "gelu_erf";
    case IpPostKind::gelu_tanh: return "gelu_tanh";
    case IpPostKind::tanh: return "tanh";
    case IpPostKind::sigmoid: return "sigmoid";
    case IpPostKind::sum: return "sum";
  }
  return "?";
}

void append_onednn_post_ops(dnnl::post_ops& po, const std::vector<IpPostKind>& post, size_t count) {
  for (size_t pi = 0; pi < count && pi < post.size(); ++pi) {
    switch (post[pi]) {
      case IpPostKind::relu: po.append_eltwise(1.f, dnnl::algorithm::eltwise_relu, 0.f, 0.f); break;
      case IpPostKind::gelu_erf: po.append_eltwise(1.f, dnnl::algorithm::eltwise_gelu_erf, 0.f, 0.f); break;
      case IpPostKind::gelu_tanh: po.append_eltwise(1.f, dnnl::algorithm::eltwise_gelu_tanh, 0.f, 0.f); break;
      case IpPostKind::tanh: po.append_eltwise(1.f, dnnl::algorithm::eltwise_tanh, 0.f, 0.f); break;
      case IpPostKind::sigmoid: po.append_eltwise(1.f, dnnl::algorithm::eltwise_logistic, 0.f, 0.f); break;
      case IpPostKind::sum: po.append_sum(1.f); break;
    }
  }
}

// ---- dense strategy: oneDNN matmul, weight reordered once to the blocked layout it prefers ----

namespace {

using dnnl::memory;
using tag = memory::format_tag;
using dt = memory::data_type;

class OnednnIp : public IpStrategy {
 public:
  explicit OnednnIp(const IpProblem& p) : p_(p) {
    // All post-ops stay fused in the oneDNN epilogue. (Tried: a trailing gelu_erf as our own
    // AVX-512 pass over dst after the primitive — 12% slower on 768->3072, M=128 and 1024.)
    // Feature-major (src Xt [K, M], dst Yt [N, M]): the src is given to oneDNN as {M, K} in
    // format `ba` (its brgemm reads a transposed src), the result lands token-major in a scratch
    // [M, N] and is transposed into dst; a trailing `sum` is added during that transpose (dst
    // holds the residual), an earlier one needs the residual transposed into the scratch first.
    // (oneDNN 2.6 runs a `ba` dst, or the swapped W^T·Xt with a per-row bias, on ref:any only.)
    fm_ = p.feature_major;
    fm_sum_last_ = fm_ && !p.post.empty() && p.post.back() == IpPostKind::sum;
    // A trailing gelu_tanh below AVX-512 is our ymm pass over dst after the primitive: oneDNN
    // 2.6's AVX2 epilogue for it cost 2 ns per element (FFN1 of a 256-wide BERT, M = 1024: 6.1 ms
    // against 4.1 with gelu_erf's; the pass: see --profile). On AVX-512 its epilogue is kept.
    if (!fm_ && !p.post.empty() && p.post.back() == IpPostKind::gelu_tanh &&
        std::find(p.post.begin(), p.post.end(), IpPostKind::sum) == p.post.end() &&
        !cpu::mayiuse(cpu::Isa::avx512_core)) {
      const auto& k = kernels::eltwise::gelu_tanh_kernels().choose();
      if (k.isa != cpu::Isa::generic) tail_ = &k;
    }
    const std::vector<IpPostKind> chain(p.post.begin(),
                                        p.post.end() - (fm_sum_last_ ? 1 : 0) - (tail_ ? 1 : 0));
    attr_ = attr_of(chain.begin(), chain.end());
    plain_w_ = memory::desc({p.K, p.N}, dt::f32, tag::ab);
    bias_md_ = memory::desc({1, p.N}, dt::f32, tag::ab);
    const int64_t m_typ = 128 * std::max(1, p.num_threads_hint);
    split_residual_if_ref(chain, m_typ);
    if (p.weight_const) {
      // Pick the weight layout once, from the primitive for a typical M (BERT: 128 tokens per
      // sequence times the threads); oneDNN's brgemm picks it from K and N, so other M reuse it.
      auto pd = make_pd(m_typ, memory::desc({p.K, p.N}, dt::f32, tag::any));
      // The packed copy lives in the shared weight cache: with WEIGHT_SHARING=1 instances map one
      // copy. The key names the weight bytes and the exact oneDNN layout.
      const memory::desc wmd = pd.weights_desc();
      const std::string key =
          "onednn_ip:f32:" + std::to_string(p.K) + "x" + std::to_string(p.N) + ":" +
          std::to_string(DNNL_VERSION_MAJOR) + "." + std::to_string(DNNL_VERSION_MINOR) + ":" +
          hex64(hash_bytes(&wmd.data, sizeof(wmd.data))) + ":" + hex64(p.weight_hash);
      buf_ = get_packed(key, wmd.get_size(), [&](uint8_t* dstp) {
        memory user(plain_w_, dense::engine(), const_cast<float*>(p.weight));
        memory packed(wmd, dense::engine(), dstp);
        dnnl::reorder(user, packed).execute(dense::stream(), user, packed);
        dense::stream().wait();
      });
      // oneDNN only reads weights: the read-only mapping is safe behind the non-const handle.
      packed_.push_back(memory(wmd, dense::engine(), const_cast<uint8_t*>(buf_->data())));
      kernel_ = std::string("onednn:") + pd.impl_info_str();
    } else {
      kernel_ = std::string("onednn:") + make_pd(128, plain_w_).impl_info_str() + " (weight not const)";
    }
    if (split_) kernel_ += split_kernel_;
    if (tail_) kernel_ += std::string("+") + tail_->name;
  }

  std::string kernel() const override { return kernel_ + (fm_ ? " (feature-major: src ba, dst transposed)" : ""); }
  std::string kernel_for(int64_t M) override {
    if (M <= 0) return kernel();
    Entry& e = entry(M);
    return "onednn:" + e.impl + (split_ ? split_kernel_ : "") + (tail_ ? std::string("+") + tail_->name : "") +
           (fm_ ? " (feature-major: src ba, dst transposed)" : "");
  }
  bool native_feature_major() const override { return fm_; }

  void forward(const float* src, int64_t M, const float* weight, const float* bias,
               float* dst) override {
    if (M == 0) return;
    Entry& e = entry(M);
    auto& eng = dense::engine();
    float* y = dst;
    if (fm_) {
      fm_y_.resize(size_t(M * p_.N));
      y = fm_y_.data();
      const bool sum = std::find(p_.post.begin(), p_.post.end(), IpPostKind::sum) != p_.post.end();
      if (sum && !fm_sum_last_) fm::transpose2d(dst, y, p_.N, M, sizeof(float));
    }
    memory msrc(memory::desc({M, p_.K}, dt::f32, fm_ ? tag::ba : tag::ab), eng, const_cast<float*>(src));
    const memory::desc ymd({M, p_.N}, dt::f32, tag::ab);
    // Split residual: the product (and the post-ops before the sum) into a scratch, then
    // y = y + scratch (y holds the residual) with the post-ops after the sum, in one binary pass.
    if (split_) split_y_.resize(size_t(M * p_.N));
    memory mdst(ymd, eng, split_ ? split_y_.data() : y);
    memory mw = e.weights ? *e.weights : memory(plain_w_, eng, const_cast<float*>(weight));
    std::unordered_map<int, memory> args{{DNNL_ARG_SRC, msrc}, {DNNL_ARG_WEIGHTS, mw}, {DNNL_ARG_DST, mdst}};
    if (p_.has_bias) args.emplace(DNNL_ARG_BIAS, memory(bias_md_, eng, const_cast<float*>(bias)));
    e.prim.execute(dense::stream(), args);
    if (split_) {
      memory my(ymd, eng, y);
      e.add.execute(dense::stream(), {{DNNL_ARG_SRC_0, my}, {DNNL_ARG_SRC_1, mdst}, {DNNL_ARG_DST, my}});
    }
    dense::stream().wait();
    if (tail_) {
      const int64_t total = M * p_.N, chunk = 16384, nb = (total + chunk - 1) / chunk;
      kernels::eltwise::unary_fn* f = tail_->fn;
#pragma omp parallel for schedule(static) num_threads(int(std::max<int64_t>(1, std::min<int64_t>(omp_get_max_threads(), nb))))
      for (int64_t b = 0; b < nb; ++b) f(y + b * chunk, y + b * chunk, std::min(chunk, total - b * chunk));
    }
    if (fm_) {
      if (fm_sum_last_) fm::transpose2d_add(y, dst, M, p_.N);
      else fm::transpose2d(y, dst, M, p_.N, sizeof(float));
    }
  }

 private:
  const kernels::Ukernel<kernels::eltwise::unary_fn>* tail_ = nullptr;  // trailing gelu_tanh, ours
  struct Entry {
    dnnl::matmul prim;
    memory* weights = nullptr;  // packed weight in the layout prim expects; null: plain, per call
    dnnl::binary add;           // split_: y = y + product, with the post-ops after the sum
    std::string impl;           // the primitive's implementation (impl_info_str)
  };

  static dnnl::primitive_attr attr_of(std::vector<IpPostKind>::const_iterator b,
                                      std::vector<IpPostKind>::const_iterator e) {
    const std::vector<IpPostKind> ops(b, e);
    dnnl::post_ops po;
    append_onednn_post_ops(po, ops, ops.size());
    dnnl::primitive_attr a;
    a.set_post_ops(po);
    return a;
  }

  dnnl::matmul::primitive_desc make_pd(int64_t M, const memory::desc& wmd) const { return make_pd(M, wmd, attr_); }
  dnnl::matmul::primitive_desc make_pd(int64_t M, const memory::desc& wmd, const dnnl::primitive_attr& attr) const {
    memory::desc src({M, p_.K}, dt::f32, fm_ ? tag::ba : tag::ab), dst({M, p_.N}, dt::f32, tag::ab);
    auto d = p_.has_bias ? dnnl::matmul::desc(src, wmd, bias_md_, dst) : dnnl::matmul::desc(src, wmd, dst);
    return dnnl::matmul::primitive_desc(d, attr, dense::engine());
  }

  // oneDNN 2.6 below AVX512_CORE runs the fp32 matmul (and inner_product) on its gemm-based
  // implementation, which takes a `sum` post-op only as the first one (it becomes the GEMM's
  // beta): an eltwise before the sum (gelu_erf,sum; relu,sum; ...) leaves only ref:any, for every
  // M, weight layout and primitive kind (measured under ONEDNN_MAX_CPU_ISA=AVX2: ~100x slower).
  // There the chain is split at the sum: the primitive applies the post-ops before it into a
  // scratch, and one binary_add (jit) adds the scratch to the residual already in dst, with the
  // post-ops after the sum as its own post-ops. Kept fused wherever oneDNN has a fast kernel.
  void split_residual_if_ref(const std::vector<IpPostKind>& chain, int64_t m_probe) {
    const auto sum = std::find(chain.begin(), chain.end(), IpPostKind::sum);
    if (sum == chain.end() || sum == chain.begin()) return;
    const memory::desc w_any({p_.K, p_.N}, dt::f32, tag::any);
    const std::string fused = make_pd(m_probe, w_any).impl_info_str();
    if (fused.find("ref") == std::string::npos) return;
    dnnl::primitive_attr head = attr_of(chain.begin(), sum);
    const std::string split = make_pd(m_probe, w_any, head).impl_info_str();
    if (split.find("ref") != std::string::npos) return;  // no better: stay fused
    attr_ = head;
    add_attr_ = attr_of(sum + 1, chain.end());
    split_ = true;
    // (No "ref" in the name: that word marks oneDNN's reference implementation in kernel().)
    split_kernel_ = " + residual sum as onednn:binary:" + std::string(binary_pd(m_probe).impl_info_str()) +
                    " (fused, oneDNN has no optimised kernel for an eltwise before the sum here)";
  }

  dnnl::binary::primitive_desc binary_pd(int64_t M) const {
    const memory::desc y({M, p_.N}, dt::f32, tag::ab);
    return dnnl::binary::primitive_desc(dnnl::binary::desc(dnnl::algorithm::binary_add, y, y, y), add_attr_,
                                        dense::engine());
  }

  Entry& entry(int64_t M) {
    std::lock_guard<std::mutex> g(mu_);
    if (Entry* hit = cache_.find(M)) return *hit;
    Entry e;
    if (!p_.weight_const) {
      auto pd = make_pd(M, plain_w_);
      e.impl = pd.impl_info_str();
      e.prim = dnnl::matmul(pd);
    } else {
      auto pd = make_pd(M, memory::desc({p_.K, p_.N}, dt::f32, tag::any));
      e.weights = dense::packed_weights_for(packed_, pd.weights_desc());
      e.impl = pd.impl_info_str();
      e.prim = dnnl::matmul(pd);
    }
    if (split_) e.add = dnnl::binary(binary_pd(M));
    return cache_.emplace(M, std::move(e));
  }

  IpProblem p_;
  bool fm_ = false, fm_sum_last_ = false;
  std::vector<float> fm_y_;  // feature-major: the token-major result before the transpose
  bool split_ = false;        // residual sum after the primitive (split_residual_if_ref)
  std::vector<float> split_y_;  // split_: the product before the sum
  std::string split_kernel_;
  dnnl::primitive_attr attr_, add_attr_;
  memory::desc plain_w_, bias_md_;
  std::shared_ptr<const PackedBuffer> buf_;  // backs packed_.front()
  std::deque<memory> packed_;  // deque: stable addresses for Entry::weights
  ShapeCache<int64_t, Entry> cache_;
  std::mutex mu_;
  std::string kernel_;
};

const bool g_dense_registered = FpIpList::add("dense", 0, [](const IpProblem& p, const OpConfig&) {
  IpOffer<IpStrategy> o;
  o.impl = std::make_unique<OnednnIp>(p);
  return o;
});

}  // namespace

// ---- the op ----

InnerProductOp::InnerProductOp(const OpInfo& info) : Operator(info) {
  prob_.op_name = info.name;
  const std::string list = info.attr("append_op", "");
  size_t pos = 0;
  while (pos <= list.size() && !list.empty()) {
    size_t e = list.find(',', pos);
    if (e == std::string::npos) e = list.size();
    std::string t = list.substr(pos, e - pos);
    t.erase(0, t.find_first_not_of(" \t"));
    t.erase(t.find_last_not_of(" \t") + 1);
    if (t == "relu") prob_.post.push_back(IpPostKind::relu);
    else if (t == "gelu_erf" || t == "gelu") prob_.post.push_back(IpPostKind::gelu_erf);
    else if (t == "gelu_tanh") prob_.post.push_back(IpPostKind::gelu_tanh);
    else if (t == "tanh") prob_.post.push_back(IpPostKind::tanh);
    else if (t == "sigmoid" || t == "logistic") prob_.post.push_back(IpPostKind::sigmoid);
    else if (t == "sum") {
      if (has_sum_) op_error("append_op '", list, "' has more than one sum (only one residual input)");
      has_sum_ = true;
      prob_.post.push_back(IpPostKind::sum);
    } else if (!t.empty())
      op_error("unknown append_op '", t, "' (expected relu, gelu_erf, gelu_tanh, tanh, sigmoid, sum)");
    pos = e + 1;
  }
  const std::string odt = info.attr("output_dtype", "fp32");
  if (odt != "fp32" && odt != "float32")
    op_error("output_dtype '", odt, "' is not supported (fp32 only)");
  std::string bad;
  prob_.feature_major = fm::parse_layout(info, &bad);
  if (!bad.empty()) op_error("layout '", bad, "' is unknown (token_major | feature_major)");
}

int InnerProductOp::residual_index() const {
  return has_sum_ ? int(info_.inputs.size()) - 1 : -1;
}

void InnerProductOp::init(const TensorList& in) {
  const size_t base = has_sum_ ? 3 : 2;  // src, weight, [bias], [residual]
  expect_inputs(in, base, base + 1);
  prob_.has_bias = in.size() == base + 1;
  const Tensor& w = *in[1];
  if (w.dtype != DType::fp32) op_error("weight '", w.name, "' must be fp32, got ", dtype_name(w.dtype));
  prob_.weight_const = w.is_const && w.data != nullptr;
  if (!prob_.weight_const) return;  // an activation: its shape is known at reshape()
  setup(in);
  prob_.weight = w.ptr<float>();
  prob_.weight_hash = hash_bytes(prob_.weight, size_t(prob_.K) * size_t(prob_.N) * sizeof(float));
  choose_strategy();
  prob_.weight = nullptr;  // not owned; valid during init only
}

void InnerProductOp::setup(const TensorList& in) {
  const Tensor& w = *in[1];
  if (w.rank() != 2) op_error("weight '", w.name, "' must be 2-D [K, N], got ", shape_str(w.shape));
  prob_.K = w.shape[0];
  prob_.N = w.shape[1];
  if (prob_.has_bias) {
    const Tensor& b = *in[2];
    if (b.dtype != DType::fp32) op_error("bias '", b.name, "' must be fp32, got ", dtype_name(b.dtype));
    if (!b.shape.empty() && b.numel() != prob_.N)
      op_error("bias '", b.name, "' ", shape_str(b.shape), " does not match N = ", prob_.N);
  }
  prob_.num_threads_hint = omp_get_max_threads();
}

void InnerProductOp::choose_strategy() {
  // Measured dispatch (the default) builds every entry that accepts and times them per M class;
  // a given threshold (or NE_DISPATCH=threshold) runs the first that accepts.
  IpBuilt<IpStrategy> b = FpIpList::build(prob_, cfg_, measured_dispatch(cfg_) && prob_.weight_const);
  if (b.impls.empty()) {
    std::string d;
    for (auto& x : b.declined) d += (d.empty() ? "" : "; ") + x;
    op_error("no InnerProduct implementation accepted the problem: ", d);
  }
  cands_ = std::move(b.impls);
  const std::string key = "fp32:" + std::to_string(prob_.K) + "x" + std::to_string(prob_.N) + ":" +
                          hex64(prob_.weight_hash) + ":" + info_.attr("append_op", "") +
                          (prob_.feature_major ? ":fm" : "") + (prob_.has_bias ? ":b" : "");
  chooser_.reset(b.names, b.notes, b.declined, key, b.exclusive, b.sure_from_m);
  if (cfg_.verbose)
    fprintf(stderr, "[ne] %s InnerProduct %lldx%lld: %s\n", name().c_str(), (long long)prob_.K, (long long)prob_.N,
            chooser_.reason_for(cands_).c_str());
}

IpStrategy* InnerProductOp::strategy_for(int64_t M) {
  // fp32 timing runs at most 256 rows (a BERT-base FFN weight at M=256 is ~1.2 GFLOP a call).
  const int i = chooser_.index_for(M, 256, [&](int c, int64_t Mt) { return time_candidate(c, Mt); });
  return cands_[size_t(i)].get();
}

double InnerProductOp::time_candidate(int i, int64_t M) {
  // Synthetic src in [-1, 1), zero bias; dst starts at zero (a `sum` adds into it).
  const size_t nk = size_t(M * prob_.K), nn = size_t(M * prob_.N);
  if (tsrc_.size() != nk) {
    tsrc_.resize(nk);
    for (size_t j = 0; j < nk; ++j) tsrc_[j] = float(int((j * 37u + 11u) % 255u) - 127) / 128.f;
  }
  tbias_.assign(size_t(prob_.N), 0.f);
  tdst_.assign(nn, 0.f);
  auto t0 = std::chrono::steady_clock::now();
  run_strategy(cands_[size_t(i)].get(), tsrc_.data(), M, nullptr, tbias_.data(), tdst_.data());
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

std::string InnerProductOp::reason() const { return chooser_.reason_for(cands_); }

std::string InnerProductOp::kernel() const { return chooser_.last_kernel(cands_); }

void InnerProductOp::check_shapes(const TensorList& in) const {
  const Tensor& src = *in[0];
  if (src.dtype != DType::fp32) op_error("src '", src.name, "' must be fp32, got ", dtype_name(src.dtype));
  if (src.rank() < 1) op_error("src '", src.name, "' must have rank >= 1");
  const Tensor& w = *in[1];
  if (w.rank() != 2 || w.shape[0] != prob_.K || w.shape[1] != prob_.N)
    op_error("weight '", w.name, "' ", shape_str(w.shape), " changed since init (", prob_.K, "x", prob_.N, ")");
  if (prob_.has_bias && !in[2]->shape.empty() && in[2]->numel() != prob_.N)
    op_error("bias '", in[2]->name, "' ", shape_str(in[2]->shape), " does not match N = ", prob_.N);
  if (prob_.feature_major) {
    if (src.dim(0) != prob_.K)
      op_error("src '", src.name, "' ", shape_str(src.shape), ": first dim ", src.dim(0),
               " != weight '", w.name, "' K = ", prob_.K, " (layout feature_major: src is [K, ...])");
    return;
  }
  if (src.dim(-1) != prob_.K)
    op_error("src '", src.name, "' ", shape_str(src.shape), ": last dim ", src.dim(-1),
             " != weight '", w.name, "' K = ", prob_.K, " (weight ", shape_str(w.shape), ")");
}

void InnerProductOp::reshape(const TensorList& in, const TensorList& out) {
  expect_inputs(in, has_sum_ ? 3 : 2, has_sum_ ? 4 : 3);
  if (!prob_.weight_const) {
    // Weight is an activation: (re)build the strategy when its shape first shows or changes.
    const Tensor& w = *in[1];
    if (cands_.empty() || w.rank() != 2 || w.shape[0] != prob_.K || w.shape[1] != prob_.N) {
      setup(in);
      choose_strategy();
    }
  }
  if (cands_.empty()) op_error("reshape() before init()");
  check_shapes(in);
  Shape s = in[0]->shape;
  (prob_.feature_major ? s.front() : s.back()) = prob_.N;
  if (has_sum_) {
    const Tensor& r = *in[residual_index()];
    if (r.dtype != DType::fp32) op_error("residual '", r.name, "' must be fp32, got ", dtype_name(r.dtype));
    if (r.numel() != shape_numel(s))
      op_error("residual '", r.name, "' ", shape_str(r.shape), " does not match dst ", shape_str(s));
  }
  out[0]->dtype = DType::fp32;
  out[0]->shape = s;
  // Plan time: the choice for this shape's M class.
  (void)strategy_for(shape_numel(in[0]->shape) / std::max<int64_t>(1, prob_.K));
}

void InnerProductOp::forward(const TensorList& in, const TensorList& out) {
  const Tensor& src = *in[0];
  const int64_t M = src.numel() / std::max<int64_t>(1, prob_.K);
  if ((prob_.feature_major ? src.dim(0) : src.dim(-1)) != prob_.K) check_shapes(in);
  float* dst = out[0]->ptr<float>();
  if (has_sum_) {
    const Tensor& r = *in[residual_index()];
    // In place (the executor gave dst the residual's buffer): nothing to copy.
    if (r.data != out[0]->data) {
      const float* rs = r.ptr<float>();
      const int64_t n = M * prob_.N;
      const int64_t chunk = 1 << 16;
#pragma omp parallel for schedule(static) if (n > 2 * chunk)
      for (int64_t b = 0; b < n; b += chunk)
        std::memcpy(dst + b, rs + b, sizeof(float) * size_t(std::min(chunk, n - b)));
    }
  }
  const float* w = prob_.weight_const ? nullptr : in[1]->ptr<float>();
  const float* bias = prob_.has_bias ? in[2]->ptr<float>() : nullptr;
  run_strategy(strategy_for(M), src.ptr<float>(), M, w, bias, dst);
}

void InnerProductOp::run_strategy(IpStrategy* st, const float* src, int64_t M, const float* w, const float* bias,
                                  float* dst) {
  if (!prob_.feature_major || st->native_feature_major()) {
    st->forward(src, M, w, bias, dst);
    return;
  }
  // Feature-major through a token-major strategy (oneDNN): Xt [K, M] -> X [M, K]; the residual
  // (already in dst, [N, M]) -> [M, N]; GEMM; [M, N] -> dst [N, M].
  fm_src_.resize(size_t(M * prob_.K));
  fm_dst_.resize(size_t(M * prob_.N));
  fm::transpose2d(src, fm_src_.data(), prob_.K, M, sizeof(float));
  if (has_sum_) fm::transpose2d(dst, fm_dst_.data(), prob_.N, M, sizeof(float));
  st->forward(fm_src_.data(), M, w, bias, fm_dst_.data());
  fm::transpose2d(fm_dst_.data(), dst, M, prob_.N, sizeof(float));
}

NE_REGISTER_OP("InnerProduct", InnerProductOp);

}  // namespace ne
