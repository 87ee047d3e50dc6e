// InnerProduct.s8 and InnerProduct.bf16 (docs/OPS.md "Precision"): the InnerProduct variants the
// executor creates when the weight (input 1) is s8 or bf16.
//
//   s8:   src fp32 -> u8/s8 (static src_scale / src_zero_point, or `dynamic`: per call from src's
//         min/max as ONNX Runtime's DynamicQuantizeLinear), or src already u8/s8;
//         acc[m,n] = Σ_k q[m,k]·W[k,n] (int32); y = acc·(s·ws[n]) + bias'[n] with the zero point
//         folded into the bias: bias'[n] = bias[n] − s·ws[n]·zp·colsum[n] (colsum = Σ_k W[k,n]);
//         then the post-ops in append_op order; output fp32 or requantized u8/s8.
//   bf16: src fp32 -> bf16 (RNE) or src bf16; bf16 products, fp32 accumulation, fp32 epilogue;
//         output fp32 (or bf16).
//
// Candidates: the s8 / bf16 entries of the InnerProduct candidate list (ip_candidates.hpp), built
// once at init(); with several, the faster per M class is chosen at plan time, timed on this CPU.
//   sparse_amx_kgather: AMX K-gather kernels (kernels/sparse_gemm *_kgather_16x64__amx) on the
//           weight packed as 16-channel groups of their non-zero k rows; needs AMX, a weight
//           past the threshold, z16 >= 0.3 and the measured dispatch (a given threshold forces
//           the AVX-512 rule; NE_IP_ONLY=sparse_amx_kgather forces it; without AMX the generic
//           reference kernel then runs that packing).
//   sparse: decide_sparse() above the threshold and the post-ops in the kernel epilogue's order
//           ([act] [sum]) -> kernels/sparse_gemm (VNNI u8s8s32 / vdpbf16ps), epilogue fused
//           (scale, bias, act, residual, store as fp32 / bf16 / u8 / s8).
//   dense:  oneDNN matmul (u8|s8 × s8 -> fp32 with per-N output scales (static src scale) or a
//           per-N binary_mul (dynamic), and the folded bias; bf16 × bf16 -> fp32 with bias), weight
//           reordered once (format_tag::any) into the shared weight cache; primitives cached per
//           M. Post-ops eltwise / sum fused. Declines int8 without AVX512_VNNI (oneDNN's u8·s8
//           sums pairs in int16 there and may saturate) and where oneDNN has no matmul.
//   exact:  fallback when nothing else accepted: the block-sparse family's kernels on any
//           weight of the dtype (exact int32 / fp32 accumulation), dense ones too.
// Weights are packed once into the shared weight cache.
#include <glog/logging.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <unordered_map>

#include "executor/env.hpp"
#include "executor/ops/shape_cache.hpp"
#include "executor/ops/dense_common.hpp"
#include "executor/ops/dense_inner_product.hpp"
#include "executor/ops/feature_major.hpp"
#include "executor/ops/ip_candidates.hpp"
#include "executor/ops/sparse_core.hpp"
#include "executor/ops/quant_common.hpp"
#include "executor/sparse_dispatch.hpp"
#include "kernels/cpu_features.hpp"
#include "executor/weight_cache.hpp"

namespace ne {
namespace {

using dnnl::memory;
using tag = memory::format_tag;
using ddt = memory::data_type;

enum class Prec { s8, bf16 };

// What a strategy computes, fixed at init().
struct QProblem {
  std::string op_name;
  Prec prec = Prec::s8;
  int64_t K = 0, N = 0;
  DType src_dt = DType::u8;       // the dtype the GEMM reads: u8 / s8 (s8 op), bf16 (bf16 op)
  std::vector<IpPostKind> post;   // append_op, in order
  DType out_dt = DType::fp32;     // the op's output dtype
  bool has_bias = false;          // bf16: the op's bias; s8: bias or zero-point fold present
  std::vector<float> static_scale;  // s8 with static src scale: s·ws[n] (empty: given per call)
  const void* weight = nullptr;   // [K, N] s8 / bf16 bits; valid during init only
  uint64_t weight_hash = 0;       // hash_bytes of the weight (cache keys)
  SparseDecision decision;        // decide_sparse() of the weight, made once for every entry
  int num_threads_hint = 1;
  bool feature_major = false;     // `layout: feature_major` (src [K, M], dst [N, M])
  float dst_scale = 1.f;          // u8/s8 output: q = sat(nearbyint(y / dst_scale) + dst_zp)
  int dst_zp = 0;
};

// One call. `y` is written as `dst_dt` (fp32 unless the strategy stores other types itself).
struct QCall {
  const void* src = nullptr;
  int64_t M = 0;
  const float* scale = nullptr;     // s8: [N] s·ws[n]
  const float* bias = nullptr;      // [N] (s8: folded) or null
  const float* residual = nullptr;  // `sum`: fp32 [M, N] (may be y itself)
  void* y = nullptr;
  DType dst_dt = DType::fp32;
  float dst_scale = 1.f;
  int dst_zp = 0;
};

class QStrategy {
 public:
  virtual ~QStrategy() = default;
  virtual void forward(const QCall& c) = 0;
  virtual std::string kernel() const = 0;
  // The kernel that runs M rows (default: kernel()).
  virtual std::string kernel_for(int64_t M) { (void)M; return kernel(); }
  // True: stores u8/s8/bf16 dst itself (reading the residual from QCall::residual). False: writes
  // fp32 only, and `sum` adds y's previous content (the op puts the residual there).
  virtual bool stores_any_dtype() const = 0;
  // True: runs src [K, M] / dst [N, M] itself when QProblem::feature_major is set.
  virtual bool native_feature_major() const { return false; }
};

sparse::DType sp_dt(DType d) {
  switch (d) {
    case DType::u8: return sparse::DType::u8;
    case DType::s8: return sparse::DType::s8;
    case DType::bf16: return sparse::DType::bf16;
    default: return sparse::DType::f32;
  }
}

// ---- sparse ----

class SparseQIp : public QStrategy {
 public:
  SparseQIp(const QProblem& p, sparse::Pattern pat, sparse::Blocking blk, sparse::Act act)
      : p_(p), act_(act), core_(make_core(p, pat, blk)) {
    QCall c;
    c.M = 128;
    kernel_ = core_.kernel_for(args(c)).name;
  }
  void forward(const QCall& c) override {
    if (c.M == 0) return;
    core_.run(args(c));
  }
  std::string kernel() const override { return kernel_; }
  std::string kernel_for(int64_t M) override {
    QCall c;
    c.M = M;
    c.dst_dt = p_.out_dt;
    return core_.kernel_for(args(c)).name;
  }
  bool stores_any_dtype() const override { return true; }
  bool native_feature_major() const override { return true; }

