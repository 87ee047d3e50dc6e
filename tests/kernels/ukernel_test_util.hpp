// Helpers of the row-wise kernel family tests (test_quant, test_eltwise, test_layernorm,
// test_small_gemm): run every entry of a list that this CPU (under NE_MAX_ISA) can run, and check
// that the dispatch picks the first runnable one. Shares no code with the kernels' arithmetic.
#pragma once
#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "kernels/cpu_features.hpp"
#include "kernels/ukernel_list.hpp"

namespace ne_test {

// Odd sizes: below one vector, one vector +- 1, tails of BERT rows (768 + 3, 3072 + 5).
inline const std::vector<int64_t>& odd_sizes() {
  static const std::vector<int64_t> s = {1, 2, 15, 16, 17, 31, 33, 63, 65, 127, 771, 3077};
  return s;
}

// Calls f(entry) for every entry the CPU can run; returns the names run. Entries it cannot run
// are reported (not silently skipped) in the test log.
template <class Fn, class F>
std::vector<std::string> for_each_runnable(const ne::kernels::UkernelList<Fn>& list, F&& f) {
  std::vector<std::string> ran;
  for (const auto& k : list.entries) {
    if (!k.runnable()) {
      std::printf("  [%s] %s not run here: %s\n", list.op, k.name, k.why_not().c_str());
      continue;
    }
    SCOPED_TRACE(std::string("kernel ") + k.name);
    f(k);
    ran.push_back(k.name);
  }
  return ran;
}

// The list ends with a generic entry, the dispatch picks the first entry whose ISA is usable,
// and on a CPU that has the first (best) entry's ISA (not capped below it) that is the one chosen:
// the fast path runs.
template <class Fn>
void expect_dispatch(const ne::kernels::UkernelList<Fn>& list) {
  ASSERT_FALSE(list.entries.empty());
  EXPECT_EQ(list.entries.back().isa, ne::cpu::Isa::generic) << list.op << ": last entry must be generic";
  const ne::kernels::Ukernel<Fn>* want = nullptr;
  for (const auto& k : list.entries)
    if (ne::cpu::mayiuse(k.isa)) {
      want = &k;
      break;
    }
  ASSERT_NE(want, nullptr);
  const auto& got = list.choose();
  EXPECT_STREQ(got.name, want->name) << list.summary();
  EXPECT_EQ(&got, list.find(got.name));
  EXPECT_STREQ(list.choose(true).name, list.entries.back().name);
  if (ne::cpu::mayiuse(list.entries.front().isa)) {
    EXPECT_STREQ(got.name, list.entries.front().name) << list.op << ": the best entry is usable but was not chosen";
  }
  std::printf("  %s (max isa %s)\n", list.summary().c_str(), ne::cpu::isa_name(ne::cpu::max_isa()));
}

}  // namespace ne_test
