// The InnerProduct candidate lists: their reasons, the kernel that ran for each M, the timed choice
// cached beside the packed weights, fp32's timed sparse / dense candidates; InnerProduct.s8's
// attribute errors.
#include "quant_test_util.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "executor/operator.hpp"
#include "executor/ops/ip_candidates.hpp"
#include "executor/ops/quant_common.hpp"
#include <dnnl.hpp>

#include "kernels/cpu_features.hpp"
#include "kernels/sparse_gemm/sparse_gemm.hpp"

using namespace quant_ops_test;

namespace {

// The candidate list's reasons: K-gather declines without AMX (or, with AMX, for a 4x1 weight whose
// z16 is ~0.9^16, and under a given threshold); a forced threshold runs the AVX-512 sparse entry
// alone; NE_IP_ONLY with an unknown entry is a clear error.
TEST(InnerProductS8, CandidateListReasons) {
  std::mt19937 g(11);
  std::uniform_int_distribution<int> wd(-127, 127);
  const int64_t K = 256, N = 64;
  std::vector<float> ws(N, 0.01f);
  for (std::string pat : {"1x4", "4x1"}) {
    SCOPED_TRACE(pat);
    auto W = make_weight<int8_t>(K, N, pat, 0.9, g, [&](std::mt19937& r) { return int8_t(wd(r)); });
    Arg a_src, a_w = make(DType::s8, {K, N}, W, true), a_ws = make(DType::fp32, {N}, ws, true);
    {
      Runner r(info("InnerProduct.s8", 3, {{"src_scale", "0.02"}, {"src_zero_point", "10"}}));
      r.init({&a_src, &a_w, &a_ws});
      const std::string why = r.op->reason();
      if (!ne::cpu::mayiuse(ne::cpu::Isa::avx512_core_amx)) {
        EXPECT_NE(why.find("sparse_amx_kgather: needs AMX ("), std::string::npos) << why;
      } else if (pat == "4x1") {
        EXPECT_NE(why.find("sparse_amx_kgather: z16 0."), std::string::npos) << why;
        EXPECT_NE(why.find(" < 0.30: too few all-zero"), std::string::npos) << why;
      }
    }
    if (pat != "1x4" || exact_kernels_only(ne::sparse::DType::s8)) continue;
    ne::OpConfig forced;
    forced.sparse_threshold = 0.5f;
    Runner r(info("InnerProduct.s8", 3, {{"src_scale", "0.02"}, {"src_zero_point", "10"}}), &forced);
    r.init({&a_src, &a_w, &a_ws});
    const std::string why = r.op->reason();
    // A given threshold forces the AVX-512 sparse rule; the K-gather kernel is a timed candidate only.
    EXPECT_EQ(why.rfind("sparse: ", 0), 0u) << why;
    EXPECT_NE(why.find("dense: not tried (sparse is a sure or forced choice)"), std::string::npos) << why;
    if (ne::cpu::mayiuse(ne::cpu::Isa::avx512_core_amx)) {
      EXPECT_NE(why.find("sparse_amx_kgather: runs only as a timed candidate"), std::string::npos) << why;
    }
    ScopedEnv only("NE_IP_ONLY", "no_such_entry");
    Runner bad(info("InnerProduct.s8", 3, {{"src_scale", "0.02"}, {"src_zero_point", "10"}}));
    try {
      bad.init({&a_src, &a_w, &a_ws});
      ADD_FAILURE() << "NE_IP_ONLY=no_such_entry accepted: " << bad.op->kernel();
    } catch (const ne::Error& e) {
      EXPECT_NE(std::string(e.what()).find("dense: NE_IP_ONLY=no_such_entry"), std::string::npos) << e.what();
    }
  }
}

// kernel() names the kernel that runs each M (the sparse list prefers a narrow token tile for
// small M), not the one chosen for M = 128 at init.
TEST(InnerProductS8, KernelIsTheOneThatRanForEachM) {
  if (exact_kernels_only(ne::sparse::DType::s8)) GTEST_SKIP() << "int8 runs the exact kernels here";
  std::mt19937 g(12);
  std::uniform_int_distribution<int> wd(-127, 127);
  const int64_t K = 128, N = 64;
  auto W = make_weight<int8_t>(K, N, "1x4", 0.9, g, [&](std::mt19937& r) { return int8_t(wd(r)); });
  std::vector<float> ws(N, 0.01f);
  ne::OpConfig forced;
  forced.sparse_threshold = 0.f;
  ScopedEnv only("NE_IP_ONLY", "sparse");
  Runner r(info("InnerProduct.s8", 3, {{"src_scale", "0.02"}, {"src_zero_point", "10"}}), &forced);
  Arg a_src, a_w = make(DType::s8, {K, N}, W, true), a_ws = make(DType::fp32, {N}, ws, true);
  r.init({&a_src, &a_w, &a_ws});
  for (int64_t M : {int64_t(8), int64_t(256), int64_t(8)}) {
    SCOPED_TRACE("M=" + std::to_string(M));
    std::vector<float> X(size_t(M * K), 0.5f);
    a_src = make(DType::fp32, {M, K}, X);
    r.run({&a_src, &a_w, &a_ws});
    ne::sparse::GemmArgs a;
    a.M = int(M);
    a.src_dtype = ne::sparse::DType::u8;
    const auto ch = ne::sparse::choose_kernel(a, ne::sparse::DType::s8, ne::sparse::Pattern::p1x4);
    ASSERT_TRUE(ch.kernel);
    EXPECT_EQ(r.op->kernel(), ch.kernel->name) << r.op->reason();
  }
}

// Measured dispatch: every candidate is timed once per M class at plan time, the reason shows each
// class's timings and what ran; with WEIGHT_SHARING=1 the decision is cached in NE_CACHE_DIR and a
// second op on the same weight (the in-process memo cleared) takes it from there.
TEST(InnerProductS8, TimedChoiceIsCachedBesideThePackedWeights) {
  if (exact_kernels_only(ne::sparse::DType::s8)) GTEST_SKIP() << "int8 runs the exact kernels here";
  char tmpl[] = "/tmp/ne_ipchoice_XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  ScopedEnv ws_env("WEIGHT_SHARING", "1"), dir_env("NE_CACHE_DIR", tmpl);
  std::mt19937 g(13);
  std::uniform_int_distribution<int> wd(-127, 127);
  const int64_t K = 256, N = 128, M = 64;
  auto W = make_weight<int8_t>(K, N, "1x4", 0.9, g, [&](std::mt19937& r) { return int8_t(wd(r)); });
  std::vector<float> ws(N, 0.01f), X(size_t(M * K), 0.5f);
  Arg a_src = make(DType::fp32, {M, K}, X), a_w = make(DType::s8, {K, N}, W, true),
      a_ws = make(DType::fp32, {N}, ws, true);
  std::string first_ran;
  for (int pass = 0; pass < 2; ++pass) {
    SCOPED_TRACE("pass " + std::to_string(pass));
    ne::ip_choice_memo_clear();
    Runner r(info("InnerProduct.s8", 3, {{"src_scale", "0.02"}, {"src_zero_point", "10"}}));
    r.init({&a_src, &a_w, &a_ws});
    r.run({&a_src, &a_w, &a_ws});
    const std::string why = r.op->reason();
    const size_t at = why.find("M=64");
    ASSERT_NE(at, std::string::npos) << why;
    EXPECT_EQ(why.find("M=64 (cached decision): ran ") != std::string::npos, pass == 1) << why;
    EXPECT_NE(why.find("x slower"), std::string::npos) << why;
    if (pass == 0) first_ran = r.op->kernel();
    else EXPECT_EQ(r.op->kernel(), first_ran) << why;
  }
  std::system((std::string("rm -rf ") + tmpl).c_str());
}

// fp32 has the same list machinery: a sparse weight above the threshold, near the break-even, is
// timed against oneDNN; far above it (>= 50% 1x4) it runs sparse untimed.
TEST(InnerProductFp32, SparseAndDenseAreTimedCandidates) {
  if (!ne::cpu::mayiuse(ne::cpu::Isa::avx512_core)) GTEST_SKIP() << "no AVX-512: only the scalar sparse kernel";
  std::mt19937 g(14);
  std::uniform_real_distribution<float> ud(-1.f, 1.f);
  const int64_t K = 256, N = 128, M = 32;
  auto W = make_weight<float>(K, N, "1x4", 0.4, g, [&](std::mt19937& r) { return ud(r); });
  std::vector<float> X(size_t(M * K), 0.25f);
  Arg a_src = make(DType::fp32, {M, K}, X), a_w = make(DType::fp32, {K, N}, W, true);
  Runner r(info("InnerProduct", 2, {}));
  r.init({&a_src, &a_w});
  auto out = r.run({&a_src, &a_w});
  const std::string why = r.op->reason();
  EXPECT_EQ(why.rfind("candidates sparse (weight 40", 0), 0u) << why;
  EXPECT_NE(why.find(", dense: timed on this CPU"), std::string::npos) << why;
  EXPECT_NE(why.find("M=32: ran "), std::string::npos) << why;
  // Far above the fp32 break-even the sparse kernel runs untimed from M = 16 on; M = 1 is timed.
  auto W90 = make_weight<float>(K, N, "1x4", 0.9, g, [&](std::mt19937& r) { return ud(r); });
  Arg a_w90 = make(DType::fp32, {K, N}, W90, true);
  Runner r90(info("InnerProduct", 2, {}));
  r90.init({&a_src, &a_w90});
  r90.run({&a_src, &a_w90});
  std::string why90 = r90.op->reason();
  EXPECT_EQ(why90.rfind("candidates sparse (weight 90", 0), 0u) << why90;
  EXPECT_NE(why90.find("sure for M >= 16: >= 70%, far above the fp32 break-even"), std::string::npos) << why90;
  EXPECT_NE(why90.find("M=32: ran bsgemm_f32_1x4"), std::string::npos) << why90;
  EXPECT_NE(why90.find("(not timed: weight 90"), std::string::npos) << why90;
  std::vector<float> X1(size_t(K), 0.25f);
  Arg a_src1 = make(DType::fp32, {1, K}, X1);
  r90.run({&a_src1, &a_w90});
  why90 = r90.op->reason();
  EXPECT_NE(why90.find("M=1: ran "), std::string::npos) << why90;
  EXPECT_NE(why90.find("x slower"), std::string::npos) << why90;
  const float* y = reinterpret_cast<const float*>(out.data());
  for (int64_t n = 0; n < N; ++n) {
    double acc = 0, mag = 0;
    for (int64_t k = 0; k < K; ++k) acc += 0.25 * W[size_t(k * N + n)], mag += std::fabs(0.25 * W[size_t(k * N + n)]);
    for (int64_t m = 0; m < M; ++m) ASSERT_NEAR(y[m * N + n], acc, 1e-5 * mag + 1e-6) << "m=" << m << " n=" << n;
  }
}

TEST(InnerProductS8, BadAttributesAreErrors) {
  std::vector<int8_t> W(16, 1);
  std::vector<float> ws(4, 0.1f);
  auto mk = [](std::vector<std::pair<std::string, std::string>> a) {
    return ne::create_op(info("InnerProduct.s8", 3, a));
  };
  EXPECT_THROW(mk({}), ne::Error);                                                      // no src_scale
  EXPECT_THROW(mk({{"src_scale", "0"}}), ne::Error);                                    // not positive
  EXPECT_THROW(mk({{"src_scale", "0.1"}, {"src_zero_point", "300"}}), ne::Error);       // zp range
  EXPECT_THROW(mk({{"src_scale", "0.1"}, {"src_dtype", "s8"}, {"src_zero_point", "3"}}), ne::Error);
  EXPECT_THROW(mk({{"src_scale", "0.1"}, {"output_dtype", "u8"}}), ne::Error);          // no dst_scale
  auto op = mk({{"src_scale", "0.1"}});
  Arg a_src, a_w = make(DType::s8, {4, 4}, W, true), a_ws = make(DType::fp32, {3}, std::vector<float>(3, 0.1f), true);
  std::vector<ne::Tensor> t(3);
  Arg* args[] = {&a_src, &a_w, &a_ws};
  std::vector<ne::Tensor*> p;
  for (int k = 0; k < 3; ++k) {
    t[k].dtype = args[k]->dt, t[k].is_const = args[k]->is_const;
    if (t[k].is_const) t[k].shape = args[k]->shape, t[k].data = args[k]->bytes.data();
    p.push_back(&t[k]);
  }
  EXPECT_THROW(op->init(p), ne::Error);  // weight_scale of 3 for N = 4
}

}  // namespace
