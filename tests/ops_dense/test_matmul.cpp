// Matmul (permuted views, broadcast batches, 1-D rules, scale, mask, bf16 products) against a
// double reference, and which GEMM runs on each ISA tier. Tolerances and seeds: dense_test_util.hpp.
#include "dense_test_util.hpp"

#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstring>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "executor/operator.hpp"
#include "kernels/cpu_features.hpp"

using namespace dense_ops_test;

namespace {

Shape permute(const Shape& s, const std::vector<int64_t>& p) {
  Shape r;
  for (auto i : p) r.push_back(s[i]);
  return r;
}

// Naive: transpose (by index maths), numpy-matmul with broadcast and 1-D rules, scale, mask, dst perm.
double g_matmul_extra_rel = 0;  // added tolerance, relative to sum |a_k b_k| (bf16 products)

void matmul_ref(const Arg& A, const Arg& B, const Arg* mask, std::vector<int64_t> pa,
                std::vector<int64_t> pb, std::vector<int64_t> pd, double scale, Shape* out_shape,
                std::vector<double>* ref, std::vector<double>* tol) {
  if (pa.empty()) pa.resize(A.shape.size()), std::iota(pa.begin(), pa.end(), 0);
  if (pb.empty()) pb.resize(B.shape.size()), std::iota(pb.begin(), pb.end(), 0);
  Shape ad = permute(A.shape, pa), bd = permute(B.shape, pb);
  auto ast0 = strides_of(A.shape), bst0 = strides_of(B.shape);
  std::vector<int64_t> as, bs;
  for (auto i : pa) as.push_back(ast0[i]);
  for (auto i : pb) bs.push_back(bst0[i]);
  bool dm = ad.size() == 1, dn = bd.size() == 1;
  if (dm) ad.insert(ad.begin(), 1), as.insert(as.begin(), 0);
  if (dn) bd.push_back(1), bs.push_back(0);
  int64_t M = ad[ad.size() - 2], K = ad.back(), N = bd.back();
  int na = int(ad.size()) - 2, nb = int(bd.size()) - 2, nbat = std::max(na, nb);
  Shape bat(nbat);
  for (int i = 0; i < nbat; ++i) {
    int64_t x = i - (nbat - na) >= 0 ? ad[i - (nbat - na)] : 1;
    int64_t y = i - (nbat - nb) >= 0 ? bd[i - (nbat - nb)] : 1;
    bat[i] = std::max(x, y);
  }
  Shape cs = bat;
  if (!dm) cs.push_back(M);
  if (!dn) cs.push_back(N);
  const int rc = int(cs.size());
  if (pd.empty()) pd.resize(rc), std::iota(pd.begin(), pd.end(), 0);
  *out_shape = permute(cs, pd);
  const auto dst_st = strides_of(*out_shape);
  std::vector<int64_t> c_st(rc);
  for (int i = 0; i < rc; ++i) c_st[pd[i]] = dst_st[i];
  ref->assign(numel(cs), 0);
  tol->assign(numel(cs), 0);
  const int64_t nbatch = numel(bat);
  for (int64_t t = 0; t < nbatch; ++t) {
    std::vector<int64_t> bi(nbat);
    int64_t tt = t;
    for (int d = nbat - 1; d >= 0; --d) bi[d] = tt % bat[d], tt /= bat[d];
    int64_t oa = 0, ob = 0;
    for (int d = 0; d < nbat; ++d) {
      int ia = d - (nbat - na), ib = d - (nbat - nb);
      if (ia >= 0 && ad[ia] != 1) oa += bi[d] * as[ia];
      if (ib >= 0 && bd[ib] != 1) ob += bi[d] * bs[ib];
    }
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = 0; n < N; ++n) {
        double acc = 0, mag = 0;
        for (int64_t k = 0; k < K; ++k) {
          double p = double(A.v[oa + m * as[na] + k * as[na + 1]]) * B.v[ob + k * bs[nb] + n * bs[nb + 1]];
          acc += p, mag += std::fabs(p);
        }
        acc *= scale, mag *= std::fabs(scale);
        std::vector<int64_t> ci = bi;
        if (!dm) ci.push_back(m);
        if (!dn) ci.push_back(n);
        if (mask) {
          int64_t om = 0;
          const Shape& ms = mask->shape;
          auto mst = strides_of(ms);
          for (size_t i = 0; i < ms.size(); ++i) {
            int j = rc - int(ms.size()) + int(i);
            if (ms[i] != 1) om += ci[j] * mst[i];
          }
          acc += mask->v[om], mag += std::fabs(mask->v[om]);
        }
        int64_t oc = 0;
        for (int i = 0; i < rc; ++i) oc += ci[i] * c_st[i];
        (*ref)[oc] = acc;
        (*tol)[oc] = 4 * std::sqrt(double(K) + 2) * kU * mag + 1e-7 + g_matmul_extra_rel * mag;
      }
  }
}

