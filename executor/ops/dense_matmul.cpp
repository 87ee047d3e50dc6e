// Matmul (docs/OPS.md): batched, with src0/src1/dst permutations, output_scale and an optional
// broadcast additive mask. Permutations never copy: they become strides.
//
// Two paths, chosen per shape signature and cached (path 2 first when it needs no copies):
//  1. oneDNN matmul primitive with strided memory descriptors (A', B' and the dst permutation as
//     strides), output_scale as output scales, the mask as a binary_add post-op with broadcast.
//     Taken when a view would need a copy on path 2 and oneDNN has an optimised (non-"ref")
//     implementation for it.
//  2. Strided batched GEMM: per batch element one dnnl_sgemm on the strided 2-D views (a view
//     whose rows and columns both have non-unit strides is copied first), scale as alpha, mask
//     added to the tile right after; batches split over OpenMP threads. Handles every case
//     (ONNX 1-D rules, rank > 12, mask broadcasts oneDNN declines).
// NE_DENSE_MATMUL=sgemm forces path 2, =onednn prefers path 1 (for tests and benchmarks).
#include <dnnl.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <numeric>
#include <unordered_map>

#include "executor/env.hpp"
#include "executor/ops/shape_cache.hpp"
#include "executor/operator.hpp"
#include "executor/ops/dense_common.hpp"
#include "kernels/attention/attention.hpp"
#include "kernels/cpu_features.hpp"

namespace ne {
namespace {

using dnnl::memory;
using dt = memory::data_type;

Shape row_major_strides(const Shape& s) {
  Shape st(s.size(), 1);
  for (int i = int(s.size()) - 2; i >= 0; --i) st[i] = st[i + 1] * std::max<int64_t>(1, s[i + 1]);
  return st;
}

// Plan-cache key: the ranks and shapes of the inputs.
std::vector<int64_t> shape_key(const TensorList& in) {
  std::vector<int64_t> key;
  for (const Tensor* t : in) {
    key.push_back(t->rank());
    key.insert(key.end(), t->shape.begin(), t->shape.end());
  }
  return key;
}

struct Plan {
  // Logical problem (after perms, 1-D rules, broadcast).
  Shape batch;             // broadcast batch dims
  int64_t M = 0, N = 0, K = 0;
  Shape dst_shape;
  // Per-batch-dim strides (0 = broadcast) and the two matrix strides, in elements.
  Shape a_bst, b_bst, c_bst, m_bst;
  int64_t a_rs = 0, a_cs = 0, b_rs = 0, b_cs = 0, c_rs = 0, c_cs = 0;
  bool has_mask = false;
  int64_t m_rs = 0, m_cs = 0;
  // Offsets per flattened batch index.
  std::vector<int64_t> a_off, b_off, c_off, m_off;
  // Path 1.
  bool use_prim = false;
  dnnl::matmul prim;
  memory::desc a_md, b_md, c_md, mask_md;
  std::string impl;
};

class MatmulOp : public Operator {
 public:
  explicit MatmulOp(const OpInfo& i) : Operator(i) {
    perm0_ = i.attr_ints("src0_perm");
    perm1_ = i.attr_ints("src1_perm");
    permd_ = i.attr_ints("dst_perm");
    scale_ = i.attr_float("output_scale", 1.f);
    const std::string cd = i.attr("compute_dtype", "fp32");
    if (cd != "fp32" && cd != "bf16") op_error("compute_dtype '", cd, "' is not supported (expected fp32 or bf16)");
    bf16_ = cd == "bf16";
    const std::string ap = i.attr("append_op", "");
    if (!ap.empty() && ap != "binary_add")
      op_error("append_op '", ap, "' is not supported (expected binary_add with a mask input)");
  }

  std::string kernel() const override { return kernel_.empty() ? "matmul" : kernel_; }
  std::string reason() const override { return reason_; }

  void reshape(const TensorList& in, const TensorList& out) override {
    expect_inputs(in, 2, 3);
    for (size_t i = 0; i < in.size(); ++i)
      if (in[i]->dtype != DType::fp32)
        op_error("input ", i, " ('", in[i]->name, "') must be fp32, got ", dtype_name(in[i]->dtype));
    Plan p = make_plan(in);
    out[0]->dtype = DType::fp32;
    out[0]->shape = p.dst_shape;
  }

  void forward(const TensorList& in, const TensorList& out) override {
    Plan& p = plan(in);
    if (shape_numel(p.dst_shape) == 0) return;
    float* C = out[0]->ptr<float>();
    const float* A = in[0]->ptr<float>();
    const float* B = in[1]->ptr<float>();
    const float* mask = p.has_mask ? in[2]->ptr<float>() : nullptr;
    if (p.use_prim) {
      auto& eng = dense::engine();
      std::unordered_map<int, memory> args{
          {DNNL_ARG_SRC, memory(p.a_md, eng, const_cast<float*>(A))},
          {DNNL_ARG_WEIGHTS, memory(p.b_md, eng, const_cast<float*>(B))},
          {DNNL_ARG_DST, memory(p.c_md, eng, C)}};
      if (mask)
        args.emplace(DNNL_ARG_ATTR_MULTIPLE_POST_OP(0) | DNNL_ARG_SRC_1,
                     memory(p.mask_md, eng, const_cast<float*>(mask)));
      p.prim.execute(dense::stream(), args);
      dense::stream().wait();
      return;
    }
    run_strided(p, A, B, mask, C);
  }

