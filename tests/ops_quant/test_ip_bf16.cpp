// InnerProduct.bf16 (patterns, post-ops, bf16 src / output in place, the K-gather candidate)
// against a double reference with src rounded to bf16. Tolerances and seeds: quant_test_util.hpp.
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

struct Bf16Case {
  std::string pat = "dense";
  int64_t M = 3, K = 13, N = 13;
  bool src_bf16 = false, bias = true, out_bf16 = false, inplace = false;
  std::string post;
  std::vector<int64_t> Ms;
  uint32_t seed = 1;
  std::string expect_kernel;
  std::string only;  // NE_IP_ONLY during init (then expect_kernel is the exact name)
};

void run_bf16(const Bf16Case& c) {
  SCOPED_TRACE("pat=" + c.pat + " M=" + std::to_string(c.M) + " K=" + std::to_string(c.K) + " N=" +
               std::to_string(c.N) + " post=" + c.post + (c.src_bf16 ? " src bf16" : "") +
               (c.out_bf16 ? " out bf16" : "") + " seed=" + std::to_string(c.seed));
  std::mt19937 g(c.seed);
  const int64_t K = c.K, N = c.N;
  const bool has_sum = c.post.find("sum") != std::string::npos;
  std::uniform_real_distribution<float> ud(-1.f, 1.f);
  auto Wf = make_weight<float>(K, N, c.pat, 0.9, g, [&](std::mt19937& r) { return ud(r) * 0.3f; });
  std::vector<uint16_t> W(Wf.size());
  for (size_t i = 0; i < W.size(); ++i) W[i] = ref_bf16(Wf[i]);
  std::vector<float> bias(static_cast<size_t>(N));
  for (auto& v : bias) v = ud(g);
  std::vector<std::pair<std::string, std::string>> attrs;
  if (!c.post.empty()) attrs.push_back({"append_op", c.post});
  if (c.out_bf16) attrs.push_back({"output_dtype", "bf16"});
  const ne::OpConfig cfg = forced_sparse(c.pat);
  Runner r(info("InnerProduct.bf16", 2 + (c.bias ? 1 : 0) + (has_sum ? 1 : 0), attrs), &cfg);
  if (!r.op) return;
  Arg a_src, a_w = make(DType::bf16, {K, N}, W, true), a_b = make(DType::fp32, {N}, bias, true), a_res;
  std::vector<Arg*> args{&a_src, &a_w};
  if (c.bias) args.push_back(&a_b);
  if (has_sum) args.push_back(&a_res);
  if (c.expect_kernel == "onednn" && exact_kernels_only(ne::sparse::DType::bf16)) {
    try {
      r.init(args);
      ADD_FAILURE() << "expected an error, got kernel " << r.op->kernel();
    } catch (const ne::Error& e) {
      EXPECT_NE(std::string(e.what()).find("oneDNN has no bf16 matmul"), std::string::npos) << e.what();
    }
    return;
  }
  {
    ScopedEnv only("NE_IP_ONLY", c.only);
    r.init(args);
  }
  if (!c.only.empty()) {
    EXPECT_EQ(r.op->kernel(), c.expect_kernel) << r.op->reason();
  } else {
    expect_kernel(*r.op, c.expect_kernel, c.pat, ne::sparse::DType::bf16);
  }

  std::vector<int64_t> Ms{c.M};
  Ms.insert(Ms.end(), c.Ms.begin(), c.Ms.end());
  for (int64_t M : Ms) {
    SCOPED_TRACE("M=" + std::to_string(M));
    std::vector<float> X(static_cast<size_t>(M * K));
    for (auto& v : X) v = ud(g) * 2;
    std::vector<uint16_t> Xb(X.size());
    for (size_t i = 0; i < X.size(); ++i) Xb[i] = ref_bf16(X[i]);
    a_src = c.src_bf16 ? make(DType::bf16, {M, K}, Xb) : make(DType::fp32, {M, K}, X);
    std::vector<float> res(static_cast<size_t>(M * N));
    for (auto& v : res) v = ud(g);
    a_res = make(DType::fp32, {M, N}, res);
    std::vector<double> y(static_cast<size_t>(M * N)), tol(size_t(M * N));
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = 0; n < N; ++n) {
        double acc = 0, am = 0;
        for (int64_t k = 0; k < K; ++k) {
          double p = bf16_val(Xb[size_t(m * K + k)]) * bf16_val(W[size_t(k * N + n)]);
          acc += p, am += std::fabs(p);
        }
        double v = acc + (c.bias ? bias[size_t(n)] : 0.0);
        double mg = am + (c.bias ? std::fabs(bias[size_t(n)]) : 0.0);
        for (auto& p : split(c.post)) {
          if (p == "sum") v += res[size_t(m * N + n)], mg += std::fabs(res[size_t(m * N + n)]);
          else v = ref_act(p, v);
        }
        y[size_t(m * N + n)] = v;
        tol[size_t(m * N + n)] = 4 * std::sqrt(double(K)) * std::ldexp(1.0, -24) * am + 1e-5 * mg + 1e-6 +
                                 (c.out_bf16 ? std::ldexp(std::fabs(v), -8) : 0.0);
      }
    auto outb = r.run(args, c.inplace && has_sum && !c.out_bf16 ? int(args.size()) - 1 : -1);
    ASSERT_EQ(r.out.dtype, c.out_bf16 ? DType::bf16 : DType::fp32);
    for (int64_t i = 0; i < M * N; ++i) {
      double o = c.out_bf16 ? bf16_val(reinterpret_cast<const uint16_t*>(outb.data())[i])
                            : double(reinterpret_cast<const float*>(outb.data())[i]);
      ASSERT_NEAR(o, y[size_t(i)], tol[size_t(i)]) << "at m=" << i / N << " n=" << i % N << " kernel " << r.op->kernel();
    }
  }
}

