// The fused Attention op (BERT and feature-major layouts, fp32 and bf16, AMX where usable) against
// a double reference. Tolerances and seeds: dense_test_util.hpp.
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
#include "kernels/attention/attention.hpp"
#include "kernels/cpu_features.hpp"

using namespace dense_ops_test;

namespace {

// x [shape] permuted: y = transpose(x, perm) (numpy semantics), in double.
std::vector<double> permute(const std::vector<float>& x, const Shape& s, const std::vector<int64_t>& perm, Shape* ys) {
  const int r = int(s.size());
  ys->clear();
  for (int i = 0; i < r; ++i) ys->push_back(s[size_t(perm[size_t(i)])]);
  std::vector<int64_t> xst(r, 1);
  for (int i = r - 2; i >= 0; --i) xst[i] = xst[i + 1] * s[i + 1];
  std::vector<double> y(x.size());
  std::vector<int64_t> idx(r, 0);
  for (size_t o = 0; o < y.size(); ++o) {
    int64_t off = 0;
    for (int i = 0; i < r; ++i) off += idx[i] * xst[size_t(perm[size_t(i)])];
    y[o] = x[size_t(off)];
    for (int i = r - 1; i >= 0; --i) {
      if (++idx[i] < (*ys)[i]) break;
      idx[i] = 0;
    }
  }
  return y;
}

std::string fused_bf16_kernel();

// Q, K, V: rank 4; Q' [B,H,Sq,D], K' [B,H,D,Sk], V' [B,H,Sk,Dv] after perms; mask [B,1,1,Sk].
void run_attention(const Shape& qs, const Shape& ks, const Shape& vs, std::vector<int64_t> pq, std::vector<int64_t> pk,
                   std::vector<int64_t> pv, std::vector<int64_t> pd, bool with_mask, uint32_t seed, const char* expect,
                   bool bf16 = false) {
  SCOPED_TRACE("Attention seed " + std::to_string(seed) + " Q" + ne::shape_str(qs) + " perms " + join(pq) + "/" +
               join(pk) + "/" + join(pv) + "/" + join(pd));
  Arg Q{qs, rnd(numel(qs), seed, -2.f, 2.f)}, K{ks, rnd(numel(ks), seed + 1, -2.f, 2.f)}, V{vs, rnd(numel(vs), seed + 2)};
  Shape q2, k2, v2;
  auto q = permute(Q.v, qs, pq, &q2), k = permute(K.v, ks, pk, &k2), v = permute(V.v, vs, pv, &v2);
  const int64_t B = q2[0], H = q2[1], Sq = q2[2], D = q2[3], Sk = k2[3], Dv = v2[3];
  Arg M;
  if (with_mask) M = Arg{{B, 1, 1, Sk}, rnd(B * Sk, seed + 3, -3.f, 0.f)};
  const double scale = 0.125;
  std::vector<double> ctx(size_t(B * H * Sq * Dv)), ctol(ctx.size());
  const double rel = bf16 ? std::ldexp(1.0, -7) : 1e-5;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < Sq; ++i) {
        std::vector<double> s(static_cast<size_t>(Sk)), sm(static_cast<size_t>(Sk));
        double mx = -1e300, smag = 0;
        for (int64_t j = 0; j < Sk; ++j) {
          double acc = 0, mag = 0;
          for (int64_t d = 0; d < D; ++d) {
            const double p = q[size_t(((b * H + h) * Sq + i) * D + d)] * k[size_t(((b * H + h) * D + d) * Sk + j)];
            acc += p, mag += std::fabs(p);
          }
          s[size_t(j)] = scale * acc + (with_mask ? M.v[size_t(b * Sk + j)] : 0.0);
          smag = std::max(smag, scale * mag);
          mx = std::max(mx, s[size_t(j)]);
        }
        double sum = 0;
        for (int64_t j = 0; j < Sk; ++j) sum += (sm[size_t(j)] = std::exp(s[size_t(j)] - mx));
        for (int64_t e = 0; e < Dv; ++e) {
          double acc = 0, mag = 0;
          for (int64_t j = 0; j < Sk; ++j) {
            const double p = sm[size_t(j)] / sum * v[size_t(((b * H + h) * Sk + j) * Dv + e)];
            acc += p, mag += std::fabs(p);
          }
          const size_t o = size_t(((b * H + h) * Sq + i) * Dv + e);
          ctx[o] = acc;
          // score errors (relative rel on sum |q k|) move the probabilities by ~ that much
          ctol[o] = (2 * rel * (smag + 1) + rel + 1e-6) * std::max(mag, 1e-3) + 1e-6;
        }
      }
  // Expected output: ctx [B,H,Sq,Dv] transposed by dst_perm.
  const Shape cs{B, H, Sq, Dv};
  const std::vector<int64_t> pdi = pd.empty() ? std::vector<int64_t>{0, 1, 2, 3} : pd;
  Shape os;
  std::vector<double> ref(ctx.size()), tol(ctx.size());
  {
    for (int i = 0; i < 4; ++i) os.push_back(cs[size_t(pdi[size_t(i)])]);
    std::vector<int64_t> st(4, 1), idx(4, 0);
    for (int i = 2; i >= 0; --i) st[size_t(i)] = st[size_t(i) + 1] * cs[size_t(i) + 1];
    for (size_t o = 0; o < ref.size(); ++o) {
      int64_t off = 0;
      for (int i = 0; i < 4; ++i) off += idx[size_t(i)] * st[size_t(pdi[size_t(i)])];
      ref[o] = ctx[size_t(off)], tol[o] = ctol[size_t(off)];
      for (int i = 3; i >= 0; --i) {
        if (++idx[size_t(i)] < os[size_t(i)]) break;
        idx[size_t(i)] = 0;
      }
    }
  }
  std::vector<std::pair<std::string, std::string>> attrs;
  if (!pq.empty()) attrs.push_back({"qk_src0_perm", join(pq)});
  if (!pk.empty()) attrs.push_back({"qk_src1_perm", join(pk)});
  attrs.push_back({"output_scale", "0.125"});
  if (!pv.empty()) attrs.push_back({"pv_src1_perm", join(pv)});
  if (!pd.empty()) attrs.push_back({"dst_perm", join(pd)});
  if (bf16) attrs.push_back({"compute_dtype", "bf16"});
  std::vector<Arg*> args{&Q, &K, &V};
  if (with_mask) args.push_back(&M);
  Runner r(info("Attention", int(args.size()), attrs));
  r.init(args);
  auto got = r.run(args);
  EXPECT_EQ(r.out.shape, os);
  expect_close(got, ref, tol, "Attention");
  const std::string kern = r.op->kernel(), why = r.op->reason();
  if (std::string(expect) == "attention_fused") {
    // The fused path's tiles are the AVX-512 small GEMM's; bf16 products where AVX512_BF16 is.
    using ne::cpu::Isa;
    if (!ne::cpu::mayiuse(Isa::avx512_core)) {
      EXPECT_EQ(kern, "attention_unfused") << why;
      EXPECT_NE(why.find("no AVX-512 (" + ne::cpu::why_not(Isa::avx512_core) + ")"), std::string::npos) << why;
      EXPECT_TRUE(onednn_sgemm_is_jit()) << "the unfused products would run oneDNN's reference GEMM";
    } else if (bf16 && ne::cpu::mayiuse(Isa::avx512_core_bf16)) {
      // The attention family's first runnable bf16 entry (AMX where usable), else the op's own.
      const std::string fam = fused_bf16_kernel();
      EXPECT_EQ(kern, fam == "attention_fused_bf16" ? "attention_fused_bf16:avx512_bf16" : fam) << why;
    } else {
      EXPECT_EQ(kern, "attention_fused:avx512") << why;
      if (bf16) {
        EXPECT_NE(why.find("compute_dtype bf16 asked, but " + ne::cpu::why_not(Isa::avx512_core_bf16)), std::string::npos)
            << why;
      }
    }
  } else {
    EXPECT_NE(kern.find(expect), std::string::npos) << kern << " — " << why;
  }
  EXPECT_EQ(r.run(args), got);  // cached plan
}