 private:
  friend class AttentionOp;
  std::vector<int64_t> perm0_, perm1_, permd_;
  float scale_ = 1.f;
  ShapeCache<std::vector<int64_t>, Plan> cache_;
  std::mutex mu_;
  std::string kernel_, reason_;
  bool bf16_ = false;  // compute_dtype: bf16 (products rounded to bf16, fp32 accumulation)
  bool bf16_runs() const { return bf16_ && ne::cpu::mayiuse(ne::cpu::Isa::avx512_core_bf16); }
  bool small_ok_ = [] {
    const std::string f = env::dense_matmul();
    return !(f == "sgemm" || f == "onednn");
  }();

  std::vector<int64_t> check_perm(const std::vector<int64_t>& perm, int rank, const char* what) const {
    if (perm.empty()) {
      std::vector<int64_t> id(rank);
      std::iota(id.begin(), id.end(), 0);
      return id;
    }
    if (int(perm.size()) != rank) op_error(what, " has ", perm.size(), " entries, tensor has rank ", rank);
    std::vector<bool> seen(rank, false);
    for (int64_t v : perm) {
      if (v < 0 || v >= rank || seen[v]) op_error(what, " is not a permutation of 0..", rank - 1);
      seen[v] = true;
    }
    return perm;
  }

  Plan& plan(const TensorList& in) {
    const std::vector<int64_t> key = shape_key(in);
    std::lock_guard<std::mutex> g(mu_);
    if (Plan* hit = cache_.find(key)) return *hit;
    Plan p = make_plan(in);
    build_offsets(p);
    try_primitive(p);
    if (!p.use_prim && small_fits(p) && bf16_runs()) {
      kernel_ = "small_gemm_bf16:avx512_bf16";
      reason_ = "compute_dtype bf16: 6x64 vdpbf16ps tiles, A and B rounded to bf16 per call";
    } else if (!p.use_prim && small_fits(p)) {
      kernel_ = "small_gemm:avx512";
      reason_ = "6x64 AVX-512 tiles, A and C in place, B in place or one transposed panel";
      if (bf16_) reason_ += " (compute_dtype bf16 asked, but " + ne::cpu::why_not(ne::cpu::Isa::avx512_core_bf16) + ")";
    } else {
      kernel_ = p.use_prim ? "onednn:" + p.impl : "sgemm_strided";
      // Say when the small GEMM would have taken the views but the CPU (or NE_MAX_ISA) lacks
      // AVX-512: the strided path is then oneDNN's JIT sgemm (per batch element), not a fallback
      // to anything slower.
      if (!p.use_prim && small_ok_ && small_shape_fits(p) && !dense::use_avx512())
        reason_ += "; small GEMM needs AVX-512 (" + ne::cpu::why_not(ne::cpu::Isa::avx512_core) + ")";
      if (bf16_ && !bf16_runs())
        reason_ += "; compute_dtype bf16 asked, but " + ne::cpu::why_not(ne::cpu::Isa::avx512_core_bf16) + ": fp32 products";
    }
    return cache_.emplace(key, std::move(p));
  }