 private:
  static SparseGemmCore make_core(const QProblem& p, sparse::Pattern pat, sparse::Blocking blk) {
    const sparse::DType wdt = p.prec == Prec::s8 ? sparse::DType::s8 : sparse::DType::bf16;
    std::vector<uint8_t> canon;
    const void* W = sparse::canonical_zeros(p.weight, wdt, size_t(p.K) * size_t(p.N), &canon);
    return SparseGemmCore(p.op_name, W, wdt, int(p.K), int(p.N), pat, blk, p.weight_hash);
  }
  sparse::GemmArgs args(const QCall& c) const {
    sparse::GemmArgs a;
    a.layout = p_.feature_major ? sparse::Layout::feature_major : sparse::Layout::token_major;
    a.M = int(c.M);
    a.src = c.src;
    a.src_dtype = sp_dt(p_.src_dt);
    a.dst = c.y;
    a.post.scale = c.scale;
    a.post.bias = c.bias;
    a.post.act = act_;
    // The kernel's epilogue reads each residual element before it writes the same dst element,
    // so the residual may alias dst (fp32 output in place).
    a.post.residual = c.residual;
    a.post.dst_dtype = sp_dt(c.dst_dt);
    a.post.dst_scale = c.dst_scale;
    a.post.dst_zero_point = c.dst_zp;
    return a;
  }
  QProblem p_;
  sparse::Act act_;
  SparseGemmCore core_;
  std::string kernel_;
};

// ---- dense: oneDNN matmul ----

ddt dnnl_dt(DType d) {
  switch (d) {
    case DType::u8: return ddt::u8;
    case DType::s8: return ddt::s8;
    case DType::bf16: return ddt::bf16;
    default: return ddt::f32;
  }
}

class OnednnQIp : public QStrategy {
 public:
  explicit OnednnQIp(const QProblem& p) : p_(p) {
    const bool s8 = p.prec == Prec::s8;
    wdt_ = s8 ? ddt::s8 : ddt::bf16;
    sdt_ = dnnl_dt(p.src_dt);
    // Feature-major bf16: src Xt [K, M] given to oneDNN as {M, K} `ba` (brgemm reads it), result
    // token-major in a scratch, transposed into dst (a trailing `sum` added on the way). For
    // u8/s8 src oneDNN 2.6 has only ref_int8 for a `ba` src: the op transposes around the
    // token-major primitive instead (native_feature_major() false).
    fm_ = p.feature_major && !s8;
    fm_sum_last_ = fm_ && !p.post.empty() && p.post.back() == IpPostKind::sum;
    const bool has_sum = std::find(p.post.begin(), p.post.end(), IpPostKind::sum) != p.post.end();
    // s8 with a static src scale: per-N output scales s·ws[n] fixed in the primitive and the
    // (folded) bias through the matmul's own bias argument, which oneDNN adds before the output
    // scale (dst = scale·(acc + bias)): so the op's bias is passed divided by scale[n]
    // (measured on the AMX Xeon, M=1024, u8 src: 0.82-0.96x of dnnl::matmul alone with the bias
    // as a per-N binary_add post-op, 0.97-1.03x through the bias argument).
    // Dynamic: the scale changes every call; runtime output scales (DNNL_RUNTIME_F32_VAL) push
    // oneDNN 2.6 off brgemm (to gemm:jit, and ref_int8 with `sum`), so the scale is a per-N
    // binary_mul post-op instead, given per call, and the bias a binary_add after it.
    bias_pre_scale_ = s8 && !p.static_scale.empty();
    for (float v : p.static_scale) bias_pre_scale_ &= v != 0.f && std::isfinite(1.f / v);
    dnnl::post_ops po;
    if (s8) {
      if (p.static_scale.empty()) {
        po.append_binary(dnnl::algorithm::binary_mul, memory::desc({1, p.N}, ddt::f32, tag::ab));
        scale_po_ = po.len() - 1;
      } else {
        attr_.set_output_scales(2, p.static_scale);
      }
      if (p.has_bias && !bias_pre_scale_) {
        po.append_binary(dnnl::algorithm::binary_add, memory::desc({1, p.N}, ddt::f32, tag::ab));
        bias_po_ = po.len() - 1;
      }
    }
    append_onednn_post_ops(po, p.post, p.post.size() - (fm_sum_last_ ? 1 : 0));
    attr_.set_post_ops(po);
    // The op's own output dtype straight from oneDNN when it can: bf16, or u8/s8 with a static
    // scale (the requantization q = sat(nearbyint(y / dst_scale) + zp) as a last eltwise_linear
    // post-op; oneDNN rounds to nearest even and saturates on the store). Not with `sum` (the
    // residual is fp32) nor feature-major. Saves the fp32 scratch pass.
    odt_ = ddt::f32;
    if (!has_sum && !fm_ && !p.feature_major) {
      if (p.out_dt == DType::bf16 && !s8) odt_ = ddt::bf16;
      if ((p.out_dt == DType::u8 || p.out_dt == DType::s8) && s8 && p.static_scale.size() && p.dst_scale > 0) {
        odt_ = p.out_dt == DType::u8 ? ddt::u8 : ddt::s8;
        attr_q_ = attr_;
        dnnl::post_ops pq = po;
        pq.append_eltwise(1.f, dnnl::algorithm::eltwise_linear, 1.f / p.dst_scale, float(p.dst_zp));
        attr_q_.set_post_ops(pq);
      }
    }
    plain_w_ = memory::desc({p.K, p.N}, wdt_, tag::ab);
    bias_md_ = memory::desc({1, p.N}, ddt::f32, tag::ab);
    const int64_t m_typ = 128 * std::max(1, p.num_threads_hint);
    auto pd = make_pd(m_typ, ddt::f32, tag::any);
    const std::string wkey = hex64(p.weight_hash);
    // Pack in the layout of each M class (dense_common.hpp), front = the typical M's.
    auto pack_layout = [&](const memory::desc& wmd) {
      if (dense::find_packed_weights(packed_, wmd)) return;
      const std::string key = std::string("onednn_ip:") + dtype_name(p.src_dt) + (s8 ? "s8" : "bf16") + ":" +
                              std::to_string(p.K) + "x" + std::to_string(p.N) + ":" +
                              std::to_string(DNNL_VERSION_MAJOR) + "." + std::to_string(DNNL_VERSION_MINOR) + ":" +
                              hex64(hash_bytes(&wmd.data, sizeof(wmd.data))) + ":" + wkey;
      auto buf = get_packed(key, wmd.get_size(), [&](uint8_t* dstp) {
        memory user(plain_w_, dense::engine(), const_cast<void*>(p.weight));
        memory packed(wmd, dense::engine(), dstp);
        dnnl::reorder(user, packed).execute(dense::stream(), user, packed);
        dense::stream().wait();
      });
      // oneDNN only reads weights: the read-only mapping is safe behind the non-const handle.
      packed_.push_back(memory(wmd, dense::engine(), const_cast<uint8_t*>(buf->data())));
      bufs_.push_back(std::move(buf));
    };
    pack_layout(pd.weights_desc());
    for (int64_t m : dense::kWeightLayoutProbeM) pack_layout(make_pd(m, ddt::f32, tag::any).weights_desc());
    if (odt_ != ddt::f32)
      for (int64_t m : {int64_t(1), int64_t(16), m_typ}) pack_layout(make_pd(m, odt_, tag::any).weights_desc());
    kernel_ = std::string("onednn:") + pd.impl_info_str();
  }
  std::string kernel() const override { return kernel_ + (fm_ ? " (feature-major: src ba, dst transposed)" : ""); }
  std::string kernel_for(int64_t M) override {
    if (M <= 0) return kernel();
    Entry& e = entry(M, odt_);
    return "onednn:" + e.impl + (fm_ ? " (feature-major: src ba, dst transposed)" : "");
  }
  bool stores_any_dtype() const override { return odt_ != ddt::f32; }
  bool native_feature_major() const override { return fm_; }

