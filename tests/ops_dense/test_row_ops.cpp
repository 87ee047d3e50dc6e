// Softmax, LayerNorm, Gelu (AVX-512 and portable kernels) against a double reference, and the
// row kernels each ISA tier selects. Tolerances and seeds: dense_test_util.hpp.
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
#include "executor/ops/dense_common.hpp"
#include "executor/ops/quant_common.hpp"
#include "kernels/cpu_features.hpp"

using namespace dense_ops_test;

namespace {

// Every test below runs with the AVX-512 kernels (when the CPU has them) and with the portable
// ones forced.
class RowOps : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override { ne::dense::force_portable(GetParam()); }
  void TearDown() override { ne::dense::force_portable(false); }
};
INSTANTIATE_TEST_SUITE_P(Isa, RowOps, ::testing::Values(false, true),
                         [](const auto& i) { return i.param ? "portable" : "native"; });

void run_softmax(const Shape& s, int64_t axis, uint32_t seed, float lo = -8.f, float hi = 8.f) {
  SCOPED_TRACE("seed " + std::to_string(seed) + " shape " + ne::shape_str(s) + " axis " + std::to_string(axis));
  Arg x{s, rnd(numel(s), seed, lo, hi)};
  Runner r(info("Softmax", 1, {{"axis", std::to_string(axis)}}));
  r.init({&x});
  auto got = r.run({&x});
  const int a = int(axis < 0 ? axis + int(s.size()) : axis);
  int64_t outer = 1, len = s[a], inner = 1;
  for (int i = 0; i < a; ++i) outer *= s[i];
  for (size_t i = a + 1; i < s.size(); ++i) inner *= s[i];
  std::vector<double> ref(numel(s)), tol(numel(s));
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i) {
      double mx = -1e300, sum = 0;
      for (int64_t l = 0; l < len; ++l) mx = std::max(mx, double(x.v[(o * len + l) * inner + i]));
      for (int64_t l = 0; l < len; ++l) sum += std::exp(double(x.v[(o * len + l) * inner + i]) - mx);
      for (int64_t l = 0; l < len; ++l) {
        const int64_t k = (o * len + l) * inner + i;
        ref[k] = std::exp(double(x.v[k]) - mx) / sum;
        // exp argument x-max is rounded (|x-max| * u), exp itself a few ulp, sum of len terms.
        tol[k] = ref[k] * (1e-6 + 2 * kU * (std::fabs(x.v[k]) + std::fabs(mx)) + std::sqrt(double(len)) * 2 * kU) + 1e-9;
      }
    }
  expect_close(got, ref, tol, "Softmax");
  // In place.
  Arg y = x;
  auto got2 = r.run({&y}, 0);
  expect_close(got2, ref, tol, "Softmax in place");
}

TEST_P(RowOps, Softmax) {
  run_softmax({3, 77}, -1, 1);
  run_softmax({2, 12, 77, 77}, -1, 2);
  run_softmax({5, 1}, -1, 3);
  run_softmax({4, 16}, -1, 4);
  run_softmax({7, 33}, 1, 5, -100.f, 80.f);
  run_softmax({3, 5, 7}, 1, 6);   // strided axis
  run_softmax({3, 5, 7}, 0, 7);
  run_softmax({2, 128}, -1, 8, -200.f, 0.f);  // exp underflow in the tail
}

TEST_P(RowOps, SoftmaxMinusInfMask) {
  Arg x{{2, 19}, rnd(38, 9)};
  for (int i = 0; i < 19; i += 2) x.v[i] = -INFINITY;  // masked positions
  Runner r(info("Softmax", 1, {}));
  r.init({&x});
  auto got = r.run({&x});
  double sum = 0;
  for (int i = 0; i < 19; ++i) {
    if (i % 2 == 0) {
      EXPECT_EQ(got[i], 0.f) << i;
    }
    sum += got[i];
  }
  EXPECT_NEAR(sum, 1.0, 1e-6);
}