  Plan make_plan(const TensorList& in) const {
    const Tensor &a = *in[0], &b = *in[1];
    if (a.rank() < 1 || b.rank() < 1) op_error("inputs must have rank >= 1 (got ", shape_str(a.shape), ", ", shape_str(b.shape), ")");
    const auto p0 = check_perm(perm0_, a.rank(), "src0_perm");
    const auto p1 = check_perm(perm1_, b.rank(), "src1_perm");
    // Permuted views: dims and strides.
    Shape ad, as, bd, bs;
    const Shape ast = row_major_strides(a.shape), bst = row_major_strides(b.shape);
    for (int64_t i : p0) ad.push_back(a.shape[i]), as.push_back(ast[i]);
    for (int64_t i : p1) bd.push_back(b.shape[i]), bs.push_back(bst[i]);
    const bool drop_m = ad.size() == 1, drop_n = bd.size() == 1;
    if (drop_m) ad.insert(ad.begin(), 1), as.insert(as.begin(), 0);
    if (drop_n) bd.push_back(1), bs.push_back(0);
    Plan p;
    p.M = ad[ad.size() - 2];
    p.K = ad.back();
    p.N = bd.back();
    if (bd[bd.size() - 2] != p.K)
      op_error("inner dimensions differ: A' ", shape_str(ad), " · B' ", shape_str(bd), " (from A ",
               shape_str(a.shape), ", B ", shape_str(b.shape), ")");
    p.a_rs = as[as.size() - 2], p.a_cs = as.back();
    p.b_rs = bs[bs.size() - 2], p.b_cs = bs.back();
    // Broadcast batch dims.
    const int na = int(ad.size()) - 2, nb = int(bd.size()) - 2, nbat = std::max(na, nb);
    p.batch.assign(nbat, 1);
    p.a_bst.assign(nbat, 0);
    p.b_bst.assign(nbat, 0);
    for (int i = 0; i < nbat; ++i) {
      const int ia = i - (nbat - na), ib = i - (nbat - nb);
      const int64_t da = ia >= 0 ? ad[ia] : 1, db = ib >= 0 ? bd[ib] : 1;
      if (da != db && da != 1 && db != 1)
        op_error("batch dims do not broadcast: A' ", shape_str(ad), " vs B' ", shape_str(bd));
      p.batch[i] = std::max(da, db);
      if (da == 0 || db == 0) p.batch[i] = 0;
      if (ia >= 0 && da != 1) p.a_bst[i] = as[ia];
      if (ib >= 0 && db != 1) p.b_bst[i] = bs[ib];
    }
    // C (numpy result shape) and its strides inside dst = transpose(C, dst_perm).
    Shape cshape = p.batch;
    if (!drop_m) cshape.push_back(p.M);
    if (!drop_n) cshape.push_back(p.N);
    const int rc = int(cshape.size());
    const auto pd = check_perm(permd_, rc, "dst_perm");
    for (int i = 0; i < rc; ++i) p.dst_shape.push_back(cshape[pd[i]]);
    const Shape dstr = row_major_strides(p.dst_shape);
    Shape cst(rc);
    for (int i = 0; i < rc; ++i) cst[pd[i]] = dstr[i];
    p.c_bst.assign(cst.begin(), cst.begin() + nbat);
    p.c_rs = drop_m ? 0 : cst[nbat];
    p.c_cs = drop_n ? 0 : cst[rc - 1];
    // Mask: broadcast to C.
    if (in.size() == 3) {
      const Tensor& m = *in[2];
      p.has_mask = true;
      if (m.rank() > rc) op_error("mask ", shape_str(m.shape), " has higher rank than the product ", shape_str(cshape));
      const Shape mst = row_major_strides(m.shape);
      Shape full(rc, 0);
      for (int i = 0; i < m.rank(); ++i) {
        const int j = rc - m.rank() + i;
        if (m.shape[i] != 1 && m.shape[i] != cshape[j])
          op_error("mask ", shape_str(m.shape), " does not broadcast to the product ", shape_str(cshape));
        if (m.shape[i] != 1) full[j] = mst[i];
      }
      p.m_bst.assign(full.begin(), full.begin() + nbat);
      p.m_rs = drop_m ? 0 : full[nbat];
      p.m_cs = drop_n ? 0 : full[rc - 1];
    }
    // Keep strides of the absent M / N dims harmless.
    if (drop_m) p.a_rs = p.K, p.c_rs = p.N, p.m_rs = 0;
    if (drop_n) p.b_cs = 1, p.c_cs = 1, p.m_cs = 0;
    return p;
  }

  static void build_offsets(Plan& p) {
    const int64_t nbatch = shape_numel(p.batch);
    const int nd = int(p.batch.size());
    p.a_off.resize(nbatch), p.b_off.resize(nbatch), p.c_off.resize(nbatch);
    if (p.has_mask) p.m_off.resize(nbatch);
    std::vector<int64_t> idx(nd, 0);
    for (int64_t t = 0; t < nbatch; ++t) {
      int64_t oa = 0, ob = 0, oc = 0, om = 0;
      for (int d = 0; d < nd; ++d) {
        oa += idx[d] * p.a_bst[d], ob += idx[d] * p.b_bst[d], oc += idx[d] * p.c_bst[d];
        if (p.has_mask) om += idx[d] * p.m_bst[d];
      }
      p.a_off[t] = oa, p.b_off[t] = ob, p.c_off[t] = oc;
      if (p.has_mask) p.m_off[t] = om;
      for (int d = nd - 1; d >= 0; --d) {
        if (++idx[d] < p.batch[d]) break;
        idx[d] = 0;
      }
    }
  }