  void forward(const QCall& c) override {
    if (c.M == 0) return;
    // The op asks for fp32 (its scratch: feature-major, `sum`) or, when stores_any_dtype(), for
    // its own output dtype, which this primitive was built for.
    const ddt want = c.dst_dt == DType::fp32 ? ddt::f32 : odt_;
    NE_CHECK(c.dst_dt == DType::fp32 || want != ddt::f32, "operator '", p_.op_name, "': dense strategy cannot store ",
             dtype_name(c.dst_dt));
    Entry& e = entry(c.M, want);
    auto& eng = dense::engine();
    void* y = c.y;
    if (fm_) {
      fm_y_.resize(size_t(c.M * p_.N));
      y = fm_y_.data();
      if (c.residual && !fm_sum_last_) fm::transpose2d(c.y, y, p_.N, c.M, sizeof(float));
    }
    memory msrc(memory::desc({c.M, p_.K}, sdt_, fm_ ? tag::ba : tag::ab), eng, const_cast<void*>(c.src));
    memory mdst(memory::desc({c.M, p_.N}, want, tag::ab), eng, y);
    std::unordered_map<int, memory> args{{DNNL_ARG_SRC, msrc}, {DNNL_ARG_WEIGHTS, *e.weights}, {DNNL_ARG_DST, mdst}};
    if (p_.prec == Prec::s8) {
      if (scale_po_ >= 0)
        args.emplace(DNNL_ARG_ATTR_MULTIPLE_POST_OP(scale_po_) | DNNL_ARG_SRC_1,
                     memory(bias_md_, eng, const_cast<float*>(c.scale)));
      if (bias_po_ >= 0)
        args.emplace(DNNL_ARG_ATTR_MULTIPLE_POST_OP(bias_po_) | DNNL_ARG_SRC_1,
                     memory(bias_md_, eng, const_cast<float*>(c.bias)));
      if (bias_pre_scale_ && c.bias) {
        // oneDNN adds the bias before the output scale: pass bias[n] / scale[n] (N divisions).
        bias_pre_.resize(size_t(p_.N));
        for (int64_t n = 0; n < p_.N; ++n) bias_pre_[size_t(n)] = c.bias[n] / p_.static_scale[size_t(n)];
        args.emplace(DNNL_ARG_BIAS, memory(bias_md_, eng, bias_pre_.data()));
      }
    } else if (p_.has_bias) {
      args.emplace(DNNL_ARG_BIAS, memory(bias_md_, eng, const_cast<float*>(c.bias)));
    }
    e.prim.execute(dense::stream(), args);
    dense::stream().wait();
    if (fm_) {
      float* yf = static_cast<float*>(y);
      if (fm_sum_last_) fm::transpose2d_add(yf, static_cast<float*>(c.y), c.M, p_.N);
      else fm::transpose2d(yf, c.y, c.M, p_.N, sizeof(float));
    }
  }

