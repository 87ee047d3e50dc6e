// The LayerNorm family (kernels/layernorm): every entry of each list that this CPU can run
// (layernorm_kernels.inc) against a float64 reference written here: token-major rows, and
// feature-major columns ("layernorm_ba") whole and as their two halves (stats over a range of
// rows, then apply), on odd sizes (row lengths 1, 15, 17, 771, 3077, ...; column ranges that
// start and end inside a vector), with and without beta, in place.
//
// Tolerance (u = 2^-24): the fp32 kernels sum n values for the mean (error <= n u mean|x|, any
// order, Welford's update included), then the centred squares (relative error <= (n + 4) u of
// the variance, so <= (n + 4) u / 2 of rstd), then y = (x - mean) rstd g + b (4 roundings). With
// xhat = (x - mean) rstd:
//   |err| <= 2 (n + 16) u |g| (|xhat| + rstd mean|x|) + 2 u |b|      (factor 2 for safety).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "kernels/cpu_features.hpp"
#include "kernels/layernorm/layernorm.hpp"
#include "tests/kernels/ukernel_test_util.hpp"

namespace {

namespace kln = ne::kernels::layernorm;
constexpr double kU = 1.0 / 16777216.0;  // 2^-24
constexpr float kEps = 1e-5f;

std::vector<float> values(int64_t n, uint32_t seed, float lo, float hi) {
  std::mt19937 g(seed);
  std::uniform_real_distribution<float> u(lo, hi);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = u(g);
  return v;
}

// One normalisation group: values x[i * stride], i < n, with gamma[i] / beta[i] indexed by
// `per_elem` (rows: per element; cols: per row, i.e. also i). Checks y against the reference.
struct Group {
  double mean = 0, rstd = 0, mean_abs = 0;
};
Group ref_group(const float* x, int64_t n, int64_t stride) {
  Group g;
  for (int64_t i = 0; i < n; ++i) g.mean += x[i * stride], g.mean_abs += std::fabs(double(x[i * stride]));
  g.mean /= double(n);
  g.mean_abs /= double(n);
  double v = 0;
  for (int64_t i = 0; i < n; ++i) v += (x[i * stride] - g.mean) * (x[i * stride] - g.mean);
  g.rstd = 1.0 / std::sqrt(v / double(n) + double(kEps));
  return g;
}
// Returns true when y[i] is within the stated bound.
bool close(const Group& g, int64_t n, float x, float gamma, const float* beta, int64_t i, float y, double* want,
           double* tol) {
  const double xhat = (x - g.mean) * g.rstd;
  const double b = beta ? beta[i] : 0.0;
  *want = xhat * gamma + b;
  *tol = 2 * double(n + 16) * kU * std::fabs(gamma) * (std::fabs(xhat) + g.rstd * g.mean_abs) + 2 * kU * std::fabs(b);
  return std::fabs(double(y) - *want) <= *tol;
}

TEST(LayerNormKernels, Dispatch) {
  ne_test::expect_dispatch(kln::rows_kernels());
  ne_test::expect_dispatch(kln::cols_kernels());
  ne_test::expect_dispatch(kln::cols_stats_kernels());
  ne_test::expect_dispatch(kln::cols_apply_kernels());
}

TEST(LayerNormKernels, Rows) {
  const auto ran = ne_test::for_each_runnable(kln::rows_kernels(), [](const auto& k) {
    for (int64_t n : ne_test::odd_sizes())
      for (int64_t rows : {1, 3})
        for (int variant = 0; variant < 3; ++variant) {  // 0: beta, out of place; 1: no beta; 2: in place
          const uint32_t seed = uint32_t(6000 + n * 8 + rows * 3 + variant);
          SCOPED_TRACE("n " + std::to_string(n) + " rows " + std::to_string(rows) + " variant " +
                       std::to_string(variant) + " seed " + std::to_string(seed));
          std::vector<float> x = values(n * rows, seed, 1.f, 5.f);  // offset mean: the two-pass form matters
          const std::vector<float> gamma = values(n, seed + 1, -2.f, 2.f), beta = values(n, seed + 2, -1.f, 1.f);
          const std::vector<float> src = x;
          std::vector<float> out(size_t(n * rows) + 1, 7.f);
          float* y = variant == 2 ? x.data() : out.data();
          const float* bp = variant == 1 ? nullptr : beta.data();
          k.fn(x.data(), y, rows, n, gamma.data(), bp, kEps);
          int bad = 0;
          for (int64_t r = 0; r < rows; ++r) {
            const Group g = ref_group(src.data() + r * n, n, 1);
            for (int64_t i = 0; i < n && bad < 5; ++i) {
              double want, tol;
              if (!close(g, n, src[size_t(r * n + i)], gamma[size_t(i)], bp, i, y[r * n + i], &want, &tol))
                ++bad, ADD_FAILURE() << "row " << r << " i " << i << " got " << y[r * n + i] << " want " << want
                                     << " tol " << tol;
            }
          }
          if (variant != 2) {
            EXPECT_EQ(out[size_t(n * rows)], 7.f) << "wrote past the rows";
          }
        }
  });
  EXPECT_FALSE(ran.empty());
}

// Feature-major shapes: n rows (the normalised dim) x cols, column ranges [c0, c1).
struct ColsCase {
  int64_t n, cols, c0, c1;
};
const std::vector<ColsCase>& cols_cases() {
  static const std::vector<ColsCase> c = {{1, 1, 0, 1},      {2, 15, 0, 15},    {17, 17, 0, 17},  {17, 17, 1, 16},
                                          {128, 129, 0, 129}, {128, 300, 3, 299}, {771, 33, 0, 33}, {5, 200, 64, 200},
                                          {64, 1, 0, 1}};
  return c;
}

// Checks dst's columns [c0, c1) and rows [r0, r1) against the reference over those rows, and that
// nothing else of dst changed (it started as 7).
void check_cols(const std::vector<float>& src, const std::vector<float>& dst, const std::vector<float>& gamma,
                const float* beta, const ColsCase& c, int64_t r0, int64_t r1) {
  int bad = 0;
  for (int64_t j = 0; j < c.cols && bad < 5; ++j) {
    const bool in = j >= c.c0 && j < c.c1;
    const Group g = in ? ref_group(src.data() + r0 * c.cols + j, r1 - r0, c.cols) : Group{};
    for (int64_t i = 0; i < c.n && bad < 5; ++i) {
      const float y = dst[size_t(i * c.cols + j)];
      if (!in || i < r0 || i >= r1) {
        if (y != 7.f) ++bad, ADD_FAILURE() << "wrote outside the range: row " << i << " col " << j;
        continue;
      }
      double want, tol;
      if (!close(g, r1 - r0, src[size_t(i * c.cols + j)], gamma[size_t(i)], beta, i, y, &want, &tol))
        ++bad, ADD_FAILURE() << "row " << i << " col " << j << " got " << y << " want " << want << " tol " << tol;
    }
  }
}

TEST(LayerNormKernels, Cols) {
  const auto ran = ne_test::for_each_runnable(kln::cols_kernels(), [](const auto& k) {
    for (const ColsCase& c : cols_cases())
      for (int with_beta = 0; with_beta < 2; ++with_beta) {
        const uint32_t seed = uint32_t(7000 + c.n * 7 + c.cols * 3 + c.c0 + with_beta);
        SCOPED_TRACE("n " + std::to_string(c.n) + " cols " + std::to_string(c.cols) + " [" + std::to_string(c.c0) +
                     ", " + std::to_string(c.c1) + ") seed " + std::to_string(seed));
        const std::vector<float> x = values(c.n * c.cols, seed, -1.f, 7.f);
        const std::vector<float> gamma = values(c.n, seed + 1, -2.f, 2.f), beta = values(c.n, seed + 2, -1.f, 1.f);
        std::vector<float> y(x.size(), 7.f);
        const float* bp = with_beta ? beta.data() : nullptr;
        k.fn(x.data(), y.data(), c.n, c.cols, c.c0, c.c1, gamma.data(), bp, kEps);
        check_cols(x, y, gamma, bp, c, 0, c.n);
      }
  });
  EXPECT_FALSE(ran.empty());
}

// The two halves, entry by entry (stats and apply of the same ISA), over a sub-range of rows.
TEST(LayerNormKernels, ColsStatsApply) {
  const auto& stats = kln::cols_stats_kernels();
  const auto ran = ne_test::for_each_runnable(kln::cols_apply_kernels(), [&](const auto& k) {
    const auto* s = stats.find(std::string(k.name).replace(std::string(k.name).find("_apply"), 6, "_stats"));
    ASSERT_NE(s, nullptr) << "no stats entry for " << k.name;
    ASSERT_TRUE(s->runnable());
    for (const ColsCase& c : cols_cases())
      for (int sub = 0; sub < 2; ++sub) {
        const int64_t r0 = sub && c.n > 4 ? 1 : 0, r1 = sub && c.n > 4 ? c.n - 2 : c.n;
        const uint32_t seed = uint32_t(8000 + c.n * 7 + c.cols * 3 + c.c0 + sub);
        SCOPED_TRACE(std::string(s->name) + " n " + std::to_string(c.n) + " rows [" + std::to_string(r0) + ", " +
                     std::to_string(r1) + ") cols " + std::to_string(c.cols) + " [" + std::to_string(c.c0) + ", " +
                     std::to_string(c.c1) + ") seed " + std::to_string(seed));
        const std::vector<float> x = values(c.n * c.cols, seed, -1.f, 7.f);
        const std::vector<float> gamma = values(c.n, seed + 1, -2.f, 2.f), beta = values(c.n, seed + 2, -1.f, 1.f);
        const int64_t w = c.c1 - c.c0;
        std::vector<float> mean(size_t(w) + 1, 7.f), m2(size_t(w) + 1, 7.f);
        s->fn(x.data(), c.cols, r0, r1, c.c0, c.c1, mean.data(), m2.data());
        EXPECT_EQ(mean[size_t(w)], 7.f);
        EXPECT_EQ(m2[size_t(w)], 7.f);
        std::vector<float> rstd(static_cast<size_t>(w));
        for (int64_t j = 0; j < w; ++j) rstd[size_t(j)] = 1.f / std::sqrt(m2[size_t(j)] / float(r1 - r0) + kEps);
        std::vector<float> y(x.size(), 7.f);
        k.fn(x.data(), y.data(), c.cols, r0, r1, c.c0, c.c1, mean.data(), rstd.data(), gamma.data(), beta.data());
        check_cols(x, y, gamma, beta.data(), c, r0, r1);
      }
  });
  EXPECT_FALSE(ran.empty());
}

}  // namespace