  void try_primitive(Plan& p) {
    const int r = int(p.batch.size()) + 2;
    const std::string force = env::dense_matmul();
    if (force == "sgemm") {
      reason_ = "strided sgemm (NE_DENSE_MATMUL=sgemm)";
      return;
    }
    // Every view usable in place (a unit stride in each of A', B', C): per-batch sgemm measured
    // 5-15% faster than the oneDNN primitive on the BERT attention shapes (1 thread, Zen 5,
    // oneDNN 2.6: Q·Kᵀ B1 87 vs 79, B8 70 vs 62 GFLOP/s). Otherwise (copies needed) oneDNN.
    if (force != "onednn" && direct_views(p)) {
      reason_ = "strided sgemm (all views have a unit stride)";
      return;
    }
    if (r > DNNL_MAX_NDIMS || shape_numel(p.dst_shape) == 0 || p.K == 0) {
      reason_ = "strided sgemm (rank or empty shape)";
      return;
    }
    memory::dims ad, as, bd, bs, cd, cs, md, ms;
    for (size_t i = 0; i < p.batch.size(); ++i) {
      ad.push_back(p.a_bst[i] ? p.batch[i] : 1), as.push_back(p.a_bst[i] ? p.a_bst[i] : 1);
      bd.push_back(p.b_bst[i] ? p.batch[i] : 1), bs.push_back(p.b_bst[i] ? p.b_bst[i] : 1);
      cd.push_back(p.batch[i]), cs.push_back(p.c_bst[i]);
      if (p.has_mask) md.push_back(p.m_bst[i] ? p.batch[i] : 1);
    }
    // A batch dim of size 1 in both inputs may have stride 0 above; oneDNN wants dims of 1 there.
    ad.push_back(p.M), ad.push_back(p.K), as.push_back(p.a_rs), as.push_back(p.a_cs);
    bd.push_back(p.K), bd.push_back(p.N), bs.push_back(p.b_rs), bs.push_back(p.b_cs);
    cd.push_back(p.M), cd.push_back(p.N), cs.push_back(p.c_rs), cs.push_back(p.c_cs);
    try {
      p.a_md = memory::desc(ad, dt::f32, as);
      p.b_md = memory::desc(bd, dt::f32, bs);
      p.c_md = memory::desc(cd, dt::f32, cs);
      dnnl::primitive_attr attr;
      if (scale_ != 1.f) attr.set_output_scales(0, {scale_});
      if (p.has_mask) {
        md.push_back(p.m_rs ? p.M : 1), md.push_back(p.m_cs ? p.N : 1);
        // The mask is contiguous in its own (broadcast-reduced) shape.
        p.mask_md = memory::desc(md, dt::f32, row_major_strides(md));
        dnnl::post_ops po;
        po.append_binary(dnnl::algorithm::binary_add, p.mask_md);
        attr.set_post_ops(po);
      }
      dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(p.a_md, p.b_md, p.c_md), attr, dense::engine());
      p.impl = pd.impl_info_str();
      if (p.impl.find("ref") != std::string::npos) {
        reason_ = "strided sgemm (oneDNN offers only " + p.impl + ")";
        return;
      }
      p.prim = dnnl::matmul(pd);
      p.use_prim = true;
      reason_ = "onednn matmul with strided descriptors";
    } catch (const dnnl::error& e) {
      reason_ = std::string("strided sgemm (oneDNN declined: ") + e.what() + ")";
    }
  }

  static bool direct_views(const Plan& p) {
    auto unit = [](int64_t rows, int64_t cols, int64_t rs, int64_t cs) {
      return cs == 1 || rs == 1 || rows == 1 || cols == 1;
    };
    return unit(p.M, p.K, p.a_rs, p.a_cs) && unit(p.K, p.N, p.b_rs, p.b_cs) &&
           unit(p.M, p.N, p.c_rs, p.c_cs);
  }

  // C[M,N] (col stride 1) = alpha * A[M,K] · B[K,N] on strided views; copies a view with no unit
  // stride into `tmp`.
  static void gemm_view(int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t ars,
                        int64_t acs, const float* B, int64_t brs, int64_t bcs, float* C, int64_t ldc,
                        std::vector<float>& tmpa, std::vector<float>& tmpb) {
    if (K == 0) {
      for (int64_t m = 0; m < M; ++m) std::fill(C + m * ldc, C + m * ldc + N, 0.f);
      return;
    }
    if (K == 1) acs = 1, brs = std::max<int64_t>(N, 1);
    if (M == 1) ars = std::max<int64_t>(K, 1);
    if (N == 1) bcs = 1;
    char ta = 'N', tb = 'N';
    int64_t lda, ldb;
    if (acs == 1) lda = ars;
    else if (ars == 1) ta = 'T', lda = acs;
    else {
      tmpa.resize(size_t(M * K));
      for (int64_t m = 0; m < M; ++m)
        for (int64_t k = 0; k < K; ++k) tmpa[m * K + k] = A[m * ars + k * acs];
      A = tmpa.data(), lda = K;
    }
    if (bcs == 1) ldb = brs;
    else if (brs == 1) tb = 'T', ldb = bcs;
    else {
      tmpb.resize(size_t(K * N));
      for (int64_t k = 0; k < K; ++k)
        for (int64_t n = 0; n < N; ++n) tmpb[k * N + n] = B[k * brs + n * bcs];
      B = tmpb.data(), ldb = N;
    }
    dnnl_sgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, 0.f, C, ldc);
  }

  // The small AVX-512 GEMM (dense_common.hpp) fits: A rows contiguous, C rows contiguous, B
  // contiguous along n or k, the mask (if any) contiguous or broadcast along n, and Bᵀ's panel
  // small enough to stay in L2. Attention's Q·Kᵀ and P·V are such.
  bool small_fits(const Plan& p) const { return small_ok_ && dense::use_avx512() && small_shape_fits(p); }
  static bool small_shape_fits(const Plan& p) {
    if (p.M < 1 || p.N < 1 || p.K < 1) return false;
    if (!(p.c_cs == 1 || p.N == 1) || !(p.a_cs == 1 || p.K == 1)) return false;
    if (!(p.b_cs == 1 || p.N == 1 || p.b_rs == 1 || p.K == 1)) return false;
    if (p.has_mask && !(p.m_cs == 0 || p.m_cs == 1 || p.N == 1)) return false;
    return p.K * p.N <= 128 * 1024 && p.N <= 4096;
  }