 private:
  struct Entry {
    dnnl::matmul prim;
    memory* weights = nullptr;
    std::string impl;  // the primitive's implementation (impl_info_str)
  };
  dnnl::matmul::primitive_desc make_pd(int64_t M, ddt odt, const memory::desc& w) const {
    memory::desc src({M, p_.K}, sdt_, fm_ ? tag::ba : tag::ab), dst({M, p_.N}, odt, tag::ab);
    const bool bias = p_.prec == Prec::bf16 ? p_.has_bias : bias_pre_scale_ && p_.has_bias;
    auto d = bias ? dnnl::matmul::desc(src, w, bias_md_, dst) : dnnl::matmul::desc(src, w, dst);
    const bool q = odt == ddt::u8 || odt == ddt::s8;
    return dnnl::matmul::primitive_desc(d, q ? attr_q_ : attr_, dense::engine());
  }
  dnnl::matmul::primitive_desc make_pd(int64_t M, ddt odt, tag t) const {
    return make_pd(M, odt, memory::desc({p_.K, p_.N}, wdt_, t));
  }
  Entry& entry(int64_t M, ddt odt) {
    std::lock_guard<std::mutex> g(mu_);
    const auto key = std::make_pair(M, int(odt));
    if (Entry* hit = cache_.find(key)) return *hit;
    Entry e;
    auto pd = make_pd(M, odt, tag::any);
    e.weights = dense::find_packed_weights(packed_, pd.weights_desc());
    // An M class not probed at init: a primitive on one of the packed layouts, else a reorder.
    for (size_t i = 0; !e.weights && i < packed_.size(); ++i) {
      try {
        pd = make_pd(M, odt, packed_[i].get_desc());
        e.weights = &packed_[i];
      } catch (const dnnl::error&) {
      }
    }
    if (!e.weights) {
      try {
        e.weights = dense::packed_weights_for(packed_, pd.weights_desc());
      } catch (const dnnl::error& x) {
        fail("operator '", p_.op_name, "' (InnerProduct): oneDNN cannot run M=", M, " on the weight [", p_.K, ", ",
             p_.N, "] in any packed layout (", x.what(), ")");
      }
    }
    e.impl = pd.impl_info_str();
    e.prim = dnnl::matmul(pd);
    return cache_.emplace(key, std::move(e));
  }