// Views the small GEMM takes (A and C rows contiguous, B along n or k, ...) run, on this tier:
// the vdpbf16ps tiles when bf16 is asked and AVX512_BF16 is there, the fp32 AVX-512 tiles when
// AVX-512 is there (saying why bf16 was not honoured), else oneDNN's strided sgemm (the small
// GEMM is AVX-512 only), which must be its JIT GEMM and must say why the small GEMM declined.
void expect_small_gemm_views(const ne::Operator& op, bool bf16) {
  using ne::cpu::Isa;
  const std::string k = op.kernel(), why = op.reason();
  const std::string no_bf16 = "compute_dtype bf16 asked, but " + ne::cpu::why_not(Isa::avx512_core_bf16);
  if (bf16 && ne::cpu::mayiuse(Isa::avx512_core_bf16)) {
    EXPECT_EQ(k, "small_gemm_bf16:avx512_bf16") << why;
  } else if (ne::cpu::mayiuse(Isa::avx512_core)) {
    EXPECT_EQ(k, "small_gemm:avx512") << why;
    if (bf16) EXPECT_NE(why.find(no_bf16), std::string::npos) << why;
  } else {
    EXPECT_EQ(k, "sgemm_strided") << why;
    EXPECT_NE(why.find("small GEMM needs AVX-512 (" + ne::cpu::why_not(Isa::avx512_core) + ")"), std::string::npos) << why;
    if (bf16) EXPECT_NE(why.find(no_bf16), std::string::npos) << why;
    EXPECT_TRUE(onednn_sgemm_is_jit()) << "dnnl_sgemm would be oneDNN's reference GEMM (effective ISA "
                                       << std::hex << unsigned(dnnl_get_effective_cpu_isa()) << ")";
  }
}

