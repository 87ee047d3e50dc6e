// Shared by the block-sparse GEMM tests (test_sparse_pack, test_sparse_kernels,
// test_sparse_dispatch): seeded random weights of each pattern, and one case run through a kernel
// (or gemm()) and checked against a reference written independently of the kernels (double
// precision, plain loops over the unpacked weight, its own bf16 rounding, its own activation
// formulas from <cmath>); it shares no code with kernels/.
//
// Tolerances (per output element, with S = sum_k |x_k w_k| in double):
//   f32 / bf16 inputs, fp32 accumulation: 2e-5 * S * |scale| — fp32 rounding of a
//     sum of up to ~3k terms in a kernel-chosen order (eps 6e-8 x growth well below
//     the worst case K*eps; 2e-5 leaves room for K = 3072 at 1e-8 relative per add).
//     bf16 x bf16 products are exact in fp32, so bf16 inputs get the same bound.
//   int8: s32 accumulation is exact; the s32 -> f32 conversion adds 6e-8 relative.
//   activations: + 1e-5 * (1 + |y|): dominated by the fp32 rounding of the pre-activation
//     (slope <= 1.13); the vector approximations themselves are far tighter (measured
//     over x in [-40, 40]: gelu_erf <= 1.0e-6 absolute, by a rational erf with no erfc
//     tail, so not relative-accurate for x < -3 where |y| < 4e-3; tanh <= 2e-7 relative;
//     see bsgemm_avx512_common.hpp).
//   bf16 output: + |y| * 2^-8 (one bf16 rounding, 8 mantissa bits).
//   u8/s8 output: |q - q_ref| <= 1 (a .5 tie may round either way after fp32 error).
// Randomness: std::mt19937_64, seed 20261123 unless NE_TEST_SEED is set; printed by
// SCOPED_TRACE on every failure.
#pragma once
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kernels/sparse_gemm/sparse_gemm.hpp"