  QProblem p_;
  bool fm_ = false, fm_sum_last_ = false, bias_pre_scale_ = false;
  std::vector<float> fm_y_, bias_pre_;
  ddt wdt_, sdt_, odt_ = ddt::f32;
  int scale_po_ = -1, bias_po_ = -1;  // indices of the per-call binary post-ops (s8)
  dnnl::primitive_attr attr_, attr_q_;
  memory::desc plain_w_, bias_md_;
  std::vector<std::shared_ptr<const PackedBuffer>> bufs_;  // back the packed_ layouts made at init
  std::deque<memory> packed_;
  ShapeCache<std::pair<int64_t, int>, Entry> cache_;
  std::mutex mu_;
  std::string kernel_;
};

// ---- the s8 / bf16 candidate list ----

using QIpList = IpList<QProblem, QStrategy>;
using QOffer = IpOffer<QStrategy>;

sparse::DType weight_dt(const QProblem& p) { return p.prec == Prec::s8 ? sparse::DType::s8 : sparse::DType::bf16; }
const char* prec_name(const QProblem& p) { return p.prec == Prec::s8 ? "int8" : "bf16"; }

// The AMX K-gather kernels skip a TMUL only where a k row is zero for all 16 channels of a
// group: below this z16 (4x1 at 90% is ~0.19) they execute nearly every dense TMUL.
constexpr double kKgatherMinZ = 0.3;

const bool g_kgather = QIpList::add("sparse_amx_kgather", 200, [](const QProblem& p, const OpConfig& cfg) {
  QOffer o;
  const bool forced = env::ip_only() == "sparse_amx_kgather";
  const bool amx = cpu::mayiuse(cpu::Isa::avx512_core_amx);
  if (!amx && !forced) {
    o.note = "needs AMX (" + cpu::why_not(cpu::Isa::avx512_core_amx) + ")";
    return o;
  }
  if (!forced && !measured_dispatch(cfg)) {
    // A given threshold (or NE_DISPATCH=threshold) forces the AVX-512 sparse rule: the K-gather
    // kernels beat it only on some weights (kernels/bench/RESULTS.md), so they run as timed
    // candidates only.
    o.note = "runs only as a timed candidate (a threshold was given, or NE_DISPATCH=threshold)";
    return o;
  }
  sparse::Act act;
  bool sum;
  if (!sparse_epilogue(p.post, &act, &sum, &o.note)) return o;
  const sparse::DType wdt = weight_dt(p);
  std::vector<uint8_t> canon;
  const void* W = sparse::canonical_zeros(p.weight, wdt, size_t(p.K) * size_t(p.N), &canon);
  const double z = sparse::z16(W, wdt, int(p.K), int(p.N));
  char b[160];
  if (!forced) {
    if (!cfg.allow_sparse) {
      o.note = "sparse kernels disabled";
      return o;
    }
    const SparseDecision& d = p.decision;
    const float thr = sparse_threshold_for(d.best, cfg);
    if (!(d.best_sparsity > thr)) {
      std::snprintf(b, sizeof b, "weight %.1f%% sparse (best %s) <= %.0f%%", 100 * d.best_sparsity,
                    sparse::pattern_name(d.best), 100 * thr);
      o.note = b;
      return o;
    }
    if (z < kKgatherMinZ) {
      std::snprintf(b, sizeof b, "z16 %.2f < %.2f: too few all-zero (16-channel, k) rows for AMX to skip", z,
                    kKgatherMinZ);
      o.note = b;
      return o;
    }
  }
  std::snprintf(b, sizeof b, "z16 %.2f", z);
  o.note = b;
  if (!amx) o.note += ", forced by NE_IP_ONLY without AMX: the generic reference kernel runs the K-gather packing";
  o.impl = std::make_unique<SparseQIp>(p, sparse::Pattern::p1x4, sparse::Blocking::amx_kgather, act);
  o.exclusive = forced;
  return o;
});

const bool g_sparse = QIpList::add("sparse", 100, [](const QProblem& p, const OpConfig& cfg) {
  QOffer o;
  sparse::Act act;
  bool sum;
  if (!sparse_epilogue(p.post, &act, &sum, &o.note)) return o;
  const SparseDecision& d = p.decision;
  o.note = d.reason;
  if (!d.sparse) return o;
  o.impl = std::make_unique<SparseQIp>(p, d.best, sparse::Blocking::standard, act);
  // Above the threshold the sparse kernel is a candidate, not the answer (on an AMX CPU oneDNN's
  // dense int8/bf16 can beat it at 90%): unless a threshold was given, dense is timed beside it.
  o.exclusive = !measured_dispatch(cfg);
  return o;
});

const bool g_dense = QIpList::add("dense", 0, [](const QProblem& p, const OpConfig&) {
  QOffer o;
  if (p.prec == Prec::s8 && !cpu::mayiuse(cpu::Isa::avx512_core_vnni)) {
    // Without VNNI, oneDNN's u8·s8 path sums pairs of products in int16 (vpmaddubsw) and can
    // saturate: wrong answers.
    o.note = "needs AVX512_VNNI: oneDNN's u8*s8 may saturate without it (" + cpu::why_not(cpu::Isa::avx512_core_vnni) + ")";
    return o;
  }
  try {
    o.impl = std::make_unique<OnednnQIp>(p);
  } catch (const dnnl::error& e) {
    // oneDNN 2.6 has no bf16 matmul below AVX512_CORE (ONEDNN_MAX_CPU_ISA=AVX2, an AVX2 CPU).
    o.note = std::string("oneDNN has no ") + prec_name(p) + " matmul for it on this CPU (" + e.what() + ")";
  }
  return o;
});

// The block-sparse family's kernels run any weight of the dtype (exact int32 products, or fp32
// accumulation of the exact bf16 products): slower than a SIMD path for a dense weight, never
// wrong. Built only when no other entry accepted.
const bool g_exact = QIpList::add(
    "exact", -100,
    [](const QProblem& p, const OpConfig&) {
      QOffer o;
      sparse::Act act;
      bool sum;
      if (!sparse_epilogue(p.post, &act, &sum, &o.note)) {
        o.note = "the post-op order is not one the exact kernels run (" + o.note + ")";
        return o;
      }
      o.impl = std::make_unique<SparseQIp>(p, p.decision.best, sparse::Blocking::standard, act);
      o.note = std::string("the block-sparse family's exact ") + (p.prec == Prec::s8 ? "int32" : "fp32-accumulating") +
               " kernels run every weight where nothing faster is exact";
      return o;
    },
    /*fallback=*/true);

// ---- the op ----

class QuantIpOp : public Operator {
 public:
  QuantIpOp(const OpInfo& info, Prec prec) : Operator(info), prec_(prec) {
    parse_post(info.attr("append_op", ""));
    const std::string odt = info.attr("output_dtype", "fp32");
    if (!parse_dtype(odt, &out_dt_)) op_error("unknown output_dtype '", odt, "'");
    if (prec == Prec::s8) {
      if (out_dt_ != DType::fp32 && out_dt_ != DType::u8 && out_dt_ != DType::s8)
        op_error("output_dtype '", odt, "' must be fp32, u8 or s8");
      const std::string sdt = info.attr("src_dtype", "u8");
      if (!parse_dtype(sdt, &src_dt_) || (src_dt_ != DType::u8 && src_dt_ != DType::s8))
        op_error("src_dtype '", sdt, "' must be u8 or s8");
      const std::string ss = info.attr("src_scale", "");
      if (ss.empty()) op_error("missing attribute src_scale (a number, or 'dynamic')");
      dynamic_ = ss == "dynamic";
      if (!dynamic_) {
        src_scale_ = info.attr_float("src_scale", 0.f);
        if (!(src_scale_ > 0) || !std::isfinite(src_scale_))
          op_error("src_scale ", ss, " must be a positive finite number or 'dynamic'");
        const int64_t zp = info.attr_int("src_zero_point", 0);
        const int64_t lo = 0, hi = src_dt_ == DType::u8 ? 255 : 0;
        if (zp < lo || zp > hi)
          op_error("src_zero_point ", zp, " out of range for src_dtype ", dtype_name(src_dt_),
                   src_dt_ == DType::s8 ? " (s8 activations are symmetric: 0)" : " (0..255)");
        src_zp_ = int(zp);
      }
    } else {
      if (out_dt_ != DType::fp32 && out_dt_ != DType::bf16) op_error("output_dtype '", odt, "' must be fp32 or bf16");
      src_dt_ = DType::bf16;
    }
    std::string bad;
    fm_ = fm::parse_layout(info, &bad);
    if (!bad.empty()) op_error("layout '", bad, "' is unknown (token_major | feature_major)");
    if (out_dt_ == DType::u8 || out_dt_ == DType::s8) {
      dst_scale_ = info.attr_float("dst_scale", 0.f);
      if (!(dst_scale_ > 0) || !std::isfinite(dst_scale_))
        op_error("output_dtype ", dtype_name(out_dt_), " needs a positive dst_scale");
      const int64_t zp = info.attr_int("dst_zero_point", 0);
      if (out_dt_ == DType::u8 ? (zp < 0 || zp > 255) : (zp < -128 || zp > 127))
        op_error("dst_zero_point ", zp, " out of range for ", dtype_name(out_dt_));
      dst_zp_ = int(zp);
    }
  }