// expect_kernel: a substring of kernel(), or "small_gemm" for "the views the small GEMM takes"
// (resolved per ISA tier by expect_small_gemm_views).
void run_matmul(const Shape& as, const Shape& bs, const Shape* ms, std::vector<int64_t> pa,
                std::vector<int64_t> pb, std::vector<int64_t> pd, float scale, uint32_t seed,
                const char* expect_kernel = nullptr, bool bf16 = false) {
  SCOPED_TRACE("seed " + std::to_string(seed) + " A" + ne::shape_str(as) + " B" + ne::shape_str(bs) +
               " perms " + join(pa) + "/" + join(pb) + "/" + join(pd));
  Arg A{as, rnd(numel(as), seed)}, B{bs, rnd(numel(bs), seed + 1)};
  Arg M;
  if (ms) M = Arg{*ms, rnd(numel(*ms), seed + 2, -3.f, 0.f)};
  std::vector<std::pair<std::string, std::string>> attrs;
  if (!pa.empty()) attrs.push_back({"src0_perm", join(pa)});
  if (!pb.empty()) attrs.push_back({"src1_perm", join(pb)});
  if (!pd.empty()) attrs.push_back({"dst_perm", join(pd)});
  if (scale != 1.f) attrs.push_back({"output_scale", std::to_string(scale)});
  if (ms) attrs.push_back({"append_op", "binary_add"});
  if (bf16) attrs.push_back({"compute_dtype", "bf16"});
  // bf16 products: each factor rounded to 8 significant bits (relative 2^-8 each).
  g_matmul_extra_rel = bf16 ? std::ldexp(1.0, -7) : 0.0;
  std::vector<Arg*> args{&A, &B};
  if (ms) args.push_back(&M);
  Runner r(info("Matmul", int(args.size()), attrs));
  r.init(args);
  auto got = r.run(args);
  Shape os;
  std::vector<double> ref, tol;
  // std::to_string(scale) rounds: use the value the op parsed.
  const double sc = std::stod(std::to_string(scale));
  matmul_ref(A, B, ms ? &M : nullptr, pa, pb, pd, sc, &os, &ref, &tol);
  EXPECT_EQ(r.out.shape, os);
  expect_close(got, ref, tol, "Matmul");
  if (std::getenv("NE_TEST_VERBOSE"))
    std::printf("  Matmul A%s B%s -> %s (%s)\n", ne::shape_str(as).c_str(), ne::shape_str(bs).c_str(),
                r.op->kernel().c_str(), r.op->reason().c_str());
  if (expect_kernel && std::string(expect_kernel) == "small_gemm") {
    expect_small_gemm_views(*r.op, bf16);
  } else if (expect_kernel) {
    EXPECT_NE(r.op->kernel().find(expect_kernel), std::string::npos)
        << "fast path did not run: " << r.op->kernel() << " — " << r.op->reason();
  }
  // Second call with the same shapes takes the cached plan.
  auto again = r.run(args);
  EXPECT_EQ(again, got);
}

TEST(Matmul, Plain2DAndBatched) {
  run_matmul({3, 13}, {13, 97}, nullptr, {}, {}, {}, 1.f, 1);
  run_matmul({77, 64}, {64, 77}, nullptr, {}, {}, {}, 1.f, 2);
  run_matmul({3, 77, 13}, {3, 13, 5}, nullptr, {}, {}, {}, 0.5f, 3);
  run_matmul({1, 1}, {1, 1}, nullptr, {}, {}, {}, 1.f, 4);
}

TEST(Matmul, BroadcastBatch) {
  run_matmul({3, 1, 7, 13}, {4, 13, 5}, nullptr, {}, {}, {}, 1.f, 10);
  run_matmul({7, 13}, {2, 3, 13, 5}, nullptr, {}, {}, {}, 1.f, 11);
  run_matmul({2, 3, 7, 13}, {13, 5}, nullptr, {}, {}, {}, 2.f, 12);
}

TEST(Matmul, OneDimRules) {
  run_matmul({13}, {13, 5}, nullptr, {}, {}, {}, 1.f, 20);
  run_matmul({3, 7, 13}, {13}, nullptr, {}, {}, {}, 1.f, 21);
  run_matmul({13}, {13}, nullptr, {}, {}, {}, 1.f, 22);
  run_matmul({13}, {4, 13, 5}, nullptr, {}, {}, {}, 1.f, 23);
}

// BERT attention: Q·Kᵀ with scale and mask [B,1,1,S], then P·V with dst perm.
TEST(Matmul, AttentionShapes) {
  for (auto dims : std::vector<std::array<int64_t, 4>>{{1, 128, 12, 64}, {3, 77, 16, 64}, {2, 13, 3, 5}}) {
    const int64_t B = dims[0], S = dims[1], H = dims[2], D = dims[3];
    Shape mask{B, 1, 1, S};
    const float sc = 1.f / std::sqrt(float(D));
    run_matmul({B, S, H, D}, {B, S, H, D}, &mask, {0, 2, 1, 3}, {0, 2, 3, 1}, {}, sc, 30, "small_gemm");
    run_matmul({B, H, S, S}, {B, S, H, D}, nullptr, {}, {0, 2, 1, 3}, {0, 2, 1, 3}, 1.f, 31, "small_gemm");
  }
}