TEST(InnerProductBf16, AllPatternsAndSizes) {
  uint32_t seed = 1000;
  for (const char* pat : kPats)
    for (int64_t K : {13, 97})
      for (int64_t N : {13, 64})
        for (int64_t M : {1, 3, 77}) {
          Bf16Case c;
          c.pat = pat, c.K = K, c.N = N, c.M = M, c.seed = seed++;
          run_bf16(c);
        }
}

TEST(InnerProductBf16, PostOpsSrcBf16OutBf16InPlace) {
  uint32_t seed = 1100;
  for (const char* pat : kPats)
    for (std::string post : {"", "gelu_erf", "sum", "gelu_erf,sum", "relu"}) {
      for (int v = 0; v < 4; ++v) {
        Bf16Case c;
        c.pat = pat, c.post = post, c.K = 97, c.N = 64, c.M = 77, c.seed = seed++;
        c.src_bf16 = v == 1;
        c.out_bf16 = v == 2;
        c.inplace = v == 3;
        c.bias = v != 1;
        c.Ms = {1, 0, 3};
        run_bf16(c);
      }
    }
}

// The bf16 side of InnerProductS8.DenseOddShapesEveryM.
TEST(InnerProductBf16, DenseOddShapesEveryM) {
  uint32_t seed = 1250;
  for (auto kn : {std::pair<int64_t, int64_t>{97, 29}, {5, 3}, {131, 67}, {768, 33}})
    for (bool src_bf16 : {false, true}) {
      Bf16Case c;
      c.pat = "dense", c.src_bf16 = src_bf16, c.K = kn.first, c.N = kn.second, c.M = 1;
      c.Ms = {2, 3, 16, 77, 515, 1, 130};
      c.seed = seed++;
      run_bf16(c);
    }
}

TEST(InnerProductBf16, KgatherCandidateThroughTheOp) {
  uint32_t seed = 1300;
  for (const char* pat : {"1x4", "4x1"})
    for (int64_t N : {64, 40})
      for (std::string post : {"", "gelu_erf,sum"})
        for (bool out_bf16 : {false, true}) {
          Bf16Case c;
          c.pat = pat, c.post = post, c.out_bf16 = out_bf16, c.K = 97, c.N = N, c.M = 77, c.seed = seed++;
          c.Ms = {1, 16};
          c.only = "sparse_amx_kgather";
          c.expect_kernel = kgather_kernel(ne::sparse::DType::bf16);
          run_bf16(c);
        }
}

TEST(InnerProductBf16, PostOrderOutsideTheSparseEpilogueGoesDense) {
  Bf16Case c;
  c.pat = "1x4", c.post = "sum,gelu_erf", c.K = 97, c.N = 64, c.M = 77, c.seed = 1200, c.expect_kernel = "onednn";
  run_bf16(c);
}

}  // namespace