// The kernel the op must report for compute_dtype bf16 on this CPU: the attention family's first
// runnable entry (AMX where usable), else the op's own AVX-512 bf16 path. Taken from the family's
// list, so a silent fallback fails the test.
std::string fused_bf16_kernel() {
  ne::attention::Args a;
  a.batch = 1, a.Sq = a.Sk = a.D = a.Dv = 16, a.compute = ne::attention::Compute::bf16;
  const auto c = ne::attention::choose(a, /*runnable_only=*/true);
  return c.kernel ? c.kernel->name : "attention_fused_bf16";
}

}  // namespace

// BERT layout ([B,S,H,D] views), the fused path: fp32 and bf16, with and without the mask, odd
// sequence lengths (tails of the 6-row and 64-column tiles). Which kernel each ISA tier runs:
// run_attention's "attention_fused" expectation.
TEST(Attention, FusedBertLayout) {
  // {1, 700, 1, 4}: several query row blocks (the score tile is capped at 256 KiB) and a tail.
  for (auto dims : std::vector<std::array<int64_t, 4>>{{2, 128, 12, 64}, {3, 77, 4, 64}, {2, 13, 3, 5}, {1, 700, 1, 4}}) {
    const int64_t B = dims[0], S = dims[1], H = dims[2], D = dims[3];
    const Shape s{B, S, H, D};
    for (bool mask : {true, false}) {
      run_attention(s, s, s, {0, 2, 1, 3}, {0, 2, 3, 1}, {0, 2, 1, 3}, {0, 2, 1, 3}, mask, 80, "attention_fused");
      run_attention(s, s, s, {0, 2, 1, 3}, {0, 2, 3, 1}, {0, 2, 1, 3}, {0, 2, 1, 3}, mask, 81, "attention_fused", true);
    }
  }
}