// compute_dtype bf16 (attention of int8 / bf16 models): the vdpbf16ps small GEMM, same shapes
// and tails, within bf16 rounding of the double reference. Without AVX512_BF16 the op runs fp32
// products (well inside that tolerance) and says so: expect_small_gemm_views.
TEST(Matmul, ComputeBf16) {
  for (auto dims : std::vector<std::array<int64_t, 4>>{{2, 128, 12, 64}, {3, 77, 16, 64}, {2, 13, 3, 5}}) {
    const int64_t B = dims[0], S = dims[1], H = dims[2], D = dims[3];
    Shape mask{B, 1, 1, S};
    run_matmul({B, S, H, D}, {B, S, H, D}, &mask, {0, 2, 1, 3}, {0, 2, 3, 1}, {}, 0.125f, 70, "small_gemm", true);
    run_matmul({B, H, S, S}, {B, S, H, D}, nullptr, {}, {0, 2, 1, 3}, {0, 2, 1, 3}, 1.f, 71, "small_gemm", true);
  }
  int seed = 72;
  for (int64_t M : {1, 7, 13})
    for (int64_t N : {1, 17, 64, 130})
      for (int64_t K : {1, 3, 64, 129}) {
        Shape m1{2, 1, N};
        run_matmul({2, M, K}, {2, K, N}, &m1, {}, {}, {}, 0.5f, seed++, "small_gemm", true);
        run_matmul({2, M, K}, {2, N, K}, nullptr, {}, {0, 2, 1}, {}, 1.f, seed++, "small_gemm", true);
      }
  g_matmul_extra_rel = 0;
}

// The small AVX-512 GEMM on every M / N tail (6-row blocks, 64/48/32/16-column tiles, masked
// last vector), K from 1, Bᵀ panels with odd sizes, masks contiguous or broadcast along n.
TEST(Matmul, SmallGemmTails) {
  int seed = 60;
  for (int64_t M : {1, 5, 6, 7, 13})
    for (int64_t N : {1, 15, 16, 17, 63, 64, 65, 130})
      for (int64_t K : {1, 3, 64}) {
        Shape m1{2, 1, N}, m2{2, M, 1};
        run_matmul({2, M, K}, {2, K, N}, &m1, {}, {}, {}, 0.5f, seed++, "small_gemm");
        run_matmul({2, M, K}, {2, N, K}, &m2, {}, {0, 2, 1}, {}, 1.f, seed++, "small_gemm");
      }
}

// The same products on the oneDNN primitive (strided descriptors, scale, binary_add mask).
TEST(Matmul, AttentionShapesOnednnPath) {
  setenv("NE_DENSE_MATMUL", "onednn", 1);
  for (auto dims : std::vector<std::array<int64_t, 4>>{{1, 128, 12, 64}, {3, 77, 16, 64}, {2, 13, 3, 5}}) {
    const int64_t B = dims[0], S = dims[1], H = dims[2], D = dims[3];
    Shape mask{B, 1, 1, S};
    run_matmul({B, S, H, D}, {B, S, H, D}, &mask, {0, 2, 1, 3}, {0, 2, 3, 1}, {}, 0.125f, 32, "onednn");
    run_matmul({B, H, S, S}, {B, S, H, D}, nullptr, {}, {0, 2, 1, 3}, {0, 2, 1, 3}, 1.f, 33, "onednn");
  }
  // oneDNN 2.6 brgemm takes a full or [B,1,1,S]-like mask; others (e.g. [1,1,S,S]) fall back to
  // strided sgemm because it offers only its reference: correct either way.
  for (Shape m : std::vector<Shape>{{3, 4, 7, 7}, {1, 1, 7, 7}, {7}})
    run_matmul({3, 4, 7, 5}, {3, 4, 5, 7}, &m, {}, {}, {}, 0.25f, 34, m.size() == 4 && m[0] == 3 ? "onednn" : nullptr);
  Shape m{3, 1, 1, 7};
  run_matmul({3, 1, 7, 13}, {4, 13, 7}, &m, {}, {}, {}, 1.f, 38, "onednn");
  unsetenv("NE_DENSE_MATMUL");
}