void run_layernorm(const Shape& s, int64_t axis, const Shape& gs, bool beta, uint32_t seed) {
  SCOPED_TRACE("seed " + std::to_string(seed) + " shape " + ne::shape_str(s) + " axis " + std::to_string(axis));
  const float eps = 1e-5f;
  Arg x{s, rnd(numel(s), seed, -2.f, 3.f)};
  Arg g{gs, rnd(numel(gs), seed + 1, 0.5f, 1.5f), true};
  Arg b{gs, rnd(numel(gs), seed + 2), true};
  std::vector<Arg*> args{&x, &g};
  if (beta) args.push_back(&b);
  Runner r(info("LayerNorm", int(args.size()), {{"axis", std::to_string(axis)}, {"epsilon", "1e-05"}}));
  r.init(args);
  auto got = r.run(args);
  const int a = int(axis < 0 ? axis + int(s.size()) : axis);
  const Shape tail(s.begin() + a, s.end());
  const int64_t n = numel(tail), rows = numel(s) / n;
  std::vector<double> ref(numel(s)), tol(numel(s));
  auto gst = strides_of(gs);
  auto bidx = [&](int64_t i) {  // index into gamma/beta broadcast over tail
    auto ts = strides_of(tail);
    int64_t off = 0;
    for (size_t d = 0; d < tail.size(); ++d) {
      int64_t id = (i / ts[d]) % tail[d];
      int j = int(d) - int(tail.size() - gs.size());
      if (j >= 0 && gs[j] != 1) off += id * gst[j];
    }
    return off;
  };
  for (int64_t r0 = 0; r0 < rows; ++r0) {
    double mean = 0, var = 0;
    for (int64_t i = 0; i < n; ++i) mean += x.v[r0 * n + i];
    mean /= n;
    for (int64_t i = 0; i < n; ++i) var += (x.v[r0 * n + i] - mean) * (x.v[r0 * n + i] - mean);
    var /= n;
    const double rstd = 1 / std::sqrt(var + eps);
    for (int64_t i = 0; i < n; ++i) {
      const int64_t k = r0 * n + i, gi = bidx(i);
      const double z = (x.v[k] - mean) * rstd;
      ref[k] = z * g.v[gi] + (beta ? b.v[gi] : 0);
      tol[k] = 1e-5 * (std::fabs(g.v[gi]) * (std::fabs(z) + 1) + 1);
    }
  }
  expect_close(got, ref, tol, "LayerNorm");
  Arg y = x;
  std::vector<Arg*> args2 = args;
  args2[0] = &y;
  auto got2 = r.run(args2, 0);
  expect_close(got2, ref, tol, "LayerNorm in place");
}

TEST_P(RowOps, LayerNorm) {
  run_layernorm({3, 77, 768}, -1, {768}, true, 1);
  run_layernorm({5, 13}, -1, {13}, false, 2);
  run_layernorm({7, 1}, -1, {1}, true, 3);
  run_layernorm({2, 3, 5, 7}, 2, {5, 7}, true, 4);   // general axis
  run_layernorm({2, 3, 5, 7}, -2, {7}, true, 5);     // gamma broadcast over the tail
  run_layernorm({4, 33}, 0, {4, 33}, true, 6);
}

TEST(LayerNorm, Errors) {
  Arg x{{3, 8}, rnd(24, 1)}, g{{7}, rnd(7, 2), true};
  Runner r(info("LayerNorm", 2, {}));
  r.init({&x, &g});
  EXPECT_THROW(r.run({&x, &g}), ne::Error);
}

void run_gelu(const std::string& alg, const std::vector<float>& xs, uint32_t seed) {
  SCOPED_TRACE(alg + " seed " + std::to_string(seed));
  Arg x{{int64_t(xs.size())}, xs};
  Runner r(info("Gelu", 1, {{"algorithm", alg}}));
  r.init({&x});
  auto got = r.run({&x});
  std::vector<double> ref(xs.size()), tol(xs.size());
  for (size_t i = 0; i < xs.size(); ++i) {
    ref[i] = ref_post(alg, xs[i]);
    // Relative 1e-6 of the result (the erf/exp error, a few ulp); the argument x/sqrt(2) is
    // rounded (0.5 ulp) which moves the result by |x·g'(x)|·u, at most ~|x|·u·(1+x^2); tiny abs.
    tol[i] = 1e-6 * std::fabs(ref[i]) + 2 * kU * std::fabs(xs[i]) * (1 + xs[i] * xs[i]) *
                 std::exp(-0.5 * xs[i] * xs[i]) + 1e-30;
  }
  expect_close(got, ref, tol, "Gelu " + alg);
}