  void init(const TensorList& in) override {
    const size_t base = (prec_ == Prec::s8 ? 3 : 2) + (has_sum_ ? 1 : 0);
    expect_inputs(in, base, base + 1);
    has_bias_ = in.size() == base + 1;
    bias_idx_ = has_bias_ ? (prec_ == Prec::s8 ? 3 : 2) : -1;
    const Tensor& w = *in[1];
    const DType wdt = prec_ == Prec::s8 ? DType::s8 : DType::bf16;
    if (w.dtype != wdt) op_error("weight '", w.name, "' must be ", dtype_name(wdt), ", got ", dtype_name(w.dtype));
    if (!w.is_const || !w.data) op_error("weight '", w.name, "' must be a constant");
    if (w.rank() != 2) op_error("weight '", w.name, "' must be 2-D [K, N], got ", shape_str(w.shape));
    K_ = w.shape[0];
    N_ = w.shape[1];
    if (prec_ == Prec::s8) {
      const Tensor& s = *in[2];
      if (s.dtype != DType::fp32 || !s.is_const || !s.data)
        op_error("weight_scale '", s.name, "' must be a constant fp32 tensor");
      if (s.numel() != N_ && s.numel() != 1)
        op_error("weight_scale '", s.name, "' ", shape_str(s.shape), " must have N = ", N_, " or 1 element");
      wscale_.assign(size_t(N_), 0.f);
      for (int64_t n = 0; n < N_; ++n) wscale_[size_t(n)] = s.ptr<float>()[s.numel() == 1 ? 0 : n];
      colsum_.assign(size_t(N_), 0);
      const int8_t* W = w.ptr<int8_t>();
      for (int64_t k = 0; k < K_; ++k)
        for (int64_t n = 0; n < N_; ++n) colsum_[size_t(n)] += W[k * N_ + n];
    }
    if (has_bias_) {
      const Tensor& b = *in[size_t(bias_idx_)];
      if (b.dtype != DType::fp32) op_error("bias '", b.name, "' must be fp32, got ", dtype_name(b.dtype));
      if (!b.shape.empty() && b.numel() != N_) op_error("bias '", b.name, "' ", shape_str(b.shape), " does not match N = ", N_);
    }
    QProblem p;
    p.op_name = name();
    p.prec = prec_;
    p.K = K_;
    p.N = N_;
    p.src_dt = src_dt_;
    p.post = post_;
    p.out_dt = out_dt_;
    // s8: the bias input carries the zero-point fold too (u8 src may have zp != 0).
    p.has_bias = has_bias_ || (prec_ == Prec::s8 && src_dt_ == DType::u8);
    if (prec_ == Prec::s8 && !dynamic_) {
      p.static_scale.resize(size_t(N_));
      for (int64_t n = 0; n < N_; ++n) p.static_scale[size_t(n)] = src_scale_ * wscale_[size_t(n)];
    }
    p.weight = w.data;
    p.weight_hash = hash_bytes(w.data, size_t(K_) * size_t(N_) * dtype_size(w.dtype));
    p.decision = decide_sparse(w.data, prec_ == Prec::s8 ? sparse::DType::s8 : sparse::DType::bf16, int(K_), int(N_), cfg_);
    p.num_threads_hint = omp_get_max_threads();
    p.feature_major = fm_;
    p.dst_scale = dst_scale_;
    p.dst_zp = dst_zp_;
    choose(p);
  }

  void reshape(const TensorList& in, const TensorList& out) override {
    const size_t base = (prec_ == Prec::s8 ? 3 : 2) + (has_sum_ ? 1 : 0);
    expect_inputs(in, base, base + 1);
    if (cands_.empty()) op_error("reshape() before init()");
    const Tensor& src = *in[0];
    if (prec_ == Prec::s8) {
      if (src.dtype != DType::fp32 && src.dtype != src_dt_)
        op_error("src '", src.name, "' must be fp32 or ", dtype_name(src_dt_), " (src_dtype), got ", dtype_name(src.dtype));
      if (src.dtype != DType::fp32 && dynamic_)
        op_error("src '", src.name, "' is already quantized but src_scale is 'dynamic'");
    } else if (src.dtype != DType::fp32 && src.dtype != DType::bf16) {
      op_error("src '", src.name, "' must be fp32 or bf16, got ", dtype_name(src.dtype));
    }
    if (src.rank() < 1 || (fm_ ? src.dim(0) : src.dim(-1)) != K_)
      op_error("src '", src.name, "' ", shape_str(src.shape), ": ", fm_ ? "first" : "last", " dim must be K = ", K_,
               " (weight '", in[1]->name, "' ", shape_str(in[1]->shape), fm_ ? "; layout feature_major)" : ")");
    Shape s = src.shape;
    (fm_ ? s.front() : s.back()) = N_;
    if (has_sum_) {
      const Tensor& r = *in.back();
      if (r.dtype != DType::fp32) op_error("residual '", r.name, "' must be fp32, got ", dtype_name(r.dtype));
      if (r.numel() != shape_numel(s))
        op_error("residual '", r.name, "' ", shape_str(r.shape), " does not match dst ", shape_str(s));
    }
    out[0]->dtype = out_dt_;
    out[0]->shape = s;
    // Plan time: the choice for this shape's M class.
    (void)strategy_for(src.numel() / std::max<int64_t>(1, K_));
  }

  int inplace_input() const override {
    return has_sum_ && out_dt_ == DType::fp32 ? int(info_.inputs.size()) - 1 : -1;
  }
  // The kernel that ran last (each M class's timings and choice are in reason()).
  std::string kernel() const override { return chooser_.last_kernel(cands_); }
  std::string reason() const override { return chooser_.reason_for(cands_); }