  void run_strided(const Plan& p, const float* A, const float* B, const float* mask, float* C) const {
    const int64_t nbatch = int64_t(p.a_off.size());
    if (small_fits(p)) {
      const int64_t lda = p.a_rs, ldc = p.c_rs;
      // Normalise B's strides: a unit n stride (rows) or a unit k stride (columns).
      int64_t brs = p.b_rs, bcs = p.b_cs;
      if (p.N == 1) bcs = 1;
      else if (p.K == 1 && bcs != 1) brs = 1;
      const int64_t mcs = p.N == 1 ? 0 : p.m_cs;
      auto one = [&](int64_t t, std::vector<float>& scratch) {
        dense::small_gemm_avx512(p.M, p.N, p.K, scale_, A + p.a_off[t], lda, B + p.b_off[t], brs, bcs,
                                 C + p.c_off[t], ldc, mask ? mask + p.m_off[t] : nullptr, p.m_rs, mcs,
                                 scratch.data());
      };
      if (bf16_runs()) {
        const int64_t sb = dense::small_gemm_bf16_scratch_bytes(p.M, p.N, p.K);
        auto one16 = [&](int64_t t, std::vector<uint8_t>& scratch) {
          dense::small_gemm_bf16_avx512bf16(p.M, p.N, p.K, scale_, A + p.a_off[t], lda, B + p.b_off[t], brs, bcs,
                                            C + p.c_off[t], ldc, mask ? mask + p.m_off[t] : nullptr, p.m_rs, mcs,
                                            scratch.data());
        };
        const int nt = omp_get_max_threads();
#pragma omp parallel if (nt > 1 && nbatch >= nt)
        {
          std::vector<uint8_t> scratch(static_cast<size_t>(sb));
#pragma omp for schedule(static)
          for (int64_t t = 0; t < nbatch; ++t) one16(t, scratch);
        }
        return;
      }
      const int64_t sf = bcs == 1 ? 1 : dense::small_gemm_scratch_floats(p.N, p.K);
      const int nt = omp_get_max_threads();
      if (nt > 1 && nbatch >= nt) {
#pragma omp parallel
        {
          std::vector<float> scratch(static_cast<size_t>(sf));
#pragma omp for schedule(static)
          for (int64_t t = 0; t < nbatch; ++t) one(t, scratch);
        }
      } else {
        std::vector<float> scratch(static_cast<size_t>(sf));
        for (int64_t t = 0; t < nbatch; ++t) one(t, scratch);
      }
      return;
    }
    // C must have a unit column stride for sgemm; if instead its rows are unit-stride compute
    // Cᵀ = B'ᵀ·A'ᵀ; if neither, go through a temporary tile.
    const bool c_direct = p.c_cs == 1 || p.N == 1;
    const bool c_trans = !c_direct && (p.c_rs == 1 || p.M == 1);
    auto one = [&](int64_t t, std::vector<float>& ta, std::vector<float>& tb, std::vector<float>& tc) {
      const float* a = A + p.a_off[t];
      const float* b = B + p.b_off[t];
      float* c = C + p.c_off[t];
      if (c_direct) {
        gemm_view(p.M, p.N, p.K, scale_, a, p.a_rs, p.a_cs, b, p.b_rs, p.b_cs, c,
                  p.M == 1 ? std::max<int64_t>(p.N, 1) : p.c_rs, ta, tb);
      } else if (c_trans) {
        gemm_view(p.N, p.M, p.K, scale_, b, p.b_cs, p.b_rs, a, p.a_cs, p.a_rs, c,
                  p.N == 1 ? std::max<int64_t>(p.M, 1) : p.c_cs, tb, ta);
      } else {
        tc.resize(size_t(p.M * p.N));
        gemm_view(p.M, p.N, p.K, scale_, a, p.a_rs, p.a_cs, b, p.b_rs, p.b_cs, tc.data(), p.N, ta, tb);
        for (int64_t m = 0; m < p.M; ++m)
          for (int64_t n = 0; n < p.N; ++n) c[m * p.c_rs + n * p.c_cs] = tc[m * p.N + n];
      }
      if (mask) {
        const float* mk = mask + p.m_off[t];
        for (int64_t m = 0; m < p.M; ++m)
          for (int64_t n = 0; n < p.N; ++n) c[m * p.c_rs + n * p.c_cs] += mk[m * p.m_rs + n * p.m_cs];
      }
    };
    const int nt = omp_get_max_threads();
    // Batches over threads (each sgemm then runs single-threaded inside the parallel region)
    // when they split evenly enough; otherwise one threaded sgemm after another.
    if (nt > 1 && nbatch >= nt && (nbatch % nt == 0 || nbatch >= 4 * nt)) {
#pragma omp parallel
      {
        std::vector<float> ta, tb, tc;
#pragma omp for schedule(static)
        for (int64_t t = 0; t < nbatch; ++t) one(t, ta, tb, tc);
      }
    } else {
      std::vector<float> ta, tb, tc;
      for (int64_t t = 0; t < nbatch; ++t) one(t, ta, tb, tc);
    }
  }
};

