// ne::cpu: the lattice is monotone, the cap works, the description is one line.
#include <gtest/gtest.h>

#include "kernels/cpu_features.hpp"

using ne::cpu::Isa;

TEST(CpuFeatures, LatticeIsMonotoneAndCapWorks) {
  const Isa d = ne::cpu::detected_isa();
  for (int i = 0; i <= int(d); ++i) EXPECT_EQ(ne::cpu::why_not(Isa(i)), "") << ne::cpu::isa_name(Isa(i));
  for (int i = int(d) + 1; i <= int(Isa::avx512_core_amx); ++i)
    EXPECT_NE(ne::cpu::why_not(Isa(i)), "") << ne::cpu::isa_name(Isa(i));
  ne::cpu::set_isa_cap(Isa::avx2);
  EXPECT_LE(int(ne::cpu::max_isa()), int(Isa::avx2));
  if (d > Isa::avx2) {
    EXPECT_FALSE(ne::cpu::mayiuse(Isa::avx512_core));
    EXPECT_NE(ne::cpu::why_not(Isa::avx512_core).find("capped"), std::string::npos);
  }
  ne::cpu::clear_isa_cap();
  EXPECT_EQ(ne::cpu::max_isa(), d) << "run without NE_MAX_ISA";
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
