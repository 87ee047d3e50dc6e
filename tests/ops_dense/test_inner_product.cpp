// InnerProduct (with bias, residual sum and post-op chains) against a double reference.
// Tolerances and seeds: dense_test_util.hpp.
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

using namespace dense_ops_test;

namespace {

struct IpCase {
  int64_t M, K, N;
  bool bias;
  std::string post;
};

// dst = post(src·W + b) with `sum` adding residual in place in the list.
void ip_ref(const IpCase& c, const std::vector<float>& src, const std::vector<float>& w,
            const std::vector<float>& b, const std::vector<float>& res, std::vector<double>* ref,
            std::vector<double>* tol) {
  const auto posts = split(c.post);
  ref->assign(c.M * c.N, 0);
  tol->assign(c.M * c.N, 0);
  for (int64_t m = 0; m < c.M; ++m)
    for (int64_t n = 0; n < c.N; ++n) {
      double acc = 0, mag = 0;
      for (int64_t k = 0; k < c.K; ++k) {
        acc += double(src[m * c.K + k]) * w[k * c.N + n];
        mag += std::fabs(double(src[m * c.K + k]) * w[k * c.N + n]);
      }
      if (c.bias) acc += b[n], mag += std::fabs(b[n]);
      double t = 4 * std::sqrt(double(c.K) + 1) * kU * mag + 1e-7;
      for (auto& p : posts) {
        if (p == "sum") {
          acc += res[m * c.N + n];
          t += kU * std::fabs(acc) + kU * std::fabs(res[m * c.N + n]);
        } else {
          acc = ref_post(p, acc);
          t = t * 1.2 + 1e-6 * std::fabs(acc) + 1e-6;  // |f'| <= 1.13 for these functions
        }
      }
      (*ref)[m * c.N + n] = acc;
      (*tol)[m * c.N + n] = t;
    }
}

void run_ip_case(const IpCase& c, uint32_t seed, bool inplace = false) {
  SCOPED_TRACE("seed " + std::to_string(seed) + " M=" + std::to_string(c.M) + " K=" + std::to_string(c.K) +
               " N=" + std::to_string(c.N) + " post=" + c.post + (inplace ? " inplace" : ""));
  const bool sum = c.post.find("sum") != std::string::npos;
  Arg src{{c.M, c.K}, rnd(c.M * c.K, seed)};
  Arg w{{c.K, c.N}, rnd(c.K * c.N, seed + 1), true};
  Arg b{{c.N}, rnd(c.N, seed + 2), true};
  Arg res{{c.M, c.N}, rnd(c.M * c.N, seed + 3)};
  std::vector<Arg*> args{&src, &w};
  if (c.bias) args.push_back(&b);
  if (sum) args.push_back(&res);
  std::vector<std::pair<std::string, std::string>> attrs;
  if (!c.post.empty()) attrs.push_back({"append_op", c.post});
  Runner r(info("InnerProduct", int(args.size()), attrs));
  r.init(args);
  if (sum) {
    EXPECT_EQ(r.op->inplace_input(), int(args.size()) - 1);
  }
  std::vector<double> ref, tol;
  ip_ref(c, src.v, w.v, b.v, res.v, &ref, &tol);
  auto got = r.run(args, inplace ? int(args.size()) - 1 : -1);
  EXPECT_EQ(r.out.shape, (Shape{c.M, c.N}));
  expect_close(got, ref, tol, "InnerProduct");
  // Every post-op chain stays on an optimised oneDNN kernel, on every ISA tier (where oneDNN
  // fuses only a leading sum, the engine adds the residual in a binary pass: dense_inner_product.cpp).
  EXPECT_EQ(r.op->kernel().find("ref"), std::string::npos) << "oneDNN fell back to its reference: " << r.op->kernel();
}

TEST(InnerProduct, AwkwardShapesNoPost) {
  uint32_t seed = 100;
  for (int64_t M : {1, 3, 77, 231})
    for (auto kn : std::vector<std::pair<int64_t, int64_t>>{{13, 97}, {97, 13}, {64, 64}, {1, 5}})
      for (bool bias : {false, true}) run_ip_case({M, kn.first, kn.second, bias, ""}, seed++);
}

TEST(InnerProduct, EachPostOp) {
  uint32_t seed = 200;
  for (std::string p : {"relu", "gelu_erf", "gelu_tanh", "tanh", "sigmoid", "sum"})
    for (bool bias : {false, true}) run_ip_case({77, 97, 131, bias, p}, seed++);
}

TEST(InnerProduct, Combos) {
  uint32_t seed = 300;
  run_ip_case({77, 97, 131, true, "gelu_erf,sum"}, seed++);
  run_ip_case({77, 97, 131, true, "sum,relu"}, seed++);
  run_ip_case({3, 13, 97, false, "tanh,sum"}, seed++);
  run_ip_case({231, 64, 48, true, "relu,gelu_tanh"}, seed++);
}

TEST(InnerProduct, ResidualInPlace) {
  uint32_t seed = 400;
  run_ip_case({77, 97, 131, true, "sum"}, seed++, true);
  run_ip_case({128, 768, 768, true, "sum"}, seed++, true);
  run_ip_case({3, 13, 97, false, "gelu_erf,sum"}, seed++, true);
}

TEST(InnerProduct, BertShapes) {
  run_ip_case({128, 768, 768, true, ""}, 500);
  run_ip_case({77, 768, 3072, true, "gelu_erf"}, 501);
  run_ip_case({77, 3072, 768, true, "sum"}, 502);
}

// One op object, M changing between calls (cached primitives per M), leading dims flattened.
TEST(InnerProduct, VaryingMOnOneOp) {
  const int64_t K = 97, N = 131;
  const uint32_t seed = 600;
  SCOPED_TRACE("seed " + std::to_string(seed));
  Arg w{{K, N}, rnd(K * N, seed), true};
  Arg b{{N}, rnd(N, seed + 1), true};
  Arg dummy_src{{1, K}, {}};
  Arg dummy_res{{1, N}, {}};
  Runner r(info("InnerProduct", 4, {{"append_op", "gelu_erf,sum"}}));
  r.init({&dummy_src, &w, &b, &dummy_res});
  for (Shape lead : std::vector<Shape>{{3, 77}, {1}, {231}, {3, 77}, {2, 1, 5}, {1}}) {
    Shape ss = lead, ds = lead;
    ss.push_back(K), ds.push_back(N);
    const int64_t M = numel(lead);
    Arg src{ss, rnd(M * K, seed + 10 + M)};
    Arg res{ds, rnd(M * N, seed + 20 + M)};
    auto got = r.run({&src, &w, &b, &res});
    EXPECT_EQ(r.out.shape, ds);
    std::vector<double> ref, tol;
    ip_ref({M, K, N, true, "gelu_erf,sum"}, src.v, w.v, b.v, res.v, &ref, &tol);
    expect_close(got, ref, tol, "InnerProduct M=" + std::to_string(M));
  }
  EXPECT_NE(r.op->kernel().find("onednn:"), std::string::npos) << r.op->kernel();
  EXPECT_EQ(r.op->kernel().find("ref"), std::string::npos) << "oneDNN fell back to its reference: " << r.op->kernel();
}

// src of rank 1 ([K] -> [N]); reason() names the dense strategy (and why others declined).
TEST(InnerProduct, RankOneSrcAndReason) {
  const int64_t K = 97, N = 13;
  Arg src{{K}, rnd(K, 650)};
  Arg w{{K, N}, rnd(K * N, 651), true};
  Arg b{{N}, rnd(N, 652), true};
  Runner r(info("InnerProduct", 3, {{"append_op", "relu"}}));
  r.init({&src, &w, &b});
  auto got = r.run({&src, &w, &b});
  EXPECT_EQ(r.out.shape, (Shape{N}));
  std::vector<double> ref, tol;
  ip_ref({1, K, N, true, "relu"}, src.v, w.v, b.v, {}, &ref, &tol);
  expect_close(got, ref, tol, "InnerProduct rank-1 src");
  EXPECT_EQ(r.op->reason().rfind("dense", 0), 0u) << r.op->reason();
}

// A weight that is an activation (not a constant): no packing, still correct.
TEST(InnerProduct, NonConstWeight) {
  const int64_t M = 5, K = 13, N = 7;
  Arg src{{M, K}, rnd(M * K, 700)};
  Arg w{{K, N}, rnd(K * N, 701), false};
  Runner r(info("InnerProduct", 2, {}));
  r.init({&src, &w});
  auto got = r.run({&src, &w});
  std::vector<double> ref, tol;
  ip_ref({M, K, N, false, ""}, src.v, w.v, {}, {}, &ref, &tol);
  expect_close(got, ref, tol, "InnerProduct non-const weight");
}

TEST(InnerProduct, Errors) {
  Arg w{{13, 7}, rnd(13 * 7, 1), true};
  Arg src{{4, 12}, rnd(48, 2)};
  {
    Runner r(info("InnerProduct", 2, {}));
    r.init({&src, &w});
    try {
      r.run({&src, &w});
      FAIL() << "K mismatch not detected";
    } catch (const ne::Error& e) {
      const std::string m = e.what();
      EXPECT_NE(m.find("op_InnerProduct"), std::string::npos) << m;
      EXPECT_NE(m.find("13"), std::string::npos) << m;
    }
  }
  {  // unknown post-op, at construction
    EXPECT_THROW(ne::create_op(info("InnerProduct", 2, {{"append_op", "swish"}})), ne::Error);
  }
  {  // wrong input count: sum without residual (2 inputs)
    Runner r(info("InnerProduct", 2, {{"append_op", "sum"}}));
    EXPECT_THROW(r.init({&src, &w}), ne::Error);
  }
  {  // bias of the wrong size
    Arg b{{6}, rnd(6, 3), true};
    Runner r(info("InnerProduct", 3, {}));
    EXPECT_THROW(r.init({&src, &w, &b}), ne::Error);
  }
  {  // residual of the wrong shape
    Arg src2{{4, 13}, rnd(52, 4)};
    Arg res{{4, 6}, rnd(24, 5)};
    Runner r(info("InnerProduct", 3, {{"append_op", "sum"}}));
    r.init({&src2, &w, &res});
    EXPECT_THROW(r.run({&src2, &w, &res}), ne::Error);
  }
}

}  // namespace
