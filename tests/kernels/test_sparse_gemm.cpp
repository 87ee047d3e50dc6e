// Block-sparse GEMM tests. The reference below is written independently of the kernels
// (double precision, plain loops over the unpacked weight, its own bf16 rounding, its
// own activation formulas from <cmath>); it shares no code with kernels/.
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

namespace {

using namespace ne::sparse;
using ne::cpu::Isa;

uint64_t test_seed() {
  static const uint64_t s = [] {
    const char* e = std::getenv("NE_TEST_SEED");
    return e ? std::strtoull(e, nullptr, 10) : 20261123ull;
  }();
  return s;
}

// Test-side bf16: round to nearest even, written here independently.
uint16_t to_bf16(double d) {
  float f = float(d);
  uint32_t u;
  std::memcpy(&u, &f, 4);
  const uint32_t lsb = (u >> 16) & 1u;
  u = u + 0x7fffu + lsb;
  return uint16_t(u >> 16);
}
double from_bf16(uint16_t h) {
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

double rand_nonzero(std::mt19937_64& rng, DType dt) {
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
Weight make_weight(DType dt, int K, int N, Pattern p, double sparsity, std::mt19937_64& rng) {
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
double ref_sparsity(const Weight& w, Pattern p) {
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

double ref_act(double v, Act a) {
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

std::string describe(const Case& c, Pattern p, double sp, const char* kname) {
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
void run_case(const KernelInfo* k, const Case& c, Pattern p, double sp, std::mt19937_64& rng,
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

// ------------------------------------------------------------------ packing
TEST(SparsePack, RoundTripAndSparsityAllDtypesPatterns) {
  std::mt19937_64 rng(test_seed());
  const int shapes[][2] = {{3, 5}, {7, 13}, {97, 100}, {64, 48}, {1, 1}};
  for (DType dt : {DType::f32, DType::bf16, DType::s8})
    for (int pi = 0; pi < kNumPatterns; ++pi)
      for (double sp : {0.0, 0.5, 0.9, 1.0})
        for (auto& s : shapes) {
          const Pattern p = Pattern(pi);
          SCOPED_TRACE(std::string("seed=") + std::to_string(test_seed()) + " dt=" + dtype_name(dt) +
                       " pattern=" + pattern_name(p) + " sp=" + std::to_string(sp) + " K=" +
                       std::to_string(s[0]) + " N=" + std::to_string(s[1]));
          const Weight w = make_weight(dt, s[0], s[1], p, sp, rng);
          EXPECT_NEAR(block_sparsity(w.bytes.data(), dt, s[0], s[1], p), ref_sparsity(w, p), 1e-12);
          for (int pj = 0; pj < kNumPatterns; ++pj)  // every measure on every weight
            EXPECT_NEAR(block_sparsity(w.bytes.data(), dt, s[0], s[1], Pattern(pj)), ref_sparsity(w, Pattern(pj)), 1e-12);
          const PackedWeight pw = PackedWeight::pack(w.bytes.data(), dt, s[0], s[1], p);
          std::vector<uint8_t> back(w.bytes.size(), 0x5A);
          pw.unpack(back.data());
          EXPECT_EQ(back, w.bytes);
          // the flat buffer is position independent: copy it elsewhere and view it
          std::vector<uint8_t> copy(pw.pack_bytes(), pw.pack_bytes() + pw.pack_size());
          const PackedWeight view = PackedWeight::from_bytes(copy.data(), copy.size());
          std::vector<uint8_t> back2(w.bytes.size(), 0x33);
          view.unpack(back2.data());
          EXPECT_EQ(back2, w.bytes);
          EXPECT_EQ(view.K(), s[0]);
          EXPECT_EQ(view.N(), s[1]);
          EXPECT_EQ(view.pattern(), p);
          if (p == Pattern::p1x4 || p == Pattern::p4x1) {
            EXPECT_NEAR(view.sparsity(), ref_sparsity(w, p), 1e-12);
          }
        }
}

TEST(SparsePack, LeadingDimAndBadBytes) {
  std::mt19937_64 rng(test_seed() + 1);
  const Weight w = make_weight(DType::f32, 10, 9, Pattern::p1x4, 0.5, rng);
  std::vector<float> wide(10 * 16, 7.f);
  for (int k = 0; k < 10; ++k) std::memcpy(&wide[k * 16], &w.bytes[k * 9 * 4], 9 * 4);
  const PackedWeight pw = PackedWeight::pack(wide.data(), 10, 9, Pattern::p1x4, 16);
  std::vector<float> back(10 * 12, -1.f);
  pw.unpack(back.data(), 12);
  for (int k = 0; k < 10; ++k) {
    EXPECT_EQ(0, std::memcmp(&back[k * 12], &wide[k * 16], 9 * 4));
    EXPECT_EQ(back[k * 12 + 9], -1.f);
  }
  std::vector<uint8_t> bytes(pw.pack_bytes(), pw.pack_bytes() + pw.pack_size());
  EXPECT_THROW(PackedWeight::from_bytes(bytes.data(), 100), std::runtime_error);
  {  // a k index out of range (kidx section offset is the int64 at header byte 64)
    std::vector<uint8_t> bad = bytes;
    int64_t off_kidx;
    std::memcpy(&off_kidx, bad.data() + 64, 8);
    const int32_t huge = 1 << 20;
    std::memcpy(bad.data() + off_kidx, &huge, 4);
    EXPECT_THROW(PackedWeight::from_bytes(bad.data(), bad.size()), std::runtime_error);
  }
  bytes[0] ^= 1;
  EXPECT_THROW(PackedWeight::from_bytes(bytes.data(), bytes.size()), std::runtime_error);
  Pattern p;
  EXPECT_TRUE(parse_pattern("2:4", &p));
  EXPECT_EQ(p, Pattern::p2of4);
  EXPECT_STREQ(pattern_name(Pattern::channel), "channel");
}

// The AMX K-gather blocking (sparse_gemm.hpp, format note): bf16 and s8 weights of every
// pattern pack -> unpack bitwise, through a copy via from_bytes too; the header's z is the
// fraction of (16-channel group, k) rows that are all zero, counted here independently;
// every group is whole AMX tiles (16 steps); f32 is refused.
TEST(SparsePack, KgatherRoundTripAndZ) {
  std::mt19937_64 rng(test_seed() + 3);
  const int shapes[][2] = {{3, 5}, {7, 13}, {97, 100}, {64, 48}, {1, 1}, {200, 16}, {130, 33}};
  for (DType dt : {DType::bf16, DType::s8})
    for (int pi = 0; pi < kNumPatterns; ++pi)
      for (double sp : {0.0, 0.5, 0.9, 0.99, 1.0})
        for (auto& s : shapes) {
          const Pattern p = Pattern(pi);
          const int K = s[0], N = s[1];
          SCOPED_TRACE(std::string("seed=") + std::to_string(test_seed()) + " dt=" + dtype_name(dt) +
                       " pattern=" + pattern_name(p) + " sp=" + std::to_string(sp) + " K=" + std::to_string(K) +
                       " N=" + std::to_string(N));
          const Weight w = make_weight(dt, K, N, p, sp, rng);
          const PackedWeight pw = PackedWeight::pack(w.bytes.data(), dt, K, N, p, 0, Blocking::amx_kgather);
          EXPECT_EQ(pw.blocking(), Blocking::amx_kgather);
          EXPECT_EQ(pw.pattern(), p);
          EXPECT_NEAR(pw.sparsity(), ref_sparsity(w, p), 1e-12);
          int64_t zero_rows = 0, rows = 0;
          for (int g = 0; g * 16 < N; ++g)
            for (int k = 0; k < K; ++k, ++rows) {
              bool any = false;
              for (int n = g * 16; n < std::min(N, g * 16 + 16); ++n) any = any || w.val[size_t(k) * N + n] != 0.0;
              zero_rows += !any;
            }
          EXPECT_NEAR(pw.kgather_z(), double(zero_rows) / double(rows), 1e-12);
          const int tile_k = dt == DType::s8 ? 64 : 32;  // gathered k per AMX tile
          const int64_t nonzero_rows = rows - zero_rows;
          EXPECT_GE(pw.steps() * (dt == DType::s8 ? 4 : 2), nonzero_rows);
          EXPECT_EQ(pw.steps() * (dt == DType::s8 ? 4 : 2) % tile_k, 0);
          std::vector<uint8_t> back(w.bytes.size(), 0x5A);
          pw.unpack(back.data());
          EXPECT_EQ(back, w.bytes);
          std::vector<uint8_t> copy(pw.pack_bytes(), pw.pack_bytes() + pw.pack_size());
          const PackedWeight view = PackedWeight::from_bytes(copy.data(), copy.size());
          std::vector<uint8_t> back2(w.bytes.size(), 0x33);
          view.unpack(back2.data());
          EXPECT_EQ(back2, w.bytes);
          EXPECT_EQ(view.blocking(), Blocking::amx_kgather);
        }
  std::vector<float> f(16, 1.f);
  EXPECT_THROW(PackedWeight::pack(f.data(), DType::f32, 4, 4, Pattern::p1x4, 0, Blocking::amx_kgather),
               std::invalid_argument);
}

// from_bytes rejects a corrupt K-gather buffer: k index >= K, a group that is not whole AMX
// tiles, a wrong kq, and nb 16 under header version 1. Header byte offsets: version 4,
// nb 16, kq 20, off_group_ptr 56, off_kidx 64 (bsgemm_internal.hpp's PackedHeader).
TEST(SparsePack, KgatherBadBytes) {
  std::mt19937_64 rng(test_seed() + 4);
  const int K = 100, N = 40;
  const Weight w = make_weight(DType::s8, K, N, Pattern::p1x4, 0.5, rng);
  const PackedWeight pw = PackedWeight::pack(w.bytes.data(), DType::s8, K, N, Pattern::p1x4, 0, Blocking::amx_kgather);
  const std::vector<uint8_t> good(pw.pack_bytes(), pw.pack_bytes() + pw.pack_size());
  EXPECT_NO_THROW(PackedWeight::from_bytes(good.data(), good.size()));
  auto rd64 = [&](int off) { int64_t v; std::memcpy(&v, good.data() + off, 8); return v; };
  {
    std::vector<uint8_t> bad = good;
    const int32_t k = K;  // one past the last row (the s8 standard packing allows up to K rounded to 4 only for 4x1)
    std::memcpy(bad.data() + rd64(64), &k, 4);
    EXPECT_THROW(PackedWeight::from_bytes(bad.data(), bad.size()), std::runtime_error);
  }
  {
    std::vector<uint8_t> bad = good;  // group 0 ends one step early: not whole tiles
    int64_t e;
    std::memcpy(&e, bad.data() + rd64(56) + 8, 8);
    ASSERT_GT(e, 0);
    --e;
    std::memcpy(bad.data() + rd64(56) + 8, &e, 8);
    EXPECT_THROW(PackedWeight::from_bytes(bad.data(), bad.size()), std::runtime_error);
  }
  {
    std::vector<uint8_t> bad = good;
    const int32_t kq = 2;  // bf16's kq on an s8 weight
    std::memcpy(bad.data() + 20, &kq, 4);
    EXPECT_THROW(PackedWeight::from_bytes(bad.data(), bad.size()), std::runtime_error);
  }
  {
    std::vector<uint8_t> bad = good;
    const uint16_t v1 = 1;
    std::memcpy(bad.data() + 4, &v1, 2);
    EXPECT_THROW(PackedWeight::from_bytes(bad.data(), bad.size()), std::runtime_error);
  }
}

TEST(SparsePack, Vnni4Reorder) {
  std::mt19937_64 rng(test_seed() + 2);
  const int K = 7, M = 5, ld = 9;
  std::vector<uint8_t> x(K * ld), v(((K + 3) / 4) * M * 4), back(K * ld, 0);
  for (auto& b : x) b = uint8_t(rng());
  reorder_to_vnni4(x.data(), K, M, ld, v.data());
  for (int k = 0; k < K; ++k)
    for (int m = 0; m < M; ++m) EXPECT_EQ(v[((k / 4) * M + m) * 4 + k % 4], x[k * ld + m]);
  reorder_from_vnni4(v.data(), K, M, back.data(), ld);
  for (int k = 0; k < K; ++k)
    for (int m = 0; m < M; ++m) EXPECT_EQ(back[k * ld + m], x[k * ld + m]);
}

// ------------------------------------------------------------------ kernels
class KernelTest : public ::testing::TestWithParam<int> {
 protected:
  const KernelInfo& kernel() const { return kernel_list()[GetParam()]; }
  void SetUp() override {
    const std::string why = ne::cpu::why_not(kernel().isa);
    if (!why.empty()) GTEST_SKIP() << kernel().name << " not run on this machine: " << why;
  }
  std::vector<Pattern> patterns() const {
    if (kernel().nb == 16) return {Pattern::p1x4, Pattern::p4x1, Pattern::p2of4, Pattern::channel};  // any pattern K-gathers
    if (kernel().nb == 1) return {Pattern::p4x1};
    if (kernel().nb == 4) return {Pattern::p1x4, Pattern::p2of4, Pattern::channel};
    return {Pattern::p1x4, Pattern::p4x1, Pattern::p2of4, Pattern::channel};
  }
  std::vector<DType> srcs() const {
    if (kernel().wdtype == DType::f32) return {DType::f32};
    if (kernel().wdtype == DType::bf16) return {DType::bf16};
    return {DType::u8, DType::s8};
  }
};

TEST_P(KernelTest, ShapesSparsitiesLayouts) {
  std::mt19937_64 rng(test_seed() + GetParam() * 1000);
  const int shapes[][3] = {{1, 5, 3}, {3, 13, 7}, {17, 100, 97}, {77, 48, 64}, {130, 37, 50}, {16, 64, 128}};
  const Act acts[] = {Act::none, Act::relu, Act::gelu_erf, Act::gelu_tanh, Act::tanh};
  const DType outs[] = {DType::f32, DType::bf16, DType::u8, DType::s8};
  const bool generic = kernel().isa == Isa::generic;
  int iter = 0;
  for (Pattern p : patterns())
    for (double sp : {0.0, 0.5, 0.7, 0.9, 0.99, 1.0})
      for (auto& s : shapes)
        for (Layout L : {Layout::token_major, Layout::feature_major}) {
          if (generic && s[0] * s[1] * s[2] > 200000) continue;
          // rotate post-ops / output types / ld padding through the cases
          Case c{L, s[0], s[1], s[2], iter % 3 == 0 ? 0 : 3 + iter % 5, iter % 4 == 0 ? 0 : 1 + iter % 7,
                 acts[iter % 5], outs[(iter / 5) % 4], iter % 2 == 0, iter % 3 != 1, iter % 4 == 1,
                 srcs()[iter % srcs().size()]};
          ++iter;
          run_case(&kernel(), c, p, sp, rng);
          if (HasFailure()) return;
        }
}

TEST_P(KernelTest, EveryPostOpAndOutputType) {
  std::mt19937_64 rng(test_seed() + GetParam() * 1000 + 7);
  const Pattern p = patterns()[0];
  for (Layout L : {Layout::token_major, Layout::feature_major})
    for (Act act : {Act::none, Act::relu, Act::gelu_erf, Act::gelu_tanh, Act::tanh})
      for (DType out : {DType::f32, DType::bf16, DType::u8, DType::s8})
        for (DType src : srcs()) {
          Case c{L, 33, 40, 52, 2, 3, act, out, true, true, true, src};
          run_case(&kernel(), c, p, 0.7, rng);
          if (HasFailure()) return;
        }
}

INSTANTIATE_TEST_SUITE_P(AllKernels, KernelTest, ::testing::Range(0, int(kernel_list().size())),
                         [](const ::testing::TestParamInfo<int>& i) { return std::string(kernel_list()[i.param].name); });

// The generic kernels read the K-gather packing too (the fallback where AMX is absent or
// capped): the same shapes and post-ops as KernelTest, against the reference.
TEST(SparseKgather, GenericKernelsRunTheKgatherPacking) {
  std::mt19937_64 rng(test_seed() + 71);
  const int shapes[][3] = {{1, 5, 3}, {17, 100, 97}, {77, 48, 64}, {20, 33, 130}};
  int iter = 0;
  for (const KernelInfo& k : kernel_list()) {
    if (k.isa != Isa::generic || k.wdtype == DType::f32) continue;
    for (double sp : {0.0, 0.9, 1.0})
      for (auto& s : shapes)
        for (Layout L : {Layout::token_major, Layout::feature_major}) {
          const DType src = k.wdtype == DType::bf16 ? DType::bf16 : (iter % 2 ? DType::s8 : DType::u8);
          Case c{L, s[0], s[1], s[2], iter % 3, iter % 2, Act::gelu_tanh, iter % 2 ? DType::bf16 : DType::f32,
                 true, true, iter % 2 == 0, src};
          ++iter;
          run_case(&k, c, Pattern::p1x4, sp, rng, nullptr, 0, nullptr, /*kgather=*/true);
          if (HasFailure()) return;
        }
  }
}

// On an AMX CPU, a K-gather-packed bf16 / int8 weight runs the AMX K-gather kernel through
// gemm() (the fast path may not silently fall back to generic); capped below AMX, generic.
// The M = 515 case also covers several 64-token panels and a tail; sparsity 0.99 and the
// 1x16-like all-zero groups too.
TEST(SparseKgather, GemmRunsTheAmxKernelAndGenericBelowAmx) {
  std::mt19937_64 rng(test_seed() + 72);
  for (int capped = 0; capped < 2; ++capped) {
    if (!capped && !ne::cpu::mayiuse(Isa::avx512_core_amx)) continue;
    if (capped) ne::cpu::set_isa_cap(Isa::avx512_core_bf16);
    for (DType src : {DType::bf16, DType::u8, DType::s8})
      for (Layout L : {Layout::token_major, Layout::feature_major})
        for (double sp : {0.5, 0.99}) {
          Case c{L, 515, 40, 200, 1, 2, Act::relu, DType::u8, true, true, true, src};
          const KernelInfo* ran = nullptr;
          run_case(nullptr, c, Pattern::p1x4, sp, rng, &ran, 0, nullptr, /*kgather=*/true);
          ASSERT_NE(ran, nullptr);
          if (capped) {
            EXPECT_EQ(ran->isa, Isa::generic) << ran->name;
          } else {
            EXPECT_TRUE(ran->amx && ran->nb == 16) << ran->name;
          }
        }
    if (capped) ne::cpu::clear_isa_cap();
  }
  if (!ne::cpu::mayiuse(Isa::avx512_core_amx))
    GTEST_SKIP() << "AMX half skipped: " << ne::cpu::why_not(Isa::avx512_core_amx);
}

// ------------------------------------------------------------------ dispatch
// What gemm() must choose, restated here from the list's documented rule (bsgemm_kernels.inc,
// sparse_gemm.hpp) rather than read from the dispatcher: the first entry of kernel_list() whose
// weight dtype is the weight's, whose blocking nb x kq is the one the pattern packs as (nb = 0:
// any), whose ISA this process may use now (ne::cpu::why_not, so NE_MAX_ISA / set_isa_cap
// count), that needs no AMX unless AMX is usable, and whose max_m (0 = any) admits M.
// Packed blocking per pattern (sparse_gemm.hpp, "Packed format"): 4x1 -> nb 1, kq 4; 1x4, 2:4,
// channel -> nb 4, kq 1 (f32) / 2 (bf16) / 4 (s8).
void packed_blocking(DType wdt, Pattern p, int* nb, int* kq) {
  if (p == Pattern::p4x1) {
    *nb = 1, *kq = 4;
  } else {
    *nb = 4;
    *kq = wdt == DType::f32 ? 1 : wdt == DType::bf16 ? 2 : 4;
  }
}
bool entry_fits(const KernelInfo& k, DType wdt, Pattern p, int M) {
  int nb, kq;
  packed_blocking(wdt, p, &nb, &kq);
  if (k.wdtype != wdt) return false;
  if (k.nb != 0 && (k.nb != nb || k.kq != kq)) return false;
  if (!ne::cpu::why_not(k.isa).empty()) return false;
  if (k.amx && !ne::cpu::why_not(Isa::avx512_core_amx).empty()) return false;
  return k.max_m == 0 || M <= k.max_m;
}
const KernelInfo* expected_kernel(DType wdt, Pattern p, int M) {
  for (const KernelInfo& k : kernel_list())
    if (entry_fits(k, wdt, p, M)) return &k;
  return nullptr;
}
DType weight_dtype_of(DType src) { return src == DType::f32 ? DType::f32 : src == DType::bf16 ? DType::bf16 : DType::s8; }
// The lowest ISA at which the family has a non-generic kernel for this weight dtype (both
// patterns): what makes "the fast path ran" a claim that can fail on this CPU.
Isa fast_isa_of(DType wdt) {
  return wdt == DType::f32 ? Isa::avx512_core : wdt == DType::bf16 ? Isa::avx512_core_bf16 : Isa::avx512_core_vnni;
}

// Runs every (src dtype, pattern) through gemm() in `layout` at M tokens and checks that the
// kernel that ran is exactly the expected one, and a fast one wherever the ISA allows one.
void check_dispatch(Layout layout, int M, std::mt19937_64& rng) {
  const std::string cap = std::string("max_isa=") + ne::cpu::isa_name(ne::cpu::max_isa()) + " (detected " +
                          ne::cpu::isa_name(ne::cpu::detected_isa()) + ")";
  for (DType src : {DType::f32, DType::bf16, DType::u8, DType::s8})
    for (Pattern p : {Pattern::p1x4, Pattern::p4x1, Pattern::p2of4, Pattern::channel}) {
      const DType wdt = weight_dtype_of(src);
      SCOPED_TRACE(cap + " src=" + dtype_name(src) + " pattern=" + pattern_name(p) + " M=" + std::to_string(M) +
                   (layout == Layout::token_major ? " token-major" : " feature-major"));
      const KernelInfo* want = expected_kernel(wdt, p, M);
      ASSERT_NE(want, nullptr) << "the list has no entry for this call (a generic one must always fit)";
      bool fast_fits = false;
      for (const KernelInfo& k : kernel_list()) fast_fits |= k.isa != Isa::generic && entry_fits(k, wdt, p, M);
      if (fast_fits) { EXPECT_NE(want->isa, Isa::generic) << "generic listed before a fitting fast kernel"; }
      if (ne::cpu::mayiuse(fast_isa_of(wdt))) {
        EXPECT_TRUE(fast_fits) << "no fast kernel fits although " << ne::cpu::isa_name(fast_isa_of(wdt)) << " is usable";
      }
      Case c{layout, M, 24, 40, 0, 0, Act::gelu_erf, DType::f32, true, true, false, src};
      const KernelInfo* ran = nullptr;
      run_case(nullptr, c, p, 0.9, rng, &ran);
      ASSERT_NE(ran, nullptr);
      EXPECT_STREQ(ran->name, want->name);
      EXPECT_TRUE(ne::cpu::mayiuse(ran->isa)) << ran->name << " ran above the ISA cap";
    }
}

// The caps at or below where this process starts (so NE_MAX_ISA from the environment bounds
// them), best first.
std::vector<Isa> caps_to_try() {
  std::vector<Isa> r;
  for (Isa i : {Isa::avx512_core_amx, Isa::avx512_core_bf16, Isa::avx512_core_vnni, Isa::avx512_core, Isa::avx2})
    if (i <= ne::cpu::max_isa()) r.push_back(i);
  return r;
}

// The entry point runs exactly the list's choice on this CPU at M = 8, 20 (the VNNI 1x4 4x16 and
// the BF16 1x4 4x16 tiles have max_m 32 / 16) and M = 200, token- and feature-major, and under
// every lower ISA cap.
TEST(SparseGemmDispatch, RunsTheListsChoiceAtEveryCap) {
  std::mt19937_64 rng(test_seed() + 99);
  for (Isa cap : caps_to_try()) {
    ne::cpu::set_isa_cap(cap);
    for (Layout L : {Layout::token_major, Layout::feature_major})
      for (int M : {8, 20, 200}) check_dispatch(L, M, rng);
    ne::cpu::clear_isa_cap();
    if (HasFatalFailure()) return;
  }
}

// Standard-packed bf16 / int8 weights never run an AMX kernel (the AMX K-gather kernels take
// only the K-gather packing; the 4x1 AMX kernels were removed); capped to avx512_core_bf16 the
// AVX-512 BF16 and VNNI kernels must run (the cap is how those are tested on an AMX CPU).
TEST(SparseGemmDispatch, CapBelowAmxRunsVnniAndBf16) {
  if (!ne::cpu::mayiuse(Isa::avx512_core_bf16))
    GTEST_SKIP() << "avx512_core_bf16 not usable here: " << ne::cpu::why_not(Isa::avx512_core_bf16);
  std::mt19937_64 rng(test_seed() + 98);
  ne::cpu::set_isa_cap(Isa::avx512_core_bf16);
  for (Layout L : {Layout::token_major, Layout::feature_major})
    for (DType src : {DType::bf16, DType::u8})
      for (Pattern p : {Pattern::p1x4, Pattern::p4x1}) {
        Case c{L, 64, 24, 40, 0, 0, Act::none, DType::f32, true, true, false, src};
        const KernelInfo* ran = nullptr;
        run_case(nullptr, c, p, 0.9, rng, &ran);
        ASSERT_NE(ran, nullptr);
        EXPECT_FALSE(ran->amx) << ran->name;
        EXPECT_EQ(ran->isa, src == DType::bf16 ? Isa::avx512_core_bf16 : Isa::avx512_core_vnni)
            << ran->name << " for " << dtype_name(src) << " " << pattern_name(p);
      }
  ne::cpu::clear_isa_cap();
}

// Capped to avx2: generic runs, and the AVX-512 kernels say why they declined.
TEST(SparseGemmDispatch, CapToAvx2FallsBackAndSaysWhy) {
  std::mt19937_64 rng(test_seed() + 97);
  ne::cpu::set_isa_cap(Isa::avx2);
  const KernelInfo* ran = nullptr;
  Case c{Layout::feature_major, 9, 12, 20, 0, 0, Act::relu, DType::f32, true, true, false, DType::f32};
  run_case(nullptr, c, Pattern::p1x4, 0.5, rng, &ran);
  const Weight w = make_weight(DType::f32, 8, 8, Pattern::p1x4, 0.5, rng);
  const PackedWeight pw = PackedWeight::pack(w.bytes.data(), DType::f32, 8, 8, Pattern::p1x4);
  GemmArgs a;
  const KernelChoice ch = choose_kernel(a, pw);
  ne::cpu::clear_isa_cap();
  ASSERT_NE(ran, nullptr);
  EXPECT_EQ(ran->isa, Isa::generic);
  bool saw_isa_reason = false;
  for (auto& d : ch.declined) saw_isa_reason |= d.find("ISA: ") != std::string::npos;
  if (ne::cpu::detected_isa() >= Isa::avx512_core) {
    EXPECT_TRUE(saw_isa_reason) << ch.summary();
  }
  EXPECT_NE(ch.summary().find("chose bsgemm_f32_any_generic__ref"), std::string::npos) << ch.summary();
}

TEST(SparseGemmDispatch, RejectsBadArguments) {
  std::mt19937_64 rng(test_seed() + 5);
  const Weight w = make_weight(DType::f32, 8, 8, Pattern::p1x4, 0.5, rng);
  const PackedWeight pw = PackedWeight::pack(w.bytes.data(), DType::f32, 8, 8, Pattern::p1x4);
  std::vector<float> x(64), y(64);
  GemmArgs a;
  a.M = 8;
  a.src = x.data();
  a.dst = y.data();
  a.ld_src = 4;  // < K
  EXPECT_THROW(gemm(a, pw), std::invalid_argument);
  a.ld_src = 0;
  a.src_dtype = DType::u8;
  EXPECT_THROW(gemm(a, pw), std::invalid_argument);
}

// Large-K / threads: a BERT-like shape through the entry point with GemmArgs::num_threads 1 and
// 2, each checked against the reference, and the two outputs compared bitwise: every kernel of
// the family splits the work over output-channel tiles and token panels only (panels sized from
// M, not from the thread count) and reduces each output's K in one thread, in a fixed order, so
// the thread count may not change a bit. Both runs must also choose the same kernel.
TEST(SparseGemmDispatch, BertShapeOneAndTwoThreadsAgree) {
  int team = 0;
#pragma omp parallel num_threads(2)
  {
#pragma omp single
    team = omp_get_num_threads();
  }
  if (team < 2) GTEST_SKIP() << "OpenMP gives this process " << team << " thread(s) for num_threads(2) (OMP_THREAD_LIMIT?)";
  std::mt19937_64 rng(test_seed() + 11);
  for (DType src : {DType::f32, DType::bf16, DType::u8})
    for (Layout L : {Layout::token_major, Layout::feature_major})
      for (auto [p, sp] : {std::pair{Pattern::p1x4, 0.9}, std::pair{Pattern::p4x1, 0.8}}) {
        Case c{L, 200, 96, 768, 0, 0, Act::gelu_erf, DType::f32, true, true, true, src};
        const std::mt19937_64 start = rng;  // both runs see the same weight and activations
        std::vector<uint8_t> y1, y2;
        const KernelInfo *k1 = nullptr, *k2 = nullptr;
        std::mt19937_64 r1 = start, r2 = start;
        run_case(nullptr, c, p, sp, r1, &k1, 1, &y1);
        run_case(nullptr, c, p, sp, r2, &k2, 2, &y2);
        rng = r2;
        ASSERT_TRUE(k1 && k2);
        SCOPED_TRACE(describe(c, p, sp, k1->name));
        EXPECT_STREQ(k1->name, k2->name);
        ASSERT_EQ(y1.size(), y2.size());
        size_t first = y1.size();
        for (size_t i = 0; i < y1.size() && first == y1.size(); ++i)
          if (y1[i] != y2[i]) first = i;
        EXPECT_EQ(first, y1.size()) << "1 and 2 threads differ first at byte " << first;
      }
}

}  // namespace
