// The element-wise family (kernels/eltwise): every entry of each list that this CPU can run
// (eltwise_kernels.inc) against float64 references written here (libm double erfc / tanh / exp),
// on odd sizes (tails 1, 15, 17, 771, 3077, ...), in place and out of place, unaligned.
//
// Tolerances (u = 2^-24, the fp32 unit roundoff), from the conditioning of each function:
//  * gelu_erf(x) = 0.5 x erfc(-x/sqrt2): the argument t = x/sqrt2 is rounded (relative u, plus u
//    for the constant), and erfc's relative condition number is 2 t^2 for t -> -inf
//    (d ln erfc / dt = -2 t e^{-t^2}/(sqrt(pi) erfc) ~ 2|t|, times |t|). Kernel error: a few ulp
//    (fdlibm rational approximations; libm erfcf). Bound: |err| <= (16 + 8 t^2) u |ref| + 1e-37
//    (the absolute term: results in the fp32 subnormal range).
//  * gelu_tanh(x) = x / (1 + exp(-2y)), y = sqrt(2/pi)(x + 0.044715 x^3): y has relative error
//    <= 4u (4 roundings), exp(-2y)'s relative condition number is 2|y|. Bound:
//    (16 + 8|y|) u |ref| + 1e-37. (For x < -10.2 the true value is below 1e-38; the AVX-512 exp
//    clamps at 88.72, so its entry returns -0 there explicitly: x = -60, -3.4e38 check that.)
//  * softmax p_i = exp(x_i - m) / S: the subtraction errs by u|x_i - m|, exp by <= 2 ulp
//    (polynomial / libm), the sum S of n terms by <= n u S (sequential, any order), the scale by
//    u. Bound: (8 + |x_i - m| + n) u p_i + 1e-38 (masked entries, -inf, give exp underflow).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "kernels/cpu_features.hpp"
#include "kernels/eltwise/eltwise.hpp"
#include "tests/kernels/ukernel_test_util.hpp"

namespace {

namespace ke = ne::kernels::eltwise;
using ne_test::odd_sizes;
constexpr double kU = 1.0 / 16777216.0;  // 2^-24

std::vector<float> values(int64_t n, uint32_t seed, float lo, float hi) {
  std::mt19937 g(seed);
  std::uniform_real_distribution<float> u(lo, hi);
  std::vector<float> v(size_t(n) + 1);
  for (auto& x : v) x = u(g);
  return v;
}

TEST(EltwiseKernels, Dispatch) {
  ne_test::expect_dispatch(ke::gelu_erf_kernels());
  ne_test::expect_dispatch(ke::gelu_tanh_kernels());
  ne_test::expect_dispatch(ke::softmax_kernels());
}

// f(x) -> (reference, tolerance) in double.
template <class Ref>
void check_unary(const ne::kernels::UkernelList<ke::unary_fn>& list, Ref ref) {
  const auto ran = ne_test::for_each_runnable(list, [&](const auto& k) {
    for (int64_t n : odd_sizes())
      for (int mode = 0; mode < 3; ++mode) {  // 0: out of place, 1: in place, 2: unaligned src and dst
        const uint32_t seed = uint32_t(4000 + n * 3 + mode);
        SCOPED_TRACE("n " + std::to_string(n) + " mode " + std::to_string(mode) + " seed " + std::to_string(seed));
        std::vector<float> v = values(n, seed, -9.f, 9.f);
        const float specials[] = {0.f, -0.f, 1e-30f, -1e-30f, 20.f, -20.f, 60.f, -60.f, 3.4e38f, -3.4e38f, -1e-3f, 5.5f};
        for (int64_t i = 0; i < n; i += 5) v[size_t(i)] = specials[size_t(i / 5) % 12];
        const float* x = v.data() + (mode == 2);
        std::vector<float> src(x, x + n);
        std::vector<float> out(size_t(n) + 2, 7.f);
        float* y = mode == 1 ? v.data() : out.data() + (mode == 2);
        k.fn(x, y, n);
        int bad = 0;
        for (int64_t i = 0; i < n && bad < 5; ++i) {
          double want, tol;
          ref(double(src[size_t(i)]), &want, &tol);
          const double got = y[i];
          if (!(std::fabs(got - want) <= tol))
            ++bad, ADD_FAILURE() << "i " << i << " x " << src[size_t(i)] << " got " << got << " want " << want
                                 << " tol " << tol;
        }
        if (mode == 0) {
          EXPECT_EQ(out[size_t(n)], 7.f) << "wrote past n";
        }
      }
  });
  EXPECT_FALSE(ran.empty());
}

TEST(EltwiseKernels, GeluErf) {
  check_unary(ke::gelu_erf_kernels(), [](double x, double* want, double* tol) {
    const double t = x * 0.70710678118654752;
    *want = 0.5 * x * std::erfc(-t);
    *tol = (16 + 8 * t * t) * kU * std::fabs(*want) + 1e-37;
  });
}

TEST(EltwiseKernels, GeluTanh) {
  check_unary(ke::gelu_tanh_kernels(), [](double x, double* want, double* tol) {
    const double y = 0.7978845608028654 * (x + 0.044715 * x * x * x);
    *want = x / (1 + std::exp(-2 * y));  // = 0.5 x (1 + tanh y), without its cancellation for y << 0
    *tol = (16 + 8 * std::fabs(y)) * kU * std::fabs(*want) + 1e-37;
  });
}

TEST(EltwiseKernels, Softmax) {
  const auto ran = ne_test::for_each_runnable(ke::softmax_kernels(), [](const auto& k) {
    for (int64_t n : odd_sizes())
      for (int64_t rows : {1, 3})
        for (int inplace = 0; inplace < 2; ++inplace) {
          const uint32_t seed = uint32_t(5000 + n * 4 + rows * 2 + inplace);
          SCOPED_TRACE("n " + std::to_string(n) + " rows " + std::to_string(rows) + (inplace ? " in place" : "") +
                       " seed " + std::to_string(seed));
          std::vector<float> x = values(n * rows, seed, -10.f, 10.f);
          if (n > 4)
            for (int64_t r = 0; r < rows; ++r) x[size_t(r * n + 3)] = -INFINITY, x[size_t(r * n + 1)] = -10000.f;
          const std::vector<float> src = x;
          std::vector<float> out(size_t(n * rows) + 1, 7.f);
          float* y = inplace ? x.data() : out.data();
          k.fn(x.data(), y, rows, n);
          int bad = 0;
          for (int64_t r = 0; r < rows; ++r) {
            const float* s = src.data() + r * n;
            double m = -INFINITY, sum = 0;
            for (int64_t i = 0; i < n; ++i) m = std::max(m, double(s[i]));
            for (int64_t i = 0; i < n; ++i) sum += std::exp(double(s[i]) - m);
            for (int64_t i = 0; i < n && bad < 5; ++i) {
              const double want = std::exp(double(s[i]) - m) / sum;
              const double tol =
                  std::isinf(s[i]) ? 1e-38 : (8 + std::fabs(double(s[i]) - m) + double(n)) * kU * want + 1e-38;
              const double got = y[r * n + i];
              if (!(std::fabs(got - want) <= tol))
                ++bad, ADD_FAILURE() << "row " << r << " i " << i << " got " << got << " want " << want << " tol " << tol;
            }
          }
          if (!inplace) {
            EXPECT_EQ(out[size_t(n * rows)], 7.f) << "wrote past the rows";
          }
        }
  });
  EXPECT_FALSE(ran.empty());
}

}  // namespace
