// Block-sparse packing: pack / unpack round trips and measured sparsity for every dtype and
// pattern, leading dimensions, bad bytes, the K-gather packing and its z, the VNNI-4 reorder.
#include "sparse_gemm_test_util.hpp"

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
using namespace ne::sparse::gemm_test;
using ne::cpu::Isa;

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

}  // namespace