  void forward(const TensorList& in, const TensorList& out) override {
    const Tensor& src = *in[0];
    const int64_t M = src.numel() / std::max<int64_t>(1, K_);
    if ((fm_ ? src.dim(0) : src.dim(-1)) != K_)
      op_error("src '", src.name, "' ", shape_str(src.shape), ": ", fm_ ? "first" : "last", " dim != K = ", K_);
    QCall c;
    c.M = M;
    const float* bias = has_bias_ ? in[size_t(bias_idx_)]->ptr<float>() : nullptr;

    // 1. src in the GEMM's dtype.
    if (prec_ == Prec::s8) {
      float s = src_scale_;
      int zp = src_zp_;
      if (src.dtype == DType::fp32) {
        const float* x = src.ptr<float>();
        const int64_t n = M * K_;
        if (dynamic_) {
          float mn = 0, mx = 0;
          if (n > 0) quant::minmax(x, n, &mn, &mx);
          quant::dynamic_qparams(mn, mx, src_dt_ == DType::s8, &s, &zp);
        }
        qsrc_.resize(size_t(n) + 64);
        quant::quantize(x, qsrc_.data(), n, s, zp, src_dt_ == DType::s8);
        c.src = qsrc_.data();
      } else {
        c.src = src.data;
      }
      // 2. per-N scale and the zero-point fold.
      scale_.resize(size_t(N_));
      for (int64_t n = 0; n < N_; ++n) scale_[size_t(n)] = s * wscale_[size_t(n)];
      if (has_bias_ || src_dt_ == DType::u8) {
        bias_.resize(size_t(N_));
        for (int64_t n = 0; n < N_; ++n)
          bias_[size_t(n)] = (bias ? bias[n] : 0.f) - scale_[size_t(n)] * float(zp) * float(colsum_[size_t(n)]);
        c.bias = bias_.data();
      }
      c.scale = scale_.data();
    } else {
      if (src.dtype == DType::fp32) {
        qsrc_.resize(size_t(M * K_) * 2 + 64);
        quant::to_bf16(src.ptr<float>(), reinterpret_cast<uint16_t*>(qsrc_.data()), M * K_);
        c.src = qsrc_.data();
      } else {
        c.src = src.data;
      }
      c.bias = bias;
    }

    // 3. GEMM + epilogue; the residual for `sum`.
    const float* res = has_sum_ ? in.back()->ptr<float>() : nullptr;
    run_gemm(strategy_for(M), c, res, out[0]->data);
  }

  // Step 3 of forward() with strategy `st`: GEMM + epilogue, the residual `res` for `sum`, the
  // output conversions the strategy does not do itself, into dst. c.src/scale/bias are set.
  void run_gemm(QStrategy* st, QCall c, const float* res, void* dst) {
    const int64_t M = c.M, MN = M * N_;
    if (fm_ && !st->native_feature_major()) {
      // Feature-major through the token-major oneDNN strategy: src [K, M] -> [M, K], the residual
      // [N, M] -> [M, N] into the fp32 scratch, GEMM, then back to [N, M] (and converted).
      const size_t es = dtype_size(prec_ == Prec::s8 ? src_dt_ : DType::bf16);
      fm_src_.resize(size_t(M * K_) * es + 64);
      fm::transpose2d(c.src, fm_src_.data(), K_, M, es);
      c.src = fm_src_.data();
      yf_.resize(size_t(MN) + 16);
      if (has_sum_) fm::transpose2d(res, yf_.data(), N_, M, sizeof(float));
      c.y = yf_.data();
      c.residual = has_sum_ ? yf_.data() : nullptr;
      st->forward(c);
      if (out_dt_ == DType::fp32) {
        fm::transpose2d(yf_.data(), dst, M, N_, sizeof(float));
        return;
      }
      fm_y_.resize(size_t(MN) + 16);
      fm::transpose2d(yf_.data(), fm_y_.data(), M, N_, sizeof(float));
      if (out_dt_ == DType::bf16)
        quant::to_bf16(fm_y_.data(), static_cast<uint16_t*>(dst), MN);
      else
        quant::quantize(fm_y_.data(), dst, MN, dst_scale_, dst_zp_, out_dt_ == DType::s8);
      return;
    }
    auto put_residual = [&](float* y) {
      if (!has_sum_ || res == y) return;  // in place: the executor gave dst the residual's buffer
      const int64_t chunk = 1 << 16;
#pragma omp parallel for schedule(static) if (MN > 2 * chunk)
      for (int64_t b = 0; b < MN; b += chunk) std::memcpy(y + b, res + b, sizeof(float) * size_t(std::min(chunk, MN - b)));
    };
    if (out_dt_ == DType::fp32) {
      float* y = static_cast<float*>(dst);
      put_residual(y);
      c.y = y;
      c.residual = has_sum_ ? y : nullptr;
      st->forward(c);
    } else if (st->stores_any_dtype()) {
      c.y = dst;
      c.residual = res;
      c.dst_dt = out_dt_;
      c.dst_scale = dst_scale_;
      c.dst_zp = dst_zp_;
      st->forward(c);
    } else {
      yf_.resize(size_t(MN) + 16);
      put_residual(yf_.data());
      c.y = yf_.data();
      c.residual = has_sum_ ? yf_.data() : nullptr;
      st->forward(c);
      if (out_dt_ == DType::bf16)
        quant::to_bf16(yf_.data(), static_cast<uint16_t*>(dst), MN);
      else
        quant::quantize(yf_.data(), dst, MN, dst_scale_, dst_zp_, out_dt_ == DType::s8);
    }
  }

  // ---- the choice among the candidates (ip_candidates.hpp) ----
  // int8 / bf16 timing runs at most 512 rows: the sparse-vs-dense winner at M = 128 and 1024 agreed at
  // 111 of 117 grid points on Zen 5 (the rest near-ties; docs/results/zen5_rule_grid.txt), and the
  // largest class timed at 1024 cost ~26 ms per BERT-base op.
  QStrategy* strategy_for(int64_t M) {
    const int i = chooser_.index_for(M, 512, [&](int c, int64_t Mt) { return time_candidate(c, Mt); });
    return cands_[size_t(i)].get();
  }

