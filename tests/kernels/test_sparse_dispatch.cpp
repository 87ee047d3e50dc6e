// What gemm() chooses: the kernel list's rule restated here, checked at every ISA cap; bad
// arguments; one and two threads agree.
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
