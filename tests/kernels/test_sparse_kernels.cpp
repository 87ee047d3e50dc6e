// Every block-sparse GEMM kernel of kernel_list() on this CPU against the reference (shapes,
// sparsities, layouts, post-ops, output types), and the K-gather packing through the generic and
// AMX kernels. Tolerances and seeds: sparse_gemm_test_util.hpp.
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

}  // namespace