TEST_P(RowOps, GeluErfAccurate) {
  std::vector<float> xs;
  for (float v = -12.f; v <= 12.f; v += 0.00123f) xs.push_back(v);  // every erf region, both signs
  for (float v : {0.f, -0.f, 1e-30f, -1e-30f, 1e-8f, 0.84375f * 1.41421356f, 1.25f * 1.41421356f,
                  2.857142925f * 1.41421356f, 6.f * 1.41421356f, 30.f, -30.f})
    xs.push_back(v);
  run_gelu("gelu_erf", xs, 0);
  auto r = rnd(1003, 77, -6.f, 6.f);
  run_gelu("gelu_erf", r, 77);
}

TEST_P(RowOps, GeluTanh) {
  std::vector<float> xs;
  for (float v = -12.f; v <= 12.f; v += 0.0071f) xs.push_back(v);
  run_gelu("gelu_tanh", xs, 0);
}

TEST(Gelu, UnknownAlgorithm) {
  EXPECT_THROW(ne::create_op(info("Gelu", 1, {{"algorithm", "swish"}})), ne::Error);
}

// The fast path must really run on a CPU that has AVX-512 (no silent fallback).
// The row kernels take AVX-512 exactly when ne::cpu allows avx512_core (CPUID + XCR0, under
// NE_MAX_ISA), the portable ones otherwise: each tier checks its own side.
TEST(DenseOps, FastPathSelected) {
  const bool avx512 = ne::cpu::mayiuse(ne::cpu::Isa::avx512_core);
  EXPECT_EQ(ne::dense::use_avx512(), avx512) << ne::cpu::why_not(ne::cpu::Isa::avx512_core);
  const std::string isa = avx512 ? "avx512" : "portable";
  EXPECT_EQ(ne::create_op(info("Softmax", 1, {}))->kernel(), "softmax:" + isa);
  EXPECT_EQ(ne::create_op(info("Gelu", 1, {}))->kernel(), "gelu_erf:" + isa);
}

// The operators run the entries of the kernels/ lists (kernels/eltwise, kernels/layernorm,
// kernels/quant): the __avx512 ones exactly when use_avx512(), the __generic ones otherwise and
// whenever a test forces the portable path.
TEST(DenseOps, RowKernelEntriesFollowTheTier) {
  const std::string want = ne::dense::use_avx512() ? "__avx512" : "__generic";
  auto ends = [](const std::string& s, const std::string& t) {
    return s.size() >= t.size() && s.compare(s.size() - t.size(), t.size(), t) == 0;
  };
  for (bool forced : {false, true}) {
    ne::dense::force_portable(forced);
    ne::quant::force_portable(forced);
    const std::string w = forced ? "__generic" : want;
    EXPECT_PRED2(ends, ne::dense::pick(ne::kernels::eltwise::softmax_kernels()).name, w);
    EXPECT_PRED2(ends, ne::dense::pick(ne::kernels::eltwise::gelu_erf_kernels()).name, w);
    EXPECT_PRED2(ends, ne::dense::pick(ne::kernels::layernorm::rows_kernels()).name, w);
    EXPECT_PRED2(ends, ne::dense::pick(ne::kernels::layernorm::cols_kernels()).name, w);
    EXPECT_PRED2(ends, ne::quant::minmax_kernel().name, w);
    EXPECT_PRED2(ends, ne::quant::quantize_kernel().name, w);
    EXPECT_PRED2(ends, ne::quant::to_bf16_kernel().name, w);
  }
  ne::dense::force_portable(false);
  ne::quant::force_portable(false);
}

}  // namespace