// Attention (docs/OPS.md): softmax(output_scale · Q'·K' + mask) · V', the three ops of
// attention in one. Q' = transpose(Q, qk_src0_perm), K' = transpose(K, qk_src1_perm),
// V' = transpose(V, pv_src1_perm), the result transposed by dst_perm: exactly
// Matmul(Q, K, mask) -> Softmax(axis -1) -> Matmul(P, V) with those attrs, whose plans it reuses.
// Fast path (AVX-512, every view with a unit stride where the small GEMM wants it): per batch
// element (b, h), the score tile S [Sq x Sk] lives in a per-thread buffer (L2), softmax is applied
// in place and S·V' is written straight into the output view, so the [B, H, S, S] scores never go
// to memory (at BERT-base batch 8 they are 6 MiB per layer, written once and read twice when
// unfused). Otherwise the unfused sequence on a temporary.
class AttentionOp : public Operator {
 public:
  explicit AttentionOp(const OpInfo& i)
      : Operator(i),
        qk_(sub(i, "qk", {{"src0_perm", i.attr("qk_src0_perm", "")}, {"src1_perm", i.attr("qk_src1_perm", "")},
                          {"output_scale", i.attr("output_scale", "")}})),
        pv_(sub(i, "pv", {{"src1_perm", i.attr("pv_src1_perm", "")}, {"dst_perm", i.attr("dst_perm", "")}})) {
    const std::string cd = i.attr("compute_dtype", "fp32");
    if (cd != "fp32" && cd != "bf16") op_error("compute_dtype '", cd, "' is not supported (expected fp32 or bf16)");
    qk_.bf16_ = pv_.bf16_ = cd == "bf16";
  }

  std::string kernel() const override { return kernel_.empty() ? "attention" : kernel_; }
  std::string reason() const override { return reason_; }

  void reshape(const TensorList& in, const TensorList& out) override {
    expect_inputs(in, 3, 4);
    for (size_t i = 0; i < in.size(); ++i)
      if (in[i]->dtype != DType::fp32)
        op_error("input ", i, " ('", in[i]->name, "') must be fp32, got ", dtype_name(in[i]->dtype));
    Plans& p = plans(in);
    out[0]->dtype = DType::fp32;
    out[0]->shape = p.pv.dst_shape;
  }

