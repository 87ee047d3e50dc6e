// ne::cpu: the lattice is monotone, the cap works, the description is one line.
#include <gtest/gtest.h>

#include <cstdlib>

#include "kernels/cpu_features.hpp"

using ne::cpu::Isa;

// Also under an NE_MAX_ISA cap from the environment (the capped test passes): levels up to the
// cap are usable, levels above it that the CPU has say "capped by NE_MAX_ISA", levels above the
// CPU say what it lacks; set_isa_cap overrides the env cap and clear_isa_cap restores it.
TEST(CpuFeatures, LatticeIsMonotoneAndCapWorks) {
  const Isa d = ne::cpu::detected_isa();
  const Isa start = ne::cpu::max_isa();  // min(detected, NE_MAX_ISA)
  const bool env_capped = std::getenv("NE_MAX_ISA") != nullptr;
  EXPECT_LE(int(start), int(d));
  if (!env_capped) { EXPECT_EQ(start, d) << "no NE_MAX_ISA, yet max_isa() is below detected_isa()"; }
  for (int i = 0; i <= int(start); ++i) EXPECT_EQ(ne::cpu::why_not(Isa(i)), "") << ne::cpu::isa_name(Isa(i));
  for (int i = int(start) + 1; i <= int(d); ++i)
    EXPECT_NE(ne::cpu::why_not(Isa(i)).find("capped by NE_MAX_ISA"), std::string::npos) << ne::cpu::isa_name(Isa(i));
  for (int i = int(d) + 1; i <= int(Isa::avx512_core_amx); ++i) {
    EXPECT_NE(ne::cpu::why_not(Isa(i)), "") << ne::cpu::isa_name(Isa(i));
    EXPECT_EQ(ne::cpu::why_not(Isa(i)).find("capped"), std::string::npos)
        << ne::cpu::isa_name(Isa(i)) << ": above the CPU, the reason must be what it lacks, not the cap";
  }
  ne::cpu::set_isa_cap(Isa::avx2);
  EXPECT_LE(int(ne::cpu::max_isa()), int(Isa::avx2));
  if (d > Isa::avx2) {
    EXPECT_FALSE(ne::cpu::mayiuse(Isa::avx512_core));
    EXPECT_NE(ne::cpu::why_not(Isa::avx512_core).find("capped"), std::string::npos);
  }
  ne::cpu::clear_isa_cap();
  EXPECT_EQ(ne::cpu::max_isa(), start) << "clear_isa_cap() must restore the environment's cap";
}

TEST(CpuFeatures, FeaturesAgreeWithLattice) {
  const auto& f = ne::cpu::features();
  if (ne::cpu::detected_isa() >= Isa::avx512_core) {
    EXPECT_TRUE(f.avx512f && f.avx512bw && f.os_zmm);
  }
  if (ne::cpu::detected_isa() >= Isa::avx512_core_vnni) {
    EXPECT_TRUE(f.avx512_vnni);
  }
  if (ne::cpu::detected_isa() >= Isa::avx512_core_amx) {
    EXPECT_TRUE(f.amx_permitted && f.os_amx);
  }
  if (!f.amx_tile) {
    EXPECT_LT(ne::cpu::detected_isa(), Isa::avx512_core_amx);
  }
}

TEST(CpuFeatures, ParseAndDescribe) {
  Isa i;
  EXPECT_TRUE(ne::cpu::parse_isa("avx512_core_vnni", &i));
  EXPECT_EQ(i, Isa::avx512_core_vnni);
  EXPECT_FALSE(ne::cpu::parse_isa("avx9000", &i));
  const std::string s = ne::cpu::describe();
  EXPECT_EQ(s.find('\n'), std::string::npos);
  EXPECT_NE(s.find(ne::cpu::isa_name(ne::cpu::detected_isa())), std::string::npos);
  std::printf("%s\n", s.c_str());
}