// The same attention products on the strided-sgemm path (path 2), forced.
TEST(Matmul, AttentionShapesSgemmPath) {
  setenv("NE_DENSE_MATMUL", "sgemm", 1);
  for (auto dims : std::vector<std::array<int64_t, 4>>{{2, 128, 12, 64}, {3, 77, 16, 64}}) {
    const int64_t B = dims[0], S = dims[1], H = dims[2], D = dims[3];
    Shape mask{B, 1, 1, S};
    run_matmul({B, S, H, D}, {B, S, H, D}, &mask, {0, 2, 1, 3}, {0, 2, 3, 1}, {}, 0.125f, 35, "sgemm");
    run_matmul({B, H, S, S}, {B, S, H, D}, nullptr, {}, {0, 2, 1, 3}, {0, 2, 1, 3}, 1.f, 36, "sgemm");
  }
  Shape m{3, 1, 7, 1};
  run_matmul({3, 4, 7, 5}, {3, 4, 5, 7}, &m, {}, {}, {}, 0.25f, 37, "sgemm");
  unsetenv("NE_DENSE_MATMUL");
}

TEST(Matmul, MaskBroadcasts) {
  const int64_t B = 3, H = 4, S = 7;
  for (Shape m : std::vector<Shape>{{B, 1, 1, S}, {B, H, S, S}, {1, 1, S, S}, {S}, {1}, {B, 1, S, 1},
                                    {H, 1, S}})
    run_matmul({B, H, S, 5}, {B, H, 5, S}, &m, {}, {}, {}, 0.25f, 40);
}

TEST(Matmul, PermsGeneral) {
  // No unit stride in either matrix dim of A' (copied), transposed C, odd perms.
  run_matmul({5, 3, 7}, {5, 3, 4}, nullptr, {1, 2, 0}, {1, 0, 2}, {}, 1.f, 50);
  run_matmul({3, 7, 5}, {3, 5, 4}, nullptr, {}, {}, {0, 2, 1}, 1.f, 51);
  run_matmul({2, 3, 7, 5}, {2, 3, 5, 4}, nullptr, {}, {}, {3, 1, 0, 2}, 1.f, 52);
  run_matmul({7, 2, 5}, {4, 5}, nullptr, {1, 0, 2}, {1, 0}, {2, 0, 1}, 1.5f, 53);
  Shape m{1, 7, 1};
  run_matmul({7, 2, 5}, {4, 5}, &m, {1, 0, 2}, {1, 0}, {2, 1, 0}, 1.f, 54);
  // A' with no unit stride in its matrix dims (packed copy); C with none either (temp tile).
  run_matmul({7, 5, 3}, {3, 5, 4}, nullptr, {2, 0, 1}, {}, {}, 1.f, 55);
  Shape m2{3, 7, 1};
  run_matmul({7, 5, 3}, {5, 3, 4}, &m2, {2, 0, 1}, {1, 0, 2}, {1, 2, 0}, 0.5f, 56);
  for (const char* path : {"sgemm", "onednn"}) {
    setenv("NE_DENSE_MATMUL", path, 1);
    run_matmul({7, 5, 3}, {5, 3, 4}, &m2, {2, 0, 1}, {1, 0, 2}, {1, 2, 0}, 0.5f, 57);
  }
  unsetenv("NE_DENSE_MATMUL");
}

TEST(Matmul, Errors) {
  Arg A{{3, 7}, rnd(21, 1)}, B{{6, 4}, rnd(24, 2)};
  Runner r(info("Matmul", 2, {}));
  r.init({&A, &B});
  EXPECT_THROW(r.run({&A, &B}), ne::Error);
  Arg B2{{7, 4}, rnd(28, 3)};
  Runner r2(info("Matmul", 2, {{"src0_perm", "0,0"}}));
  r2.init({&A, &B2});
  EXPECT_THROW(r2.run({&A, &B2}), ne::Error);
  Arg Mk{{2, 4}, rnd(8, 4)};
  Runner r3(info("Matmul", 3, {{"append_op", "binary_add"}}));
  r3.init({&A, &B2, &Mk});
  EXPECT_THROW(r3.run({&A, &B2, &Mk}), ne::Error);
}

}  // namespace