  // Candidate i once on synthetic data of M rows through the same step 3 as a real call (output
  // conversions and feature-major transposes included); seconds.
  double time_candidate(int i, int64_t M) {
    using clk = std::chrono::steady_clock;
    const size_t es = prec_ == Prec::s8 ? 1 : 2;
    if (tM_ != M) {
      tM_ = M;
      tsrc_.assign(size_t(M * K_) * es + 64, 0);
      if (prec_ == Prec::s8) {
        for (size_t j = 0; j < tsrc_.size(); ++j) tsrc_[j] = uint8_t((j * 37u + 11u) & 0x7f);
      } else {
        uint16_t* b = reinterpret_cast<uint16_t*>(tsrc_.data());
        for (size_t j = 0; j < tsrc_.size() / 2; ++j) b[j] = uint16_t(0x3f80u + (j * 7u & 0x7fu));  // ~[1, 2)
      }
      tscale_.assign(size_t(N_), 1e-3f);
      tbias_.assign(size_t(N_), 0.f);
      tdst_.assign(size_t(M * N_) * 4 + 64, 0);
    }
    tres_.assign(has_sum_ ? size_t(M * N_) : 0, 0.f);
    QCall c;
    c.M = M;
    c.src = tsrc_.data();
    c.scale = prec_ == Prec::s8 ? tscale_.data() : nullptr;
    c.bias = tbias_.data();
    auto t0 = clk::now();
    run_gemm(cands_[size_t(i)].get(), c, has_sum_ ? tres_.data() : nullptr, tdst_.data());
    return std::chrono::duration<double>(clk::now() - t0).count();
  }

 private:
  void parse_post(const std::string& list) {
    size_t pos = 0;
    while (!list.empty() && pos <= list.size()) {
      size_t e = list.find(',', pos);
      if (e == std::string::npos) e = list.size();
      std::string t = list.substr(pos, e - pos);
      t.erase(0, t.find_first_not_of(" \t"));
      t.erase(t.find_last_not_of(" \t") + 1);
      if (t == "relu") post_.push_back(IpPostKind::relu);
      else if (t == "gelu_erf" || t == "gelu") post_.push_back(IpPostKind::gelu_erf);
      else if (t == "gelu_tanh") post_.push_back(IpPostKind::gelu_tanh);
      else if (t == "tanh") post_.push_back(IpPostKind::tanh);
      else if (t == "sigmoid" || t == "logistic") post_.push_back(IpPostKind::sigmoid);
      else if (t == "sum") {
        if (has_sum_) op_error("append_op '", list, "' has more than one sum (only one residual input)");
        has_sum_ = true;
        post_.push_back(IpPostKind::sum);
      } else if (!t.empty())
        op_error("unknown append_op '", t, "' (expected relu, gelu_erf, gelu_tanh, tanh, sigmoid, sum)");
      pos = e + 1;
    }
  }

  void choose(const QProblem& p) {
    IpBuilt<QStrategy> b = QIpList::build(p, cfg_, measured_dispatch(cfg_));
    if (b.impls.empty()) {
      std::string d;
      for (auto& x : b.declined) d += (d.empty() ? "" : "; ") + x;
      op_error("no InnerProduct.", prec_ == Prec::s8 ? "s8" : "bf16", " candidate accepted the weight: ", d);
    }
    cands_ = std::move(b.impls);
    std::string key = std::string(prec_ == Prec::s8 ? "s8:" : "bf16:") + std::to_string(K_) + "x" + std::to_string(N_) +
                      ":" + hex64(p.weight_hash) + ":" + info_.attr("append_op", "") + ":" + dtype_name(src_dt_) +
                      ">" + dtype_name(out_dt_) + (fm_ ? ":fm" : "") + (has_bias_ ? ":b" : "") +
                      (dynamic_ ? ":dyn" : "");
    chooser_.reset(b.names, b.notes, b.declined, key, b.exclusive);
    if (cfg_.verbose)
      LOG(INFO) << "InnerProduct." << (prec_ == Prec::s8 ? "s8" : "bf16") << " '" << name() << "' [" << K_ << "x"
                << N_ << "]: " << reason();
  }

  Prec prec_;
  std::vector<IpPostKind> post_;
  bool has_sum_ = false, has_bias_ = false, dynamic_ = false;
  bool fm_ = false;  // layout feature_major
  int bias_idx_ = -1;
  DType src_dt_ = DType::u8, out_dt_ = DType::fp32;
  float src_scale_ = 1.f, dst_scale_ = 1.f;
  int src_zp_ = 0, dst_zp_ = 0;
  int64_t K_ = 0, N_ = 0;
  std::vector<float> wscale_;
  std::vector<int32_t> colsum_;
  std::vector<std::unique_ptr<QStrategy>> cands_;  // list order (ip_candidates.hpp)
  IpChooser chooser_;
  // Timing scratch (synthetic data of tM_ rows).
  int64_t tM_ = -1;
  std::vector<uint8_t> tsrc_, tdst_;
  std::vector<float> tscale_, tbias_, tres_;
  // Per-call scratch (ops of one Executor run one at a time).
  std::vector<uint8_t> qsrc_, fm_src_;
  std::vector<float> scale_, bias_, yf_, fm_y_;
};

class InnerProductS8Op : public QuantIpOp {
 public:
  explicit InnerProductS8Op(const OpInfo& i) : QuantIpOp(i, Prec::s8) {}
};
class InnerProductBf16Op : public QuantIpOp {
 public:
  explicit InnerProductBf16Op(const OpInfo& i) : QuantIpOp(i, Prec::bf16) {}
};

NE_REGISTER_OP("InnerProduct.s8", InnerProductS8Op);
NE_REGISTER_OP("InnerProduct.bf16", InnerProductBf16Op);

}  // namespace
}  // namespace ne
