// The quantization family (kernels/quant): every entry of each list that this CPU can run
// (quant_kernels.inc) against a reference written here in float64 / integer arithmetic, on odd
// sizes (tails 1, 15, 17, 771, 3077, ...), unaligned pointers and special values.
//
// Tolerances: none. All three ops have one exact answer:
//  * minmax: the min and max of the non-NaN values (exact comparisons).
//  * quantize: sat(nearbyint(fl32(x / scale)) + zp). fl32(x / scale) is the correctly rounded fp32
//    quotient; the reference forms it as float(double(x) / double(scale)), which is correctly
//    rounded too (a double quotient rounded to float: 53 >= 2·24 + 2, no double-rounding error).
//    The AVX-512 entry multiplies by 1/scale and must redo the division near half steps, so the
//    values include exact half steps k + 0.5 and their fp32 neighbours.
//  * to_bf16: the nearest bf16 (ties to even), found by comparing distances in double to the two
//    bf16 neighbours; above the largest bf16 the upper neighbour is 2^128 (-> inf). NaN -> a NaN
//    of the same sign with the quiet bit set.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "kernels/cpu_features.hpp"
#include "kernels/quant/quant.hpp"
#include "tests/kernels/ukernel_test_util.hpp"

namespace {

namespace kq = ne::kernels::quant;
using ne_test::odd_sizes;

float from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

std::vector<float> random_values(int64_t n, uint32_t seed, float lo, float hi) {
  std::mt19937 g(seed);
  std::uniform_real_distribution<float> u(lo, hi);
  std::vector<float> v(size_t(n) + 1);  // +1: the tests also run at offset 1 (unaligned)
  for (auto& x : v) x = u(g);
  return v;
}

TEST(QuantKernels, Dispatch) {
  ne_test::expect_dispatch(kq::minmax_kernels());
  ne_test::expect_dispatch(kq::quantize_kernels());
  ne_test::expect_dispatch(kq::to_bf16_kernels());
}

TEST(QuantKernels, MinMax) {
  const auto ran = ne_test::for_each_runnable(kq::minmax_kernels(), [](const auto& k) {
    for (int64_t n : odd_sizes())
      for (int off = 0; off < 2; ++off)
        for (int nan = 0; nan < 2; ++nan) {
          const uint32_t seed = uint32_t(1000 + n * 4 + off * 2 + nan);
          SCOPED_TRACE("n " + std::to_string(n) + " offset " + std::to_string(off) + " seed " + std::to_string(seed));
          std::vector<float> v = random_values(n, seed, -3.f, 5.f);
          float* x = v.data() + off;
          if (nan && n > 1)
            for (int64_t i = 0; i < n; i += 7) x[i] = std::numeric_limits<float>::quiet_NaN();
          double mn = INFINITY, mx = -INFINITY;
          for (int64_t i = 0; i < n; ++i)
            if (!std::isnan(x[i])) mn = std::min(mn, double(x[i])), mx = std::max(mx, double(x[i]));
          float a = 0, b = 0;
          k.fn(x, n, &a, &b);
          EXPECT_EQ(double(a), mn);
          EXPECT_EQ(double(b), mx);
        }
    float a = 0, b = 0;
    k.fn(nullptr, 0, &a, &b);  // empty: +inf, -inf
    EXPECT_EQ(a, INFINITY);
    EXPECT_EQ(b, -INFINITY);
  });
  EXPECT_FALSE(ran.empty());
}

int ref_quantize(float x, float scale, int zp, bool is_signed) {
  const int lo = is_signed ? -128 : 0, hi = is_signed ? 127 : 255;
  if (std::isnan(x)) return lo;
  const double t = double(float(double(x) / double(scale)));  // fl32(x / scale), correctly rounded
  double r = std::floor(t);
  const double f = t - r;
  if (f > 0.5 || (f == 0.5 && std::fmod(r, 2.0) != 0)) r += 1;  // half to even
  r += zp;
  return int(std::max<double>(lo, std::min<double>(hi, r)));
}

TEST(QuantKernels, Quantize) {
  struct P { float scale; int zp; bool is_signed; };
  const P params[] = {{0.02f, 100, false}, {0.0371f, 0, true}, {1.f, 0, true}, {0.5f, 3, false}, {3e-3f, -5, true}};
  const auto ran = ne_test::for_each_runnable(kq::quantize_kernels(), [&](const auto& k) {
    int cases = 0;
    for (const P& p : params)
      for (int64_t n : odd_sizes())
        for (int off = 0; off < 2; ++off) {
          const uint32_t seed = uint32_t(2000 + n * 2 + off + cases);
          SCOPED_TRACE("n " + std::to_string(n) + " offset " + std::to_string(off) + " scale " +
                       std::to_string(p.scale) + " zp " + std::to_string(p.zp) + (p.is_signed ? " s8" : " u8") +
                       " seed " + std::to_string(seed));
          std::vector<float> v = random_values(n, seed, -260.f * p.scale, 260.f * p.scale);  // saturates both ends
          float* x = v.data() + off;
          // Exact half steps (k + 0.5)·scale and their fp32 neighbours, NaN and inf.
          for (int64_t i = 0; i < n; i += 3) {
            const float h = (float(int64_t(i % 41) - 20) + 0.5f) * p.scale;
            const int w = int(i / 3 % 3);
            x[i] = w == 0 ? h : w == 1 ? std::nextafter(h, INFINITY) : std::nextafter(h, -INFINITY);
          }
          if (n > 10) x[5] = std::numeric_limits<float>::quiet_NaN(), x[7] = INFINITY, x[9] = -INFINITY;
          std::vector<uint8_t> q(size_t(n) + 1, 0xAA);
          k.fn(x, q.data(), n, p.scale, p.zp, p.is_signed);
          int bad = 0;
          for (int64_t i = 0; i < n && bad < 5; ++i) {
            const int got = p.is_signed ? int(int8_t(q[size_t(i)])) : int(q[size_t(i)]);
            const int want = ref_quantize(x[i], p.scale, p.zp, p.is_signed);
            if (got != want) ++bad, ADD_FAILURE() << "i " << i << " x " << x[i] << " got " << got << " want " << want;
          }
          EXPECT_EQ(q[size_t(n)], 0xAA) << "wrote past n";
          ++cases;
        }
  });
  EXPECT_FALSE(ran.empty());
}

// The nearest bf16 of f (ties to even) as bits, from distances in double.
uint16_t ref_bf16(float f) {
  const uint32_t u = bits(f);
  if (std::isnan(f)) return uint16_t((u >> 16) | 0x40);
  const uint32_t lo = u & 0xffff0000u;
  if (lo == u) return uint16_t(u >> 16);
  const uint32_t hi = lo + 0x10000u;
  const double dlo = std::fabs(double(f) - double(from_bits(lo)));
  const double vhi = (hi & 0x7fffffffu) == 0x7f800000u ? std::copysign(std::ldexp(1.0, 128), double(f))
                                                         : double(from_bits(hi));
  const double dhi = std::fabs(vhi - double(f));
  if (dlo < dhi) return uint16_t(lo >> 16);
  if (dhi < dlo) return uint16_t(hi >> 16);
  return ((lo >> 16) & 1u) ? uint16_t(hi >> 16) : uint16_t(lo >> 16);
}

TEST(QuantKernels, ToBf16) {
  const auto ran = ne_test::for_each_runnable(kq::to_bf16_kernels(), [](const auto& k) {
    for (int64_t n : odd_sizes())
      for (int off = 0; off < 2; ++off) {
        const uint32_t seed = uint32_t(3000 + n * 2 + off);
        SCOPED_TRACE("n " + std::to_string(n) + " offset " + std::to_string(off) + " seed " + std::to_string(seed));
        std::vector<float> v = random_values(n, seed, -100.f, 100.f);
        float* x = v.data() + off;
        // Specials: ties (low half 0x8000, even and odd upper halves), just off ties, zeros,
        // denormals, inf, NaN (quiet and signalling), the largest float (rounds to inf).
        const uint32_t specials[] = {0x3f808000u, 0x3f818000u, 0x3f808001u, 0x3f817fffu, 0x00000000u, 0x80000000u,
                                     0x00000001u, 0x807fffffu, 0x7f800000u, 0xff800000u, 0x7fc00000u, 0x7f800001u,
                                     0xffa00000u, 0x7f7fffffu, 0xff7f8000u, 0x7f7f7fffu};
        for (int64_t i = 0; i < n; i += 2) x[i] = from_bits(specials[size_t(i / 2) % 16]);
        std::vector<uint16_t> y(size_t(n) + 1, 0xBEEF);
        k.fn(x, y.data(), n);
        int bad = 0;
        for (int64_t i = 0; i < n && bad < 5; ++i)
          if (y[size_t(i)] != ref_bf16(x[i]))
            ++bad, ADD_FAILURE() << "i " << i << " x bits 0x" << std::hex << bits(x[i]) << " got 0x" << y[size_t(i)]
                                 << " want 0x" << ref_bf16(x[i]) << std::dec;
        EXPECT_EQ(y[size_t(n)], 0xBEEF) << "wrote past n";
      }
  });
  EXPECT_FALSE(ran.empty());
}

}  // namespace