// Feature-major layout ([H,D,B,S] views, as --transpose writes them: Q' and the output have
// their D dim strided): fused with Q' transposed per tile and P·V' computed as its transpose.
TEST(Attention, FusedFeatureMajorLayout) {
  for (auto dims : std::vector<std::array<int64_t, 4>>{{2, 128, 12, 64}, {2, 19, 3, 8}, {1, 7, 2, 5}, {1, 700, 1, 4}}) {
    const int64_t B = dims[0], S = dims[1], H = dims[2], D = dims[3];
    const Shape fm{H, D, B, S};
    run_attention(fm, fm, fm, {2, 0, 3, 1}, {2, 0, 1, 3}, {2, 0, 3, 1}, {1, 3, 0, 2}, true, 84, "attention_fused");
    run_attention(fm, fm, fm, {2, 0, 3, 1}, {2, 0, 1, 3}, {2, 0, 3, 1}, {1, 3, 0, 2}, false, 85, "attention_fused", true);
  }
}

// Layouts the fused path does not take (no unit stride in Q' at all), and the forced-unfused
// path: the scores go through a temporary, same numbers.
TEST(Attention, UnfusedLayouts) {
  const int64_t B = 2, S = 19, H = 3, D = 8;
  // Q [H,S,D,B] -> Q' [B,H,S,D] with neither S nor D unit-stride.
  run_attention(Shape{H, S, D, B}, Shape{B, S, H, D}, Shape{B, S, H, D}, {3, 0, 1, 2}, {0, 2, 3, 1}, {0, 2, 1, 3},
                {0, 2, 1, 3}, true, 82, "attention_unfused");
  setenv("NE_DENSE_MATMUL", "sgemm", 1);
  const Shape s{B, S, H, D};
  run_attention(s, s, s, {0, 2, 1, 3}, {0, 2, 3, 1}, {0, 2, 1, 3}, {0, 2, 1, 3}, true, 83, "attention_unfused");
  unsetenv("NE_DENSE_MATMUL");
}

// On a CPU with usable AMX, compute_dtype bf16 must run the AMX kernel of the attention family
// (BERT and feature-major layouts); NE_ATTENTION_AMX=0 brings back the AVX-512 bf16 path.
TEST(Attention, AmxKernelRunsWhereUsable) {
  if (!ne::cpu::mayiuse(ne::cpu::Isa::avx512_core_amx))
    GTEST_SKIP() << "AMX not usable: " << ne::cpu::why_not(ne::cpu::Isa::avx512_core_amx);
  const Shape s{2, 77, 3, 64}, fm{3, 64, 2, 77};
  run_attention(s, s, s, {0, 2, 1, 3}, {0, 2, 3, 1}, {0, 2, 1, 3}, {0, 2, 1, 3}, true, 86, "attn_bf16_f32acc_16x16__amx", true);
  run_attention(fm, fm, fm, {2, 0, 3, 1}, {2, 0, 1, 3}, {2, 0, 3, 1}, {1, 3, 0, 2}, true, 87, "attn_bf16_f32acc_16x16__amx", true);
  // Q' with no unit stride (the unfused layout of fp32): the AMX kernel takes any strides.
  run_attention(Shape{3, 19, 8, 2}, Shape{2, 19, 3, 8}, Shape{2, 19, 3, 8}, {3, 0, 1, 2}, {0, 2, 3, 1}, {0, 2, 1, 3},
                {0, 2, 1, 3}, true, 88, "attn_bf16_f32acc_16x16__amx", true);
  setenv("NE_ATTENTION_AMX", "0", 1);
  run_attention(s, s, s, {0, 2, 1, 3}, {0, 2, 3, 1}, {0, 2, 1, 3}, {0, 2, 1, 3}, true, 89, "attention_fused_bf16:avx512_bf16", true);
  unsetenv("NE_ATTENTION_AMX");
}

TEST(Attention, BadAttrs) {
  EXPECT_THROW(ne::create_op(info("Attention", 3, {{"compute_dtype", "int4"}})), ne::Error);
  Arg Q{{1, 4, 2, 3}, rnd(24, 1)}, K{{1, 4, 2, 5}, rnd(40, 2)};
  Runner r(info("Attention", 3, {{"qk_src0_perm", "0,2,1,3"}, {"qk_src1_perm", "0,2,3,1"}}));
  std::vector<Arg*> args{&Q, &K, &K};
  EXPECT_THROW({ r.init(args); r.run(args); }, ne::Error);  // D 3 vs 5
}