namespace ne::sparse::gemm_test {

inline uint64_t test_seed() {
  static const uint64_t s = [] {
    const char* e = std::getenv("NE_TEST_SEED");
    return e ? std::strtoull(e, nullptr, 10) : 20261123ull;
  }();
  return s;
}

// Test-side bf16: round to nearest even, written here independently.
inline uint16_t to_bf16(double d) {
  float f = float(d);
  uint32_t u;
  std::memcpy(&u, &f, 4);
  const uint32_t lsb = (u >> 16) & 1u;
  u = u + 0x7fffu + lsb;
  return uint16_t(u >> 16);
}
inline double from_bf16(uint16_t h) {
  uint32_t u = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// A weight with a given dtype, stored as double values + raw bytes.
struct Weight {
  DType dt;
  int K, N;
  std::vector<double> val;     // [K][N]
  std::vector<uint8_t> bytes;  // raw, dtype layout, row stride N
};

inline double rand_nonzero(std::mt19937_64& rng, DType dt) {
  if (dt == DType::s8) {
    int v = 0;
    while (v == 0) v = int(rng() % 255) - 127;
    return v;
  }
  std::uniform_real_distribution<double> u(0.05, 1.0);
  double v = u(rng) * ((rng() & 1) ? 1 : -1);
  if (dt == DType::bf16) v = from_bf16(to_bf16(v));
  else v = float(v);
  return v;
}

// Generates W with exactly round(sparsity * blocks) all-zero blocks of the pattern
// (2:4: a fraction of 4-groups along K reduced to <= 2 non-zeros; channel: zero rows).
inline Weight make_weight(DType dt, int K, int N, Pattern p, double sparsity, std::mt19937_64& rng) {
  Weight w{dt, K, N, std::vector<double>(size_t(K) * N), {}};
  for (auto& v : w.val) v = rand_nonzero(rng, dt);
  auto zero_block = [&](int k0, int kh, int n0, int nw) {
    for (int k = k0; k < std::min(K, k0 + kh); ++k)
      for (int n = n0; n < std::min(N, n0 + nw); ++n) w.val[size_t(k) * N + n] = 0;
  };
  std::vector<std::pair<int, int>> blocks;
  if (p == Pattern::p1x4 || p == Pattern::p2of4)
    for (int k = 0; k < K; ++k)
      for (int n = 0; n < N; n += 4) blocks.push_back({k, n});
  else if (p == Pattern::p4x1)
    for (int k = 0; k < K; k += 4)
      for (int n = 0; n < N; ++n) blocks.push_back({k, n});
  else
    for (int k = 0; k < K; ++k) blocks.push_back({k, 0});
  std::shuffle(blocks.begin(), blocks.end(), rng);
  const size_t nz = size_t(std::llround(sparsity * double(blocks.size())));
  for (size_t i = 0; i < nz; ++i) {
    auto [k, n] = blocks[i];
    if (p == Pattern::p1x4 || p == Pattern::p2of4) zero_block(k, 1, n, 4);
    else if (p == Pattern::p4x1) zero_block(k, 4, n, 1);
    else zero_block(k, 1, 0, N);
  }
  if (p == Pattern::p2of4)  // on top: every 4-group along K keeps at most 2 non-zeros
    for (int n = 0; n < N; ++n)
      for (int k0 = 0; k0 < K; k0 += 4)
        for (int k = k0 + 2; k < std::min(K, k0 + 4); ++k) w.val[size_t(k) * N + n] = 0;
  const size_t es = dt == DType::f32 ? 4 : dt == DType::bf16 ? 2 : 1;
  w.bytes.resize(size_t(K) * N * es);
  for (size_t i = 0; i < w.val.size(); ++i) {
    if (dt == DType::f32) { float f = float(w.val[i]); std::memcpy(&w.bytes[i * 4], &f, 4); }
    else if (dt == DType::bf16) { uint16_t h = to_bf16(w.val[i]); std::memcpy(&w.bytes[i * 2], &h, 2); }
    else w.bytes[i] = uint8_t(int8_t(w.val[i]));
  }
  return w;
}

// Independent count of the pattern's sparsity (as documented in sparse_gemm.hpp).
inline double ref_sparsity(const Weight& w, Pattern p) {
  auto nz = [&](int k, int n) { return k < w.K && n < w.N && w.val[size_t(k) * w.N + n] != 0.0; };
  int64_t z = 0, t = 0;
  if (p == Pattern::p1x4) {
    for (int k = 0; k < w.K; ++k)
      for (int n = 0; n < w.N; n += 4, ++t) z += !(nz(k, n) || nz(k, n + 1) || nz(k, n + 2) || nz(k, n + 3));
  } else if (p == Pattern::p4x1) {
    for (int k = 0; k < w.K; k += 4)
      for (int n = 0; n < w.N; ++n, ++t) z += !(nz(k, n) || nz(k + 1, n) || nz(k + 2, n) || nz(k + 3, n));
  } else if (p == Pattern::p2of4) {
    for (int k = 0; k < w.K; k += 4)
      for (int n = 0; n < w.N; ++n, ++t) z += (nz(k, n) + nz(k + 1, n) + nz(k + 2, n) + nz(k + 3, n)) <= 2;
  } else {
    for (int k = 0; k < w.K; ++k, ++t) {
      bool any = false;
      for (int n = 0; n < w.N; ++n) any = any || nz(k, n);
      z += !any;
    }
  }
  return double(z) / double(t);
}

inline double ref_act(double v, Act a) {
  switch (a) {
    case Act::none: return v;
    case Act::relu: return v > 0 ? v : 0;
    case Act::gelu_erf: return 0.5 * v * std::erfc(-v / std::sqrt(2.0));  // = 0.5 v (1 + erf(v/sqrt2)), no cancellation
    case Act::gelu_tanh: return 0.5 * v * (1 + std::tanh(std::sqrt(2 / M_PI) * (v + 0.044715 * v * v * v)));
    case Act::tanh: return std::tanh(v);
  }
  return v;
}

struct Case {
  Layout layout;
  int M, N, K;
  int pad_src, pad_dst;  // extra leading-dimension elements
  Act act;
  DType out;
  bool scale, bias, residual;
  DType src_dt;  // f32 / bf16 / u8 / s8
};

inline std::string describe(const Case& c, Pattern p, double sp, const char* kname) {
  char b[400];
  std::snprintf(b, sizeof b,
                "seed=%llu kernel=%s pattern=%s sparsity=%.2f %s M=%d N=%d K=%d ldpad=%d/%d act=%s out=%s "
                "scale=%d bias=%d residual=%d src=%s",
                (unsigned long long)test_seed(), kname, pattern_name(p), sp,
                c.layout == Layout::token_major ? "token-major" : "feature-major", c.M, c.N, c.K, c.pad_src,
                c.pad_dst, act_name(c.act), dtype_name(c.out), c.scale, c.bias, c.residual, dtype_name(c.src_dt));
  return b;
}

// Runs one case through `k` (or gemm() when k == nullptr) and checks it. threads: GemmArgs::
// num_threads (0 = the OpenMP default); out: the dst bytes, for comparing runs.
// Blocking: the K-gather packing for the kernels that take it (nb 16), else the standard one.
inline void run_case(const KernelInfo* k, const Case& c, Pattern p, double sp, std::mt19937_64& rng,
              const KernelInfo** ran = nullptr, int threads = 0, std::vector<uint8_t>* out = nullptr,
              bool kgather = false) {
  const DType wdt = c.src_dt == DType::f32 ? DType::f32 : c.src_dt == DType::bf16 ? DType::bf16 : DType::s8;
  kgather = kgather || (k && k->nb == 16);
  SCOPED_TRACE(describe(c, p, sp, k ? k->name : "gemm()") + (kgather ? " blocking=amx_kgather" : ""));
  const Weight w = make_weight(wdt, c.K, c.N, p, sp, rng);
  const PackedWeight pw = PackedWeight::pack(w.bytes.data(), wdt, c.K, c.N, p, 0,
                                             kgather ? Blocking::amx_kgather : Blocking::standard);
  const bool tm = c.layout == Layout::token_major;
  const int src_rows = tm ? c.M : c.K, src_cols = tm ? c.K : c.M;
  const int dst_rows = tm ? c.M : c.N, dst_cols = tm ? c.N : c.M;
  const int64_t lds = src_cols + c.pad_src, ldd = dst_cols + c.pad_dst, ldr = dst_cols + 2;
  // activations
  std::vector<double> x(size_t(src_rows) * lds, 0.0);
  const size_t ses = c.src_dt == DType::f32 ? 4 : c.src_dt == DType::bf16 ? 2 : 1;
  std::vector<uint8_t> xb(size_t(src_rows) * lds * ses, 0xCD);  // padding bytes poisoned
  std::uniform_real_distribution<double> u(-1, 1);
  for (int r = 0; r < src_rows; ++r)
    for (int col = 0; col < src_cols; ++col) {
      const size_t i = size_t(r) * lds + col;
      double v;
      if (c.src_dt == DType::f32) { float f = float(u(rng)); v = f; std::memcpy(&xb[i * 4], &f, 4); }
      else if (c.src_dt == DType::bf16) { uint16_t h = to_bf16(u(rng)); v = from_bf16(h); std::memcpy(&xb[i * 2], &h, 2); }
      else if (c.src_dt == DType::u8) { uint8_t q = uint8_t(rng() % 256); v = q; xb[i] = q; }
      else { int8_t q = int8_t(int(rng() % 256) - 128); v = q; xb[i] = uint8_t(q); }
      x[i] = v;
    }
  std::vector<float> scale(c.N), bias(c.N), res(size_t(dst_rows) * ldr);
  for (auto& s : scale) s = float(c.src_dt == DType::u8 || c.src_dt == DType::s8 ? 1e-3 * (0.5 + u(rng) * 0.25) : 0.5 + 0.25 * u(rng));
  for (auto& b : bias) b = float(u(rng));
  for (auto& r : res) r = float(u(rng));
  const float dst_scale = 0.05f;
  const int32_t zp = c.out == DType::u8 ? 128 : 3;
  const size_t oes = c.out == DType::f32 ? 4 : c.out == DType::bf16 ? 2 : 1;
  std::vector<uint8_t> yb(size_t(dst_rows) * ldd * oes, 0xAB);
  const std::vector<uint8_t> yb_init = yb;

  GemmArgs a;
  a.layout = c.layout;
  a.M = c.M;
  a.src = xb.data();
  a.ld_src = lds;
  a.src_dtype = c.src_dt;
  a.dst = yb.data();
  a.ld_dst = ldd;
  a.post.scale = c.scale ? scale.data() : nullptr;
  a.post.bias = c.bias ? bias.data() : nullptr;
  a.post.act = c.act;
  a.post.residual = c.residual ? res.data() : nullptr;
  a.post.ld_residual = ldr;
  a.post.dst_dtype = c.out;
  a.post.dst_scale = dst_scale;
  a.post.dst_zero_point = zp;
  a.num_threads = threads;
  if (k) gemm_with(*k, a, pw);
  else {
    const KernelInfo& r = gemm(a, pw);
    if (ran) *ran = &r;
  }

  int bad = 0;
  for (int m = 0; m < c.M; ++m)
    for (int n = 0; n < c.N; ++n) {
      double acc = 0, S = 0;
      for (int kk = 0; kk < c.K; ++kk) {
        const double xv = tm ? x[size_t(m) * lds + kk] : x[size_t(kk) * lds + m];
        const double t = xv * w.val[size_t(kk) * c.N + n];
        acc += t;
        S += std::fabs(t);
      }
      const double sc = c.scale ? scale[n] : 1.0;
      double y = acc * sc;
      if (c.bias) y += bias[n];
      y = ref_act(y, c.act);
      const int64_t o = tm ? int64_t(m) * ldd + n : int64_t(n) * ldd + m;
      const int64_t ro = tm ? int64_t(m) * ldr + n : int64_t(n) * ldr + m;
      if (c.residual) y += res[ro];
      const bool integer_acc = c.src_dt == DType::u8 || c.src_dt == DType::s8;
      double tol = (integer_acc ? 1e-7 : 2e-5) * S * std::fabs(sc) + 1e-6;
      // activation slope is <= ~1.13 for all acts here, so the accumulation error carries over
      tol += c.act != Act::none ? 1e-5 * (1 + std::fabs(y)) : 0;
      bool ok;
      double got;
      if (c.out == DType::f32) { float f; std::memcpy(&f, &yb[o * 4], 4); got = f; ok = std::fabs(got - y) <= tol; }
      else if (c.out == DType::bf16) {
        uint16_t h; std::memcpy(&h, &yb[o * 2], 2); got = from_bf16(h);
        ok = std::fabs(got - y) <= tol + std::fabs(y) * (1.0 / 256);
      } else {
        const double lo = c.out == DType::u8 ? 0 : -128, hi = c.out == DType::u8 ? 255 : 127;
        const double q = std::min(hi, std::max(lo, std::nearbyint(y / dst_scale) + zp));
        got = c.out == DType::u8 ? double(yb[o]) : double(int8_t(yb[o]));
        ok = std::fabs(got - q) <= 1 + tol / dst_scale;
        y = q;
      }
      if (!ok && bad++ < 5) ADD_FAILURE() << "m=" << m << " n=" << n << " got " << got << " want " << y << " tol " << tol;
    }
  // bytes outside the rows' valid columns must be untouched
  for (int r = 0; r < dst_rows; ++r)
    for (int64_t col = dst_cols; col < ldd; ++col)
      for (size_t b = 0; b < oes; ++b) {
        const size_t i = (size_t(r) * ldd + col) * oes + b;
        if (yb[i] != yb_init[i] && bad++ < 5) ADD_FAILURE() << "wrote padding at row " << r << " col " << col;
      }
  EXPECT_EQ(bad, 0);
  if (out) *out = yb;
}

}  // namespace ne::sparse::gemm_test
