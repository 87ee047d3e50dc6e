// The small-GEMM family (kernels/small_gemm): every entry of each list that this CPU can run
// (small_gemm_kernels.inc) against a float64 reference written here, on awkward sizes (M across
// the 6-row blocks and their tails 1..5, N across the 64-column tiles and 16-column tails, K odd
// for the bf16 pairs), both B layouts (rows: V; columns: Kᵀ), leading dimensions larger than the
// rows, all four mask forms, and a check that nothing outside C's M x N block is written.
//
// Tolerance (u = 2^-24): an fp32 sum of K products errs by at most K u Σ|a b| (any order); the
// alpha scaling and the mask add u (|alpha acc| + |C|). bf16: A and B are rounded to bf16 by the
// reference too (its own bit arithmetic, nearest even), their products are exact in fp32 (8-bit
// significands), so the same bound holds (vdpbf16ps: one rounding per pair). Factor 2 for safety:
//   |err| <= 2 ((K + 2) u |alpha| Σ_k |a_k b_k| + u |C|).
// Transpose: exact.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kernels/cpu_features.hpp"
#include "kernels/small_gemm/small_gemm.hpp"
#include "tests/kernels/ukernel_test_util.hpp"

namespace {

namespace ks = ne::kernels::small_gemm;
constexpr double kU = 1.0 / 16777216.0;  // 2^-24

double bf16_value(float f) {  // nearest even, finite f
  uint32_t u;
  std::memcpy(&u, &f, 4);
  const uint32_t lo = u & 0xffff0000u, rest = u & 0xffffu;
  uint32_t r = lo;
  if (rest > 0x8000u || (rest == 0x8000u && (lo & 0x10000u))) r = lo + 0x10000u;
  float v;
  std::memcpy(&v, &r, 4);
  return v;
}

struct Shape {
  int64_t M, N, K;
};
const std::vector<Shape>& shapes() {
  static const std::vector<Shape> s = {{1, 1, 1},    {1, 17, 3},   {5, 15, 16},  {6, 16, 17},  {7, 64, 64},
                                       {11, 65, 2},  {13, 33, 63}, {6, 130, 31}, {2, 48, 129}, {128, 128, 64},
                                       {128, 64, 128}, {3, 200, 5}, {12, 1, 40}};
  return s;
}

void check_gemm(const ks::gemm_fn* fn, bool bf16, int64_t scratch_bytes_for(int64_t, int64_t, int64_t)) {
  int cases = 0;
  for (const Shape& s : shapes())
    for (int cols = 0; cols < 2; ++cols)        // B as rows (b_cs 1) or as columns (b_rs 1)
      for (int mk = 0; mk < 4; ++mk) {          // mask: none, per row (m_cs 0), per column, full
        const uint32_t seed = uint32_t(9000 + cases++);
        SCOPED_TRACE("M " + std::to_string(s.M) + " N " + std::to_string(s.N) + " K " + std::to_string(s.K) +
                     (cols ? " B columns" : " B rows") + " mask " + std::to_string(mk) + " seed " +
                     std::to_string(seed));
        std::mt19937 g(seed);
        std::uniform_real_distribution<float> u(-1.f, 1.f);
        const int64_t lda = s.K + 3, ldc = s.N + 5;
        const int64_t b_rs = cols ? 1 : s.N + 2, b_cs = cols ? s.K + 1 : 1;
        std::vector<float> A(size_t(s.M * lda)), B(size_t(cols ? s.N * b_cs : s.K * b_rs));
        for (auto& v : A) v = u(g);
        for (auto& v : B) v = u(g);
        const int64_t m_rs = mk == 1 ? 1 : mk == 3 ? s.N : 0, m_cs = mk >= 2 ? 1 : 0;
        std::vector<float> mask(size_t(std::max<int64_t>(1, mk == 1 ? s.M : mk == 2 ? s.N : s.M * s.N)));
        for (auto& v : mask) v = 4 * u(g);
        std::vector<float> C(size_t(s.M * ldc), 7.f);
        std::vector<uint8_t> scratch(size_t(scratch_bytes_for(s.M, s.N, s.K)) + 4);
        const float alpha = 0.375f;
        fn(s.M, s.N, s.K, alpha, A.data(), lda, B.data(), b_rs, b_cs, C.data(), ldc, mk ? mask.data() : nullptr, m_rs,
           m_cs, scratch.data() + 4);  // + 4: not 64-byte aligned
        int bad = 0;
        for (int64_t m = 0; m < s.M && bad < 5; ++m)
          for (int64_t n = 0; n < ldc && bad < 5; ++n) {
            const float got = C[size_t(m * ldc + n)];
            if (n >= s.N) {
              if (got != 7.f) ++bad, ADD_FAILURE() << "wrote C[" << m << "][" << n << "] past N";
              continue;
            }
            double acc = 0, mag = 0;
            for (int64_t k = 0; k < s.K; ++k) {
              double a = A[size_t(m * lda + k)], b = B[size_t(k * b_rs + n * b_cs)];
              if (bf16) a = bf16_value(float(a)), b = bf16_value(float(b));
              acc += a * b, mag += std::fabs(a * b);
            }
            double want = alpha * acc;
            if (mk) want += mask[size_t(m * m_rs + n * m_cs)];
            const double tol = 2 * ((s.K + 2) * kU * alpha * mag + kU * std::fabs(want));
            if (!(std::fabs(got - want) <= tol))
              ++bad, ADD_FAILURE() << "C[" << m << "][" << n << "] got " << got << " want " << want << " tol " << tol;
          }
      }
}

TEST(SmallGemmKernels, Dispatch) {
  ne_test::expect_dispatch(ks::f32_kernels());
  ne_test::expect_dispatch(ks::bf16_kernels());
  ne_test::expect_dispatch(ks::transpose_kernels());
}

TEST(SmallGemmKernels, F32) {
  const auto ran = ne_test::for_each_runnable(ks::f32_kernels(), [](const auto& k) {
    check_gemm(k.fn, false, ks::f32_scratch_bytes);
  });
  EXPECT_FALSE(ran.empty());
}

TEST(SmallGemmKernels, Bf16) {
  const auto ran = ne_test::for_each_runnable(ks::bf16_kernels(), [](const auto& k) {
    check_gemm(k.fn, true, ks::bf16_scratch_bytes);
  });
  EXPECT_FALSE(ran.empty());
}

TEST(SmallGemmKernels, Transpose) {
  const auto ran = ne_test::for_each_runnable(ks::transpose_kernels(), [](const auto& k) {
    for (int64_t rows : {1, 15, 16, 17, 33, 130})
      for (int64_t cols : {1, 3, 16, 31, 64, 65}) {
        SCOPED_TRACE("rows " + std::to_string(rows) + " cols " + std::to_string(cols));
        const int64_t lds = cols + 2, ldd = rows + 3;
        std::vector<float> src(size_t(rows * lds)), dst(size_t(cols * ldd), 7.f);
        for (size_t i = 0; i < src.size(); ++i) src[i] = float(i) * 0.5f - 3.f;
        k.fn(src.data(), lds, rows, cols, dst.data(), ldd);
        int bad = 0;
        for (int64_t c = 0; c < cols && bad < 5; ++c)
          for (int64_t r = 0; r < ldd && bad < 5; ++r) {
            const float want = r < rows ? src[size_t(r * lds + c)] : 7.f;
            if (dst[size_t(c * ldd + r)] != want)
              ++bad, ADD_FAILURE() << "dst[" << c << "][" << r << "] got " << dst[size_t(c * ldd + r)] << " want " << want;
          }
      }
  });
  EXPECT_FALSE(ran.empty());
}

}  // namespace