  void forward(const TensorList& in, const TensorList& out) override {
    Plans& p = plans(in);
    if (shape_numel(p.pv.dst_shape) == 0) return;
    const float* Q = in[0]->ptr<float>();
    const float* K = in[1]->ptr<float>();
    const float* V = in[2]->ptr<float>();
    const float* mask = in.size() == 4 ? in[3]->ptr<float>() : nullptr;
    float* O = out[0]->ptr<float>();
    const Plan &a = p.qk, &b = p.pv;
    const int64_t Sq = a.M, Sk = a.N;
    if (p.family) {  // a kernel of the attention family (kernels/attention): AMX
      attention::Args x = p.args;
      x.q = Q, x.k = K, x.v = V, x.o = O, x.mask = mask;
      x.q_off = a.a_off.data(), x.k_off = a.b_off.data(), x.v_off = b.b_off.data(), x.o_off = b.c_off.data();
      x.m_off = mask ? a.m_off.data() : nullptr;
      attention::run(*p.family, x);
      return;
    }
    if (!p.fused) {  // unfused: scores in a temporary, then the Softmax and P·V
      std::vector<float> S(static_cast<size_t>(shape_numel(a.dst_shape)));
      qk_.run_strided(a, Q, K, mask, S.data());
      softmax_rows(S.data(), shape_numel(a.dst_shape) / std::max<int64_t>(Sk, 1), Sk);
      pv_.run_strided(b, S.data(), V, nullptr, O);
      return;
    }
    const int64_t nbatch = int64_t(a.a_off.size());
    const bool bf16 = qk_.bf16_runs();
    const int64_t Dq = a.K, Dv = b.N;
    const int64_t brs1 = a.b_rs, bcs1 = a.N == 1 ? 1 : a.b_cs;
    const int64_t mcs = a.N == 1 ? 0 : a.m_cs;
    const bool pack_q = Dq > 1 && a.a_cs != 1;  // Q' column-major (feature-major layout): transpose it
    // P·V': direct (output rows contiguous), or as its transpose O'ᵀ = V'ᵀ·Pᵀ (output columns
    // contiguous, the feature-major layout), with V'ᵀ used in place or transposed once.
    const bool pv_t = p.pv_transposed;
    const bool pack_v = pv_t && Sk > 1 && b.b_rs != 1;
    // Query rows in blocks whose score tile stays within ~256 KiB (all of them at BERT's 128).
    const int64_t rb = std::max<int64_t>(6, std::min<int64_t>(Sq, (int64_t(64) << 10) / std::max<int64_t>(Sk, 1)));
    const int64_t s1 = bf16 ? std::max(dense::small_gemm_bf16_scratch_bytes(rb, Sk, Dq),
                                       pv_t ? dense::small_gemm_bf16_scratch_bytes(Dv, rb, Sk)
                                            : dense::small_gemm_bf16_scratch_bytes(rb, Dv, Sk))
                            : int64_t(sizeof(float)) * std::max(dense::small_gemm_scratch_floats(Sk, Dq),
                                                                 dense::small_gemm_scratch_floats(pv_t ? rb : Dv, Sk));
    auto gemm = [&](int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda, const float* B, int64_t brs,
                    int64_t bcs, float* C, int64_t ldc, const float* mk, int64_t mrs, int64_t mc, uint8_t* scr) {
      if (bf16)
        dense::small_gemm_bf16_avx512bf16(M, N, K, alpha, A, lda, B, brs, bcs, C, ldc, mk, mrs, mc, scr);
      else
        dense::small_gemm_avx512(M, N, K, alpha, A, lda, B, brs, bcs, C, ldc, mk, mrs, mc, reinterpret_cast<float*>(scr));
    };
#pragma omp parallel if (omp_get_max_threads() > 1 && nbatch > 1)
    {
      std::vector<float> S(static_cast<size_t>(std::min(rb, Sq) * Sk));
      std::vector<float> qbuf(pack_q ? static_cast<size_t>(Sq * Dq) : 0), vbuf(pack_v ? static_cast<size_t>(Dv * Sk) : 0);
      std::vector<uint8_t> scr(static_cast<size_t>(s1) + 64);
      uint8_t* sc = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(scr.data()) + 63) & ~uintptr_t(63));
#pragma omp for schedule(static)
      for (int64_t t = 0; t < nbatch; ++t) {
        const float* q = Q + a.a_off[t];
        int64_t lda = a.a_rs;
        if (pack_q) {  // Q'[m, k] = q[k * a_cs + m]
          dense::transpose_f32_avx512(q, a.a_cs, Dq, Sq, qbuf.data(), Dq);
          q = qbuf.data(), lda = Dq;
        }
        // V'ᵀ for the transposed P·V': rows n = v[n * b_cs + k] when b_rs == 1, else transposed once.
        const float* v = V + b.b_off[t];
        int64_t ldv = b.b_cs;
        if (pack_v) {  // V'ᵀ[n, k] = v[k * b_rs + n]
          dense::transpose_f32_avx512(v, b.b_rs, Sk, Dv, vbuf.data(), Sk);
          v = vbuf.data(), ldv = Sk;
        }
        for (int64_t m0 = 0; m0 < Sq; m0 += rb) {
          const int64_t mb = std::min(rb, Sq - m0);
          gemm(mb, Sk, Dq, qk_.scale_, q + m0 * lda, lda, K + a.b_off[t], brs1, bcs1, S.data(), Sk,
               mask ? mask + a.m_off[t] + m0 * a.m_rs : nullptr, a.m_rs, mcs, sc);
          dense::softmax_rows_avx512(S.data(), S.data(), mb, Sk);
          if (!pv_t)  // direct: output rows contiguous
            gemm(mb, Dv, Sk, 1.f, S.data(), Sk, V + b.b_off[t], b.b_rs, Dv == 1 ? 1 : b.b_cs, O + b.c_off[t] + m0 * b.c_rs,
                 b.c_rs, nullptr, 0, 0, sc);
          else  // O'ᵀ[n, m] = Σ_k V'ᵀ[n, k] Pᵀ[k, m] (Pᵀ: the panel-transpose form), output columns contiguous
            gemm(Dv, mb, Sk, 1.f, v, ldv, S.data(), 1, Sk, O + b.c_off[t] + m0, b.c_cs, nullptr, 0, 0, sc);
        }
      }
    }
  }

 private:
  struct Plans {
    Plan qk, pv;
    bool fused = false;
    bool pv_transposed = false;  // P·V' computed as its transpose (feature-major output)
    // A runnable kernel of the attention family (kernels/attention_kernels.inc), with its views
    // (pointers filled per call); nullptr: the AVX-512 paths below.
    const attention::KernelInfo* family = nullptr;
    attention::Args args;
  };
  MatmulOp qk_, pv_;
  ShapeCache<std::vector<int64_t>, Plans> cache_;
  std::mutex mu_;
  std::string kernel_, reason_;

  static OpInfo sub(const OpInfo& i, const char* what, std::vector<std::pair<std::string, std::string>> attrs) {
    OpInfo o;
    o.name = i.name + "/" + what;
    o.type = "Matmul";
    for (auto& kv : attrs)
      if (!kv.second.empty()) o.set_attr(kv.first, kv.second);
    return o;
  }

  static void softmax_rows(float* x, int64_t rows, int64_t n) {
    if (n == 0) return;
    if (dense::use_avx512()) {
      dense::softmax_rows_avx512(x, x, rows, n);
      return;
    }
    for (int64_t r = 0; r < rows; ++r) {
      float* v = x + r * n;
      float mx = v[0];
      for (int64_t j = 1; j < n; ++j) mx = std::max(mx, v[j]);
      double sum = 0;
      for (int64_t j = 0; j < n; ++j) sum += (v[j] = std::exp(v[j] - mx));
      for (int64_t j = 0; j < n; ++j) v[j] = float(v[j] / sum);
    }
  }

  Plans& plans(const TensorList& in) {
    const std::vector<int64_t> key = shape_key(in);
    std::lock_guard<std::mutex> g(mu_);
    if (Plans* hit = cache_.find(key)) return *hit;
    Plans p;
    TensorList qk_in{in[0], in[1]};
    if (in.size() == 4) qk_in.push_back(in[3]);
    p.qk = qk_.make_plan(qk_in);
    if (p.qk.dst_shape.size() < 2) op_error("Q'·K' ", shape_str(p.qk.dst_shape), " has rank < 2 (no softmax axis)");
    Tensor probs;
    probs.name = name() + "/probs";
    probs.shape = p.qk.dst_shape;
    p.pv = pv_.make_plan({&probs, in[2]});
    MatmulOp::build_offsets(p.qk);
    MatmulOp::build_offsets(p.pv);
    // Fusable: the small GEMM fits both products, and P·V' walks the score tiles in the order
    // Q'·K' made them (P's batch = the product's batch, P read in place, row by row).
    bool same_order = p.pv.a_off.size() == p.qk.c_off.size() && p.pv.a_rs == p.qk.N && p.pv.a_cs == 1;
    for (size_t t = 0; same_order && t < p.pv.a_off.size(); ++t) same_order = p.pv.a_off[t] == p.qk.c_off[t];
    // Q'·K': Q' rows or columns contiguous (columns: transposed per tile), the rest as the small
    // GEMM wants. P·V': output rows contiguous (direct) or output columns contiguous (transposed).
    auto unit = [](int64_t rs, int64_t cs, int64_t r, int64_t c) { return cs == 1 || rs == 1 || r == 1 || c == 1; };
    Plan qk_probe = p.qk;
    if (qk_probe.a_cs != 1 && qk_probe.a_rs == 1) qk_probe.a_cs = 1, qk_probe.a_rs = qk_probe.K;
    const bool qk_ok = qk_.small_fits(qk_probe);
    const Plan& v = p.pv;
    const bool pv_direct = pv_.small_fits(v);
    const bool pv_t = !pv_direct && qk_ok && v.c_rs == 1 && v.M > 1 && unit(v.b_rs, v.b_cs, v.K, v.N) &&
                      !v.has_mask && v.K <= 16384 && pv_.small_ok_;  // Pᵀ panels are [Sk x row block] <= 256 KiB
    p.pv_transposed = pv_t;
    p.fused = same_order && qk_ok && (pv_direct || pv_t) && dense::use_avx512();
    // The attention family: one ordered list (AMX first, then the AVX-512 paths of this op). Its
    // kernels take any strides, so any P-in-order problem goes (the family declines with reasons).
    std::string family_why;
    if (same_order && pv_.small_ok_ && p.qk.K >= 1) {
      attention::Args& x = p.args;
      x.batch = int64_t(p.qk.a_off.size());
      x.Sq = p.qk.M, x.Sk = p.qk.N, x.D = p.qk.K, x.Dv = p.pv.N;
      x.scale = qk_.scale_;
      // Strides only: the offsets (a_off, ...) and pointers are filled per call in forward().
      x.q_rs = p.qk.a_rs, x.q_cs = p.qk.a_cs;
      x.k_rs = p.qk.b_rs, x.k_cs = p.qk.b_cs;
      x.v_rs = p.pv.b_rs, x.v_cs = p.pv.b_cs;
      x.o_rs = p.pv.c_rs, x.o_cs = p.pv.c_cs;
      if (p.qk.has_mask) x.m_rs = p.qk.m_rs, x.m_cs = p.qk.m_cs;
      x.compute = qk_.bf16_ ? attention::Compute::bf16 : attention::Compute::f32;
      const attention::Choice c = attention::choose(x, /*runnable_only=*/true);
      if (c.kernel) p.family = c.kernel;
      else if (!c.declined.empty()) family_why = c.summary();
    }
    if (p.family) {
      kernel_ = p.family->name;
      reason_ = std::string(p.family->note) + " (attention family, kernels/attention)";
    } else if (p.fused) {
      kernel_ = qk_.bf16_runs() ? "attention_fused_bf16:avx512_bf16" : "attention_fused:avx512";
      reason_ = std::string("scores per (batch, head) tile in cache (<= 256 KiB row blocks), softmax in place") +
                (p.pv_transposed ? ", feature-major output (P·V' as its transpose)" : "") +
                (qk_.bf16_runs() ? ", bf16 products (compute_dtype bf16)" : "") +
                (qk_.bf16_ && !qk_.bf16_runs() ? " (compute_dtype bf16 asked, but " + ne::cpu::why_not(ne::cpu::Isa::avx512_core_bf16) + ")" : "") +
                (family_why.empty() ? "" : " [" + family_why + "]");
    } else {
      kernel_ = "attention_unfused";
      reason_ = !dense::use_avx512() ? "no AVX-512 (" + ne::cpu::why_not(ne::cpu::Isa::avx512_core) +
                                           "): scores through a temporary, products on oneDNN's sgemm"
                                     : "views do not fit the small GEMM: scores through a temporary";
    }
    return cache_.emplace(key, std::move(p));
  }
};

}  // namespace

NE_REGISTER_OP("Matmul", MatmulOp);
NE_REGISTER_OP("Attention", AttentionOp);

}  // namespace ne
